package demo

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// lessonPorts shows ports at work: two clients on one host told apart only by
// their ephemeral ports, and what happens when a server is restarted at once
// on the port it just used.
var lessonPorts = Lesson{
	Name:    "ports",
	Title:   "ephemeral ports, the five-tuple, and restarting on a port",
	Section: "1.3, 1.5, 2.1, 3.2",
	Run:     runPorts,
}

// portsObservations is what the ports lesson measured.
type portsObservations struct {
	// ServerPort is the listening port.
	ServerPort int
	// ClientPorts are the two clients' own ports, from getsockname
	// (LocalAddr): ephemeral ports the kernel chose.
	ClientPorts [2]int
	// AcceptedRemotePorts are the clients' ports as the server's accepted
	// connections see them (RemoteAddr).
	AcceptedRemotePorts [2]int
	// AcceptedLocalPorts are the server's side of each accepted connection:
	// the listening port again, for both.
	AcceptedLocalPorts [2]int
	// TimeWait counts the server's connections to the two clients left in
	// TIME_WAIT after it closed first, from /proc/net/tcp; -1 when that
	// file is unreadable.
	TimeWait int
	// PlainBindErr is what bind() without SO_REUSEADDR (Python's default)
	// returned on the port straight after: EADDRINUSE while TIME_WAIT lasts.
	PlainBindErr error
	// GoRelistenErr is what net.Listen on the same port returned straight
	// after: nil, because Go sets SO_REUSEADDR on listeners.
	GoRelistenErr error
}

// Summary implements Observations.
func (o *portsObservations) Summary() string {
	return fmt.Sprintf("clients on ports %d and %d, both served on %d; restart: plain bind %s, Go listen %s",
		o.ClientPorts[0], o.ClientPorts[1], o.ServerPort, errText(o.PlainBindErr), okOr(o.GoRelistenErr))
}

func okOr(err error) string {
	if err == nil {
		return "ok"
	}
	return errText(err)
}

func runPorts(ctx context.Context, w io.Writer, _ Options) (Observations, error) {
	ctx, cancel := context.WithTimeout(ctx, lessonTimeout)
	defer cancel()
	p := &page{w: w}
	obs := &portsObservations{TimeWait: -1}

	p.tutorial("a connection is five numbers: protocol, client IP and port, server IP and port.")
	p.tutorial("Two clients on one machine differ only in their ephemeral ports (section 3.2).")
	ln, err := listenLoopback(ctx)
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	obs.ServerPort = port(ln.Addr())
	p.do("listen on 127.0.0.1:%d and connect two clients from this host.", obs.ServerPort)

	var clients, accepted [2]net.Conn
	defer func() {
		for _, c := range append(clients[:], accepted[:]...) {
			if c != nil {
				c.Close()
			}
		}
	}()
	ln.SetDeadline(time.Now().Add(5 * time.Second))
	var d net.Dialer
	for i := range clients {
		if clients[i], err = d.DialContext(ctx, "tcp4", ln.Addr().String()); err != nil {
			return nil, fmt.Errorf("dial: %w", err)
		}
		if accepted[i], err = ln.Accept(); err != nil {
			return nil, fmt.Errorf("accept: %w", err)
		}
		obs.ClientPorts[i] = port(clients[i].LocalAddr())
		obs.AcceptedRemotePorts[i] = port(accepted[i].RemoteAddr())
		obs.AcceptedLocalPorts[i] = port(accepted[i].LocalAddr())
	}
	for i := range clients {
		p.saw("client %d: tcp %s -> %s (getsockname says port %d; the server's accept says %s)",
			i+1, clients[i].LocalAddr(), clients[i].RemoteAddr(), obs.ClientPorts[i], accepted[i].RemoteAddr())
	}
	p.saw("both connected sockets on the server use port %d, the listening port: only the client ports tell them apart.",
		obs.AcceptedLocalPorts[0])
	p.saw("(section 1.5 says a server assigns each client a new port; it does not: section 3.2 has it right.)")

	p.tutorial("a port stays in use for a few seconds after a connection closes (section 1.3).")
	p.do("the server closes first, then stops listening and at once binds port %d again.", obs.ServerPort)
	for i := range accepted {
		accepted[i].Close()
		// The client reads end of file and closes too, so the server's
		// side passes through FIN_WAIT to TIME_WAIT.
		clients[i].SetReadDeadline(time.Now().Add(2 * time.Second))
		io.Copy(io.Discard, clients[i])
		clients[i].Close()
	}
	ln.Close()
	obs.TimeWait = waitTimeWait(ctx, obs.ServerPort, obs.ClientPorts[:])
	if obs.TimeWait >= 0 {
		p.saw("/proc/net/tcp lists %s on port %d in TIME_WAIT.", count(obs.TimeWait, "connection"), obs.ServerPort)
	}

	obs.PlainBindErr = plainBind(obs.ServerPort)
	p.saw("a plain bind(), as Python's socket does it, gets: %s.", errText(obs.PlainBindErr))
	var lc net.ListenConfig
	again, err := lc.Listen(ctx, "tcp4", fmt.Sprintf("127.0.0.1:%d", obs.ServerPort))
	obs.GoRelistenErr = err
	if err == nil {
		again.Close()
		p.saw("net.Listen on the same port: ok.")
	} else {
		p.saw("net.Listen on the same port: %s.", errText(err))
	}
	p.note("net.Listen sets SO_REUSEADDR, so a restarted server gets its port back at once; TIME_WAIT")
	p.note("still protects the old connection's five-tuple. In Python, set SO_REUSEADDR before bind().")
	return obs, p.err()
}

// plainBind binds a fresh TCP socket to 127.0.0.1:port with no socket
// options, as Python's socket.bind() does, and reports the error.
func plainBind(port int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	return nil
}

// waitTimeWait waits up to a second for the connections from local port
// port to each of the remote ports peers (on loopback) to reach TIME_WAIT,
// and returns how many it found (-1 if /proc/net/tcp cannot be read).
func waitTimeWait(ctx context.Context, port int, peers []int) int {
	deadline := time.Now().Add(time.Second)
	for {
		n, err := countTimeWait(port, peers)
		if err != nil {
			return -1
		}
		if n >= len(peers) || time.Now().After(deadline) || ctx.Err() != nil {
			return n
		}
		time.Sleep(5 * time.Millisecond) // polling the kernel's table: no event says so
	}
}

// tcpTimeWait is TIME_WAIT's state number in /proc/net/tcp.
const tcpTimeWait = "06"

// countTimeWait counts the IPv4 TCP sockets in TIME_WAIT from local port
// port to one of the remote ports peers, reading the kernel's table in
// /proc/net/tcp. Only those connections: any other socket that used the
// port number, in any process, may be in TIME_WAIT too.
func countTimeWait(port int, peers []int) (int, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	hexPort := func(addr string) int {
		_, h, _ := strings.Cut(addr, ":")
		p, err := strconv.ParseUint(h, 16, 16)
		if err != nil {
			return -1
		}
		return int(p)
	}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	n := 0
	for sc.Scan() {
		// "  0: 0100007F:07D0 0100007F:A1B2 06 ..."
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != tcpTimeWait {
			continue
		}
		if hexPort(fields[1]) == port && slices.Contains(peers, hexPort(fields[2])) {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return n, nil
}
