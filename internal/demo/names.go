package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tcplab/tcplab/internal/capture"
	"github.com/tcplab/tcplab/internal/netlab"
)

// lessonNames is section 1.2 on the lab link: a machine's addresses
// (loopback and the link's), names and the files and resolver that turn
// them into addresses, a port where nobody listens answering with a
// reset, and an address on no network the machine knows.
var lessonNames = Lesson{
	Name:        "names",
	Title:       "IP addresses and names: loopback and the link, localhost, /etc/hosts, a reset",
	Section:     "1.2",
	WritesFiles: true,
	Run:         runNames,
}

// namesObservations is what the names lesson saw.
type namesObservations struct {
	Skipped string
	// Addrs are the addresses of each interface in A's namespace.
	Addrs map[string][]netip.Prefix
	// Routes is A's routing table (ip route).
	Routes []string
	// LoopbackBytes crossed A's loopback connections (IPv4 and IPv6);
	// LoopbackFrames is how many frames of theirs the link's capture saw.
	LoopbackBytes  int
	LoopbackFrames int
	// HereLocalhost is what this process's resolver made of "localhost"
	// in each family, from the machine's /etc/hosts.
	HereLocalhost map[string]string
	// Child is what a Go program started in A's namespace with ip netns
	// exec (and so with A's /etc/hosts) resolved and reached.
	Child childReport
	// ChildResolver is its resolver's own account (GODEBUG=netdns=2):
	// which resolver, and in what order it looks.
	ChildResolver []string
	// Getent is libc's answer for hostsName (getent ahostsv4), what a
	// C or Python program would get; empty if getent is missing.
	Getent string
	// ByNameSYN: the capture holds the SYN of the child's connection to
	// hostsName, sent to B's address.
	ByNameSYN bool
	// Refused is the error of a connect to a port where nobody listens;
	// RefusedSYN and RefusedRST the two segments the capture holds.
	Refused                error
	RefusedSYN, RefusedRST *capture.Packet
	// Unreachable is the error of a connect to an address on no network
	// A knows; UnreachableFrames counts the frames sent toward it.
	Unreachable       error
	UnreachableFrames int
	wire              *wireSeen
}

// Summary implements Observations.
func (o *namesObservations) Summary() string {
	if o.Skipped != "" {
		return "skipped: " + o.Skipped
	}
	return fmt.Sprintf("localhost is %s in the lab; %s is %s (/etc/hosts, %s); closed port: RST after %s; %s: %s",
		strings.Join(o.Child.lookup("localhost", "ip"), " and "), hostsName, strings.Join(o.Child.lookup(hostsName, "ip4"), ""),
		strings.Join(o.ChildResolver, ", "), ms(o.RefusedRST.At.Sub(o.RefusedSYN.At)), unreachableAddr, errText(o.Unreachable))
}

// hostsName is the name the lesson puts in the lab's /etc/hosts for B.
const hostsName = "server.lab"

// unreachableAddr is on no network of the lab's (a documentation
// address, RFC 5737): the connect fails before any packet leaves.
const unreachableAddr = "192.0.2.1:9"

// childEnv asks a tcplab process (or a test binary holding this package)
// to be the names lesson's child, "NAMESPACE:PORT": see namesChild.
const childEnv = "TCPLAB_DEMO_NAMES_CHILD"

// The child is chosen before main runs, in any program that holds this
// package. The variable alone does not choose it: a process is the child
// only inside the lab namespace the variable names (childPort), so a
// tcplab command run with the variable set by mistake, or by someone
// else, does its own job, not the lesson's lookups and connection. The
// variable is removed either way, so nothing this process starts
// inherits it.
func init() {
	spec, ok := os.LookupEnv(childEnv)
	if !ok {
		return
	}
	os.Unsetenv(childEnv)
	if port, ok := childPort(spec); ok {
		os.Exit(namesChild(port, os.Stdout))
	}
}

// childSpec is the value of childEnv that asks for the child in
// namespace ns, to connect to port.
func childSpec(ns, port string) string { return ns + ":" + port }

// childPort reads a childSpec and returns its port if this process is
// inside the lab namespace it names: a netlab namespace, whose
// /run/netns file is the same namespace as this process's own (the test
// ip netns identify makes).
func childPort(spec string) (string, bool) {
	ns, port, ok := strings.Cut(spec, ":")
	if !ok || !strings.HasPrefix(ns, "tcplab-") || strings.ContainsAny(ns, "/") {
		return "", false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", false
	}
	self, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return "", false
	}
	lab, err := os.Stat(filepath.Join("/run/netns", ns))
	if err != nil {
		return "", false
	}
	return port, os.SameFile(self, lab)
}

// childReport is what the child found, as JSON on its standard output.
type childReport struct {
	Lookups []childLookup
	// Dialed is the address the child's connection to the name reached.
	Dialed  string
	DialErr string
}

type childLookup struct {
	Name, Network string
	Addrs         []string
	Err           string
}

func (r childReport) lookup(name, network string) []string {
	for _, l := range r.Lookups {
		if l.Name == name && l.Network == network {
			if l.Err != "" {
				return []string{l.Err}
			}
			return l.Addrs
		}
	}
	return nil
}

// namesChild is the child: a Go program started inside A's namespace
// with ip netns exec, which also puts /etc/netns/NAME/hosts over
// /etc/hosts for it. It resolves localhost in both families and
// hostsName with Go's resolver, connects to hostsName at the port spec
// names, and reports as JSON.
func namesChild(port string, w io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var r childReport
	for _, q := range [][2]string{{"localhost", "ip4"}, {"localhost", "ip6"}, {"localhost", "ip"}, {hostsName, "ip4"}} {
		l := childLookup{Name: q[0], Network: q[1]}
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, q[1], q[0])
		for _, a := range addrs {
			l.Addrs = append(l.Addrs, a.Unmap().String())
		}
		if err != nil {
			l.Err = errText(err)
		}
		r.Lookups = append(r.Lookups, l)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp4", net.JoinHostPort(hostsName, port))
	if err != nil {
		r.DialErr = errText(err)
	} else {
		r.Dialed = c.RemoteAddr().String()
		c.Write([]byte("hello from " + hostsName + "'s client\n"))
		c.Close()
	}
	if err := json.NewEncoder(w).Encode(r); err != nil {
		return 1
	}
	return 0
}

func runNames(ctx context.Context, w io.Writer, opts Options) (Observations, error) {
	ctx, cancel := context.WithTimeout(ctx, lessonTimeout)
	defer cancel()
	p := &page{w: w}
	obs := &namesObservations{HereLocalhost: map[string]string{}}
	p.tutorial("every machine on the Internet has an IP address; names stand for addresses, and a")
	p.tutorial("router passes packets between networks (section 1.2).")
	if obs.Skipped = skipLab(p); obs.Skipped != "" {
		return obs, p.err()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l, err := netlab.New()
	if err != nil {
		return nil, err
	}
	defer l.Close()

	if obs.Addrs, err = addressesOf(l.A); err != nil {
		return nil, err
	}
	p.do("list the addresses and routes of namespace A (%s), one end of a lab link.", l.A.Name)
	for _, name := range []string{"lo", l.A.Dev} {
		p.saw("%-7s %s", name+":", prefixesText(obs.Addrs[name]))
	}
	obs.Routes = routesOf(ctx, l.A)
	p.saw("routes: %s: the link's own network, and no router (no default route).", strings.Join(obs.Routes, "; "))

	c, err := startCapture(l.A)
	if err != nil {
		return nil, err
	}
	defer c.Stop()

	// Loopback: never on the wire.
	p.do("capturing A's card, connect to 127.0.0.1 and to [::1] inside A and send a few bytes each way.")
	if obs.LoopbackBytes, err = loopbackTalk(l.A); err != nil {
		return nil, err
	}

	// Names: /etc/hosts of the lab, for programs started in it.
	cleanStaleHosts()
	hostsDir := filepath.Join("/etc/netns", l.A.Name)
	if err := os.MkdirAll(hostsDir, 0o755); err != nil {
		return nil, fmt.Errorf("lab hosts file: %w", err)
	}
	defer os.RemoveAll(hostsDir)
	hosts := fmt.Sprintf("127.0.0.1 localhost\n::1 localhost\n%s %s\n", l.B.Addr, hostsName)
	if err := os.WriteFile(filepath.Join(hostsDir, "hosts"), []byte(hosts), 0o644); err != nil {
		return nil, fmt.Errorf("lab hosts file: %w", err)
	}
	// Go's resolver, as the process uses it, but with no DNS server to ask:
	// a machine whose /etc/hosts lacks localhost gets an error, not a
	// query to its DNS server.
	filesOnly := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no DNS in this lesson")
	}}
	for _, network := range []string{"ip4", "ip6"} {
		addrs, err := filesOnly.LookupNetIP(ctx, network, "localhost")
		obs.HereLocalhost[network] = addrsText(addrs, err)
	}
	ln, err := l.B.Listen(0)
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	greeted := make(chan string, 1)
	go func() {
		ln.SetDeadline(time.Now().Add(lessonTimeout))
		conn, err := ln.Accept()
		if err != nil {
			greeted <- ""
			return
		}
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(io.LimitReader(conn, 256))
		greeted <- string(b)
	}()
	port := fmt.Sprint(port(ln.Addr()))
	p.do("write A's own hosts file, %s (ip netns exec puts it over /etc/hosts):", filepath.Join(hostsDir, "hosts"))
	p.do("  localhost at 127.0.0.1 and ::1, %s at %s. Start a Go program in A that looks names up and", hostsName, l.B.Addr)
	p.do("  connects to %s:%s, and ask libc there too (getent).", hostsName, port)
	if err := obs.runChild(ctx, l.A, port); err != nil {
		ln.Close()
		<-greeted
		return nil, err
	}
	greeting := <-greeted
	obs.Getent = getent(ctx, l.A)

	// A port where nobody listens, and an address on no network of A's.
	closed, err := l.B.Listen(0)
	if err != nil {
		return nil, err
	}
	refusedAddr, refused := closed.Addr().String(), addrPortOf(closed.Addr())
	closed.Close()
	_, obs.Refused = l.A.Dial(ctx, refusedAddr)
	_, obs.Unreachable = l.A.Dial(ctx, unreachableAddr)

	// The capture holds the child's connection and the refused SYN's reset.
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	err = c.WaitForTCP(wctx, func(s *capture.Segment) bool { return s.RST && s.Src == refused })
	wcancel()
	if err != nil {
		return nil, fmt.Errorf("the reset from %s: %w", refusedAddr, err)
	}
	if obs.wire, err = finishCapture(ctx, c, l.A); err != nil {
		return nil, err
	}
	obs.read(l, ln.Addr(), refused)

	p.saw("loopback: %s crossed the two loopback connections; the capture on %s saw %s of them.",
		byteCount(int64(obs.LoopbackBytes)), l.A.Dev, count(obs.LoopbackFrames, "frame"))
	p.saw("  127.0.0.0/8 and ::1 are the machine talking to itself: nothing goes on the wire.")
	p.saw("this process reads the machine's /etc/hosts, whatever namespace its thread is in: localhost")
	p.saw("  over IPv4: %s; over IPv6: %s.", obs.HereLocalhost["ip4"], obs.HereLocalhost["ip6"])
	p.saw("the program in A: localhost is %s over IPv4 and %s over IPv6; %s is %s.",
		strings.Join(obs.Child.lookup("localhost", "ip4"), ", "), strings.Join(obs.Child.lookup("localhost", "ip6"), ", "),
		hostsName, strings.Join(obs.Child.lookup(hostsName, "ip4"), ", "))
	p.saw("  its resolver says: %s.", strings.Join(obs.ChildResolver, "; "))
	if obs.Child.Dialed != "" {
		p.saw("  it connected to %s by name, reaching %s (B read %q); the capture holds that SYN: %v.",
			hostsName, obs.Child.Dialed, strings.TrimSpace(greeting), obs.ByNameSYN)
	}
	if obs.Getent != "" {
		p.saw("libc's getaddrinfo in A (getent ahostsv4 %s, as Python's socket would ask): %s.", hostsName, obs.Getent)
	}
	p.saw("connect to %s, where nobody listens: %s. On the wire:", refusedAddr, errText(obs.Refused))
	p.saw("  SYN from %s, then RST (reset) from %s %s later: B's kernel itself answers a closed port.",
		obs.RefusedSYN.TCP.Src, obs.RefusedRST.TCP.Src, ms(obs.RefusedRST.At.Sub(obs.RefusedSYN.At)))
	p.saw("connect to %s, on no network A has a route to: %s, at once; %s left A.",
		unreachableAddr, errText(obs.Unreachable), count(obs.UnreachableFrames, "frame"))
	if err := writeWire(p, obs.wire, opts, "names"); err != nil {
		return nil, err
	}
	p.note("a setns(2) into a network namespace changes the sockets a thread makes, not the files it reads:")
	p.note("this process still sees the machine's /etc/hosts. Go's own resolver (no libc) reads /etc/hosts")
	p.note("and /etc/resolv.conf itself; net.Resolver{PreferGo: true, Dial: ...} points it at another DNS server.")
	return obs, p.err()
}

// read finds the lesson's segments in the capture.
func (o *namesObservations) read(l *netlab.Link, byName net.Addr, refused netip.AddrPort) {
	server := addrPortOf(byName)
	for i := range o.wire.Packets {
		pk := &o.wire.Packets[i]
		s := pk.TCP
		if s == nil {
			continue
		}
		switch {
		case s.Src.Addr().IsLoopback() || s.Dst.Addr().IsLoopback():
			o.LoopbackFrames++
		case s.SYN && !s.ACK && s.Dst == server && s.Src.Addr() == l.A.Addr:
			o.ByNameSYN = true
		case s.SYN && !s.ACK && s.Dst == refused && o.RefusedSYN == nil:
			o.RefusedSYN = pk
		case s.RST && s.Src == refused && o.RefusedRST == nil:
			o.RefusedRST = pk
		case s.Dst == netip.MustParseAddrPort(unreachableAddr):
			o.UnreachableFrames++
		}
	}
}

// runChild runs namesChild inside h's namespace through ip netns exec.
func (o *namesObservations) runChild(ctx context.Context, h *netlab.Host, port string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("the names lesson's program: %w", err)
	}
	cmd := h.Command(ctx, exe)
	cmd.Env = append(os.Environ(), childEnv+"="+childSpec(h.Name, port), "GODEBUG=netdns=2")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("the program in %s: %v: %s", h.Name, err, firstLineOf(stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), &o.Child); err != nil {
		return fmt.Errorf("the program in %s: %w", h.Name, err)
	}
	// GODEBUG=netdns=2: "go package net: confVal.netCgo = false  netGo =
	// false", "... hostLookupOrder(server.lab) = files,dns".
	for _, line := range strings.Split(stderr.String(), "\n") {
		line = strings.TrimPrefix(line, "go package net: ")
		switch {
		case strings.Contains(line, "using cgo DNS resolver"):
			o.ChildResolver = append(o.ChildResolver, "libc's (cgo)")
		case strings.HasPrefix(line, "confVal.netCgo = false"), strings.Contains(line, "using Go's DNS resolver"):
			if len(o.ChildResolver) == 0 {
				o.ChildResolver = append(o.ChildResolver, "Go's own, no libc")
			}
		case strings.HasPrefix(line, "hostLookupOrder("+hostsName+")") && !slices.Contains(o.ChildResolver, line):
			o.ChildResolver = append(o.ChildResolver, line)
		}
	}
	return nil
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// getent asks libc, inside h's namespace, for hostsName's IPv4 address.
func getent(ctx context.Context, h *netlab.Host) string {
	if _, err := exec.LookPath("getent"); err != nil {
		return ""
	}
	out, err := h.Command(ctx, "getent", "ahostsv4", hostsName).Output()
	if err != nil {
		return errText(err)
	}
	// "10.200.0.2      STREAM server.lab": the address leads each line.
	if f := strings.Fields(string(out)); len(f) > 0 {
		return f[0]
	}
	return "nothing"
}

// cleanStaleHosts removes /etc/netns/tcplab-* directories whose namespace
// is gone (a run stopped before it removed its own).
func cleanStaleHosts() {
	dirs, _ := filepath.Glob("/etc/netns/tcplab-*")
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join("/run/netns", filepath.Base(d))); errors.Is(err, os.ErrNotExist) {
			os.RemoveAll(d)
		}
	}
}

// addressesOf lists each interface's addresses inside h's namespace.
func addressesOf(h *netlab.Host) (map[string][]netip.Prefix, error) {
	addrs := map[string][]netip.Prefix{}
	err := h.Do(func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, ifi := range ifs {
			as, err := ifi.Addrs()
			if err != nil {
				return err
			}
			for _, a := range as {
				if n, ok := a.(*net.IPNet); ok {
					ip, _ := netip.AddrFromSlice(n.IP)
					ones, _ := n.Mask.Size()
					addrs[ifi.Name] = append(addrs[ifi.Name], netip.PrefixFrom(ip.Unmap(), ones))
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("addresses in %s: %w", h.Name, err)
	}
	return addrs, nil
}

func prefixesText(ps []netip.Prefix) string {
	var parts []string
	for _, p := range ps {
		kind := ""
		switch {
		case p.Addr().IsLoopback():
			kind = " (loopback)"
		case p.Addr().IsLinkLocalUnicast():
			kind = " (IPv6 link-local, made from the MAC)"
		}
		parts = append(parts, p.String()+kind)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// routesOf is h's IPv4 routing table, as ip route prints it.
func routesOf(ctx context.Context, h *netlab.Host) []string {
	out, err := h.Command(ctx, "ip", "-4", "route", "show").Output()
	if err != nil {
		return []string{errText(err)}
	}
	var routes []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line = strings.Join(strings.Fields(line), " "); line != "" {
			routes = append(routes, line)
		}
	}
	return routes
}

// loopbackTalk connects to 127.0.0.1 and [::1] inside h and exchanges a
// few bytes on each; it returns the bytes that crossed.
func loopbackTalk(h *netlab.Host) (int, error) {
	total := 0
	for _, a := range []string{"127.0.0.1:0", "[::1]:0"} {
		var client, server net.Conn
		err := h.Do(func() error {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				return err
			}
			defer ln.Close()
			if client, err = net.Dial("tcp", ln.Addr().String()); err != nil {
				return err
			}
			server, err = ln.Accept()
			return err
		})
		if err != nil {
			if client != nil {
				client.Close()
			}
			return 0, fmt.Errorf("loopback %s in %s: %w", a, h.Name, err)
		}
		msg := []byte("over loopback\n")
		client.SetDeadline(time.Now().Add(5 * time.Second))
		server.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = client.Write(msg)
		if err == nil {
			_, err = io.ReadFull(server, make([]byte, len(msg)))
		}
		if err == nil {
			_, err = server.Write(msg)
		}
		if err == nil {
			_, err = io.ReadFull(client, make([]byte, len(msg)))
		}
		client.Close()
		server.Close()
		if err != nil {
			return 0, fmt.Errorf("loopback %s in %s: %w", a, h.Name, err)
		}
		total += 2 * len(msg)
	}
	return total, nil
}

// addrsText prints a lookup's answer.
func addrsText(addrs []netip.Addr, err error) string {
	if err != nil {
		return errText(err)
	}
	parts := make([]string, len(addrs))
	for i, a := range addrs {
		parts[i] = a.Unmap().String()
	}
	return strings.Join(parts, ", ")
}
