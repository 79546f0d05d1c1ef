package server

import (
	"bufio"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"
)

// pipeListener hands out in-memory connections (net.Pipe) that come from
// the addresses the test chooses.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	select {
	case <-l.closed:
	default:
		close(l.closed)
	}
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// dial connects from addr and returns the client's end.
func (l *pipeListener) dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	client, srv := net.Pipe()
	select {
	case l.conns <- addrConn{srv, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr))}:
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not accept")
	}
	return client
}

// overShare is the refusal of a client over its address's share, at a
// server that is full or not: an address at its share makes room for no
// one.
func overShare(full bool) string {
	if full {
		return BusyLine("max number of clients reached (12)")
	}
	return BusyLine("max number of connections from one address reached (5)")
}

type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }

// The invariant of EvictWaiting, on seeded random schedules of silent
// connections from a few addresses, real requests from any, and silent
// clients leaving: a real request from an address below its share is
// always served, however full the server; a newcomer at a full server
// closes exactly the connection waiting longest of the address with the
// most waiting (of those, the oldest); one over its address's
// share is refused; the server never holds more than MaxConns. The model
// is the test's own list of the silent connections in the order they
// came. A failing seed is printed.
func TestEvictWaitingServesRealRequests(t *testing.T) {
	const maxConns, perAddr, addrs = 12, 5, 4
	for seed := range uint64(30) {
		t.Run("seed "+strconv.FormatUint(seed, 10), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			gone := make(chan int, maxConns*4) // silent connections whose handler saw the close
			ln := newPipeListener()
			s := &Server{MaxConns: maxConns, MaxConnsPerAddr: perAddr, EvictWaiting: true, Refuse: RefuseLine,
				Handler: HandlerFunc(func(ctx context.Context, c net.Conn) {
					r := bufio.NewReader(c)
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if line[0] == 's' { // a silent client's id: it says no more
						id, _ := strconv.Atoi(line[1 : len(line)-1])
						r.ReadByte() // until closed: by the client, or to make room
						gone <- id
						return
					}
					Busy(ctx)
					io.WriteString(c, "ok\n")
				})}
			open := countConns(s)
			served := make(chan error, 1)
			go func() { served <- s.Serve(ln) }()
			defer func() { s.Close(); <-served }()

			type silent struct {
				id   int
				addr string
				c    net.Conn
			}
			var queue []silent // waiting, oldest first: the model
			perAddrN := map[string]int{}
			next := 0
			settle := func() {
				t.Helper()
				if !open.Wait(10*time.Second, func(n int) bool { return n == len(queue) }) {
					t.Fatalf("seed %d: server holds %d (open %d), model %d", seed, s.ActiveConns(), open.Load(), len(queue))
				}
			}
			// expectEviction checks that the newcomer closed the oldest
			// waiting connection of the address with the most waiting.
			expectEviction := func() {
				t.Helper()
				most := 0
				for _, q := range queue {
					most = max(most, perAddrN[q.addr])
				}
				i := slices.IndexFunc(queue, func(q silent) bool { return perAddrN[q.addr] == most })
				oldest := queue[i]
				queue = slices.Delete(queue, i, i+1)
				perAddrN[oldest.addr]--
				select {
				case id := <-gone:
					if id != oldest.id {
						t.Fatalf("seed %d: closed silent %d, the oldest of an address with the most (%d) is %d", seed, id, most, oldest.id)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("seed %d: nothing closed to make room", seed)
				}
				oldest.c.Close()
			}
			for op := range 150 {
				addr := "192.0.2." + strconv.Itoa(1+rng.IntN(addrs)) + ":" + strconv.Itoa(1000+op)
				ip := addr[:len(addr)-5]
				switch k := rng.IntN(10); {
				case k < 6: // a silent connection
					full := len(queue) >= maxConns
					c := ln.dial(t, addr)
					if perAddrN[ip] >= perAddr {
						if line, _ := bufio.NewReader(c).ReadString('\n'); line != overShare(full) {
							t.Fatalf("seed %d op %d: over its share: %q", seed, op, line)
						}
						c.Close()
						continue
					}
					if full {
						expectEviction()
					}
					io.WriteString(c, "s"+strconv.Itoa(next)+"\n")
					queue = append(queue, silent{next, ip, c})
					perAddrN[ip]++
					next++
				case k < 9: // a real request
					full := len(queue) >= maxConns
					c := ln.dial(t, addr)
					r := bufio.NewReader(c)
					if perAddrN[ip] >= perAddr {
						if line, _ := r.ReadString('\n'); line != overShare(full) {
							t.Fatalf("seed %d op %d: over its share: %q", seed, op, line)
						}
						c.Close()
						continue
					}
					if full {
						expectEviction()
					}
					io.WriteString(c, "w\n")
					if line, err := r.ReadString('\n'); line != "ok\n" {
						t.Fatalf("seed %d op %d: a real request at a server of %d silent got %q, %v", seed, op, len(queue), line, err)
					}
					c.Close()
				default: // a silent client leaves
					if len(queue) == 0 {
						continue
					}
					i := rng.IntN(len(queue))
					q := queue[i]
					queue = append(queue[:i], queue[i+1:]...)
					perAddrN[q.addr]--
					q.c.Close()
					if id := <-gone; id != q.id {
						t.Fatalf("seed %d: silent %d left, %d's handler ended", seed, q.id, id)
					}
				}
				settle()
				if n := s.ActiveConns(); n > maxConns {
					t.Fatalf("seed %d: %d connections served, cap %d", seed, n, maxConns)
				}
			}
		})
	}
}

// Without EvictWaiting (strsvr: a client at its prompt is silent for
// good reason) a full server refuses, as before.
func TestWithoutEvictWaitingAFullServerRefuses(t *testing.T) {
	ln := newPipeListener()
	s := &Server{MaxConns: 2, MaxConnsPerAddr: -1, Refuse: RefuseLine, Handler: HandlerFunc(func(ctx context.Context, c net.Conn) {
		c.Read(make([]byte, 1))
	})}
	countConns(s)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	defer func() { s.Close(); <-served }()
	for range 2 {
		defer ln.dial(t, "192.0.2.1:1000").Close()
	}
	waitActive(t, s, 2)
	c := ln.dial(t, "192.0.2.2:1000")
	defer c.Close()
	if line, _ := bufio.NewReader(c).ReadString('\n'); line != BusyLine("max number of clients reached (2)") {
		t.Fatalf("got %q", line)
	}
	if s.Evicted() != 0 || s.Refused() != 1 {
		t.Fatalf("evicted %d, refused %d", s.Evicted(), s.Refused())
	}
}

// A slow but honest client, whose request is still on its way (a lossy
// link, a TLS handshake's round trip), is not the one closed to make
// room while attackers churn silent connections from a few addresses:
// a full server closes a connection of the address with the most
// waiting, so one client's single connection outlasts any churn from
// addresses holding several. Before, the newcomer closed the oldest
// waiting connection whoever held it, and the first attacker past the
// cap cut the slow client off.
func TestEvictWaitingSparesASlowClientAmongChurn(t *testing.T) {
	const maxConns, perAddr = 12, 5
	ln := newPipeListener()
	s := &Server{MaxConns: maxConns, MaxConnsPerAddr: perAddr, EvictWaiting: true, Refuse: RefuseLine,
		Handler: HandlerFunc(func(ctx context.Context, c net.Conn) {
			r := bufio.NewReader(c)
			if _, err := r.ReadString('\n'); err != nil {
				return // an attacker, closed to make room
			}
			Busy(ctx)
			io.WriteString(c, "ok\n")
		})}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	defer func() { s.Close(); <-served }()

	slow := ln.dial(t, "192.0.2.9:1000") // its request not here yet
	defer slow.Close()
	for i := range 10 * maxConns {
		c := ln.dial(t, "192.0.2."+strconv.Itoa(1+i%3)+":"+strconv.Itoa(2000+i))
		defer c.Close()
	}
	if s.Evicted() == 0 {
		t.Fatal("the churn never filled the server")
	}
	slow.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(slow, "w\n"); err != nil {
		t.Fatalf("the slow client was closed to make room (%d evicted): %v", s.Evicted(), err)
	}
	if line, err := bufio.NewReader(slow).ReadString('\n'); line != "ok\n" {
		t.Fatalf("the slow client got %q, %v", line, err)
	}
}
