// Package netlab is tcplab's fault lab: a real network link on one machine,
// with knobs for the faults a loopback never shows.
//
// A Link is two network namespaces, A and B, joined by a veth pair with an
// MTU of 1500 and segmentation offload turned off (gso_max_segs 1), so one
// TCP segment is one packet on the wire, as on Ethernet. Each side has one
// address inside its own namespace (10.200.0.1 and 10.200.0.2); nothing is
// routed from the host's namespace, so the lab cannot reach or disturb any
// other network.
//
// The knobs act on the packets one side sends:
//
//   - SetLoss(p): drop each packet at random with probability p (iptables
//     -m statistic --mode random, in the receiver's INPUT chain, so the
//     packet really crossed the link and the sender's stack saw it leave);
//   - SetRate(bits, queue): a slow uplink (a tbf qdisc on the sender's
//     interface, with a queue of about queue's worth of bytes; packets that
//     find it full are dropped, as by a modem);
//   - Vanish(): the side disappears without a FIN or an RST: every packet
//     to or from it is dropped (freeze its process with SIGSTOP as well to
//     make it a machine that died);
//   - ResetOneSide(): the side receives an RST for every TCP packet it
//     sends, while its peer hears nothing more from it (the RST reached
//     only one end); SetResetting(on) is the same for a while;
//   - SetDark(on): a one-way blackout, nothing the side sends arrives
//     (what carries only acknowledgements during an upload: an ACK-path
//     stall) until lifted;
//   - SetMaxPacket(n): a path-MTU blackhole, packets larger than n bytes
//     vanish (no ICMP "fragmentation needed" comes back) while small ones,
//     acknowledgements among them, cross;
//   - Link.Partition(on): nothing crosses in either direction.
//
// The iptables rules of a side are replaced at once (iptables-restore), so
// one knob's change never lets a packet slip past another. Schedule and
// Link.Run apply a seeded sequence of these faults at set moments: the
// nemesis of the lab tests.
//
// Code runs inside a side's namespace in two ways: Host.Command execs a
// program there (ip netns exec), and Host.Do runs a Go function on an OS
// thread switched into the namespace (setns(2)). A socket keeps the
// namespace it was made in, so a listener or connection made with
// Host.Listen or Host.Dial can be used afterwards from any goroutine.
//
// Namespaces are named tcplab-PID-RANDOM-a and -b. Close removes both (the
// test helper ForTest registers it with t.Cleanup); New also removes the
// namespaces of earlier runs whose process no longer exists, so a crashed
// run leaves nothing behind for long.
//
// The lab needs root and the programs ip and tc (iproute2) and iptables.
// Check says in one line why it cannot run; ForTest skips the test with
// that line.
package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MTU is the link's MTU, Ethernet's.
const MTU = 1500

// namePrefix starts every namespace the lab makes.
const namePrefix = "tcplab-"

// netnsDir is where ip netns keeps its named namespaces.
const netnsDir = "/run/netns"

// Link is two namespaces joined by a veth pair. Its methods are safe for
// concurrent use.
type Link struct {
	A, B *Host

	mu     sync.Mutex
	closed bool
	cut    bool // Partition
}

// Host is one side of a Link.
type Host struct {
	// Name is the network namespace's name (for ip netns exec).
	Name string
	// Dev is the side's interface, inside its namespace.
	Dev string
	// Addr is the side's IPv4 address.
	Addr netip.Addr

	link *Link
	peer *Host

	// What this side's sent packets suffer (guarded by link.mu).
	loss      float64
	vanish    bool
	resetTo   bool // ResetOneSide: for good
	resetting bool // SetResetting: until lifted
	dark      bool
	maxPacket int   // 0: no limit
	limited   bool  // SetRate put a tbf qdisc on Dev
	rate      int64 // its rate, bits per second
}

var (
	checkOnce sync.Once
	checkErr  error
)

// Check reports why the lab cannot run here, or nil: it needs root, ip,
// tc and iptables, and the right to make a network namespace (tried once
// per process).
func Check() error {
	checkOnce.Do(func() { checkErr = check() })
	return checkErr
}

func check() error {
	if runtime.GOOS != "linux" {
		return errNotLinux
	}
	if os.Geteuid() != 0 {
		return errors.New("netlab: needs root (network namespaces, iptables, tc)")
	}
	var missing []string
	for _, p := range []string{"ip", "tc", "iptables"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	// From the same package as iptables: named only when iptables is there.
	if _, err := exec.LookPath("iptables-restore"); err != nil && len(missing) == 0 {
		missing = append(missing, "iptables-restore")
	}
	if len(missing) > 0 {
		return fmt.Errorf("netlab: needs %s (install the iproute2 and iptables packages)", strings.Join(missing, ", "))
	}
	name := fmt.Sprintf("%s%d-probe-%s", namePrefix, os.Getpid(), randomHex(3))
	if err := ipCmd("netns", "add", name); err != nil {
		return fmt.Errorf("netlab: cannot make a network namespace: %v", err)
	}
	ipCmd("netns", "del", name)
	return nil
}

// TB is the part of testing.TB that ForTest uses.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// ForTest makes a Link for a test and removes it when the test ends,
// whether it passes or fails. Without root or the tools, the test is
// skipped with Check's one line.
func ForTest(t TB) *Link {
	t.Helper()
	if err := Check(); err != nil {
		t.Skipf("%v", err)
	}
	l, err := New()
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return l
}

// New builds a fresh Link. The caller must Close it.
func New() (*Link, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	CleanStale()
	base := fmt.Sprintf("%s%d-%s", namePrefix, os.Getpid(), randomHex(4))
	l := &Link{}
	l.A = &Host{Name: base + "-a", Dev: "veth-a", Addr: netip.MustParseAddr("10.200.0.1"), link: l}
	l.B = &Host{Name: base + "-b", Dev: "veth-b", Addr: netip.MustParseAddr("10.200.0.2"), link: l}
	l.A.peer, l.B.peer = l.B, l.A
	if err := l.build(); err != nil {
		l.Close()
		return nil, fmt.Errorf("netlab: build link: %w", err)
	}
	return l, nil
}

func (l *Link) build() error {
	for _, h := range []*Host{l.A, l.B} {
		if err := ipCmd("netns", "add", h.Name); err != nil {
			return err
		}
	}
	// Made directly inside the namespaces: the host's namespace never
	// sees the interfaces, so their names need only be unique there.
	if err := ipCmd("link", "add", l.A.Dev, "netns", l.A.Name, "type", "veth", "peer", "name", l.B.Dev, "netns", l.B.Name); err != nil {
		return err
	}
	for _, h := range []*Host{l.A, l.B} {
		steps := [][]string{
			{"-n", h.Name, "link", "set", "lo", "up"},
			// gso_max_segs 1: the stack hands the interface one segment
			// at a time, so tbf, iptables and the peer see real packets,
			// not 64 kB super-packets (veth offers TSO and GSO).
			{"-n", h.Name, "link", "set", h.Dev, "mtu", strconv.Itoa(MTU), "gso_max_segs", "1", "gso_max_size", strconv.Itoa(MTU), "up"},
			{"-n", h.Name, "addr", "add", h.Addr.String() + "/24", "dev", h.Dev},
		}
		for _, s := range steps {
			if err := ipCmd(s...); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close removes both namespaces (and with them the veth pair, the rules
// and the qdisc). Sockets still open in a namespace keep it alive, without
// its name, until they are closed. Close may be called more than once.
func (l *Link) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	for _, h := range []*Host{l.A, l.B} {
		if _, err := os.Stat(netnsDir + "/" + h.Name); err != nil {
			continue
		}
		if err := ipCmd("netns", "del", h.Name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netlab: remove namespaces: %w", err)
	}
	return nil
}

// CleanStale removes lab namespaces left by processes that no longer
// exist (a run that crashed or was killed before its Close), and ends the
// programs still running in them (a server or client the run started
// there outlives it, reparented to init, and would keep the namespace
// alive after its name is gone). Namespaces of live processes, such as
// other test runs, are left alone.
func CleanStale() {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), namePrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		killInside(e.Name())
		ipCmd("netns", "del", e.Name())
	}
}

// Partition drops every packet in both directions while on is true: a
// cable pulled out. Connections survive a short partition, as they would.
func (l *Link) Partition(on bool) error {
	l.mu.Lock()
	l.cut = on
	l.mu.Unlock()
	return l.apply()
}

// SetLoss drops each packet h sends with probability p (0 ≤ p < 1),
// independently. 0 removes the loss.
func (h *Host) SetLoss(p float64) error {
	if p < 0 || p >= 1 {
		return fmt.Errorf("netlab: loss %v is not in [0, 1)", p)
	}
	h.link.mu.Lock()
	h.loss = p
	h.link.mu.Unlock()
	return h.link.apply()
}

// SetRate limits what h sends to bitsPerSecond with a token bucket (tbf)
// whose queue holds about queue's worth of data (at least a few packets);
// a packet that finds the queue full is dropped. 0 removes the limit.
func (h *Host) SetRate(bitsPerSecond int64, queue time.Duration) error {
	h.link.mu.Lock()
	defer h.link.mu.Unlock()
	if h.link.closed {
		return errors.New("netlab: link is closed")
	}
	if bitsPerSecond <= 0 {
		if !h.limited {
			return nil
		}
		h.limited, h.rate = false, 0
		return h.run("tc", "qdisc", "del", "dev", h.Dev, "root")
	}
	h.limited, h.rate = true, bitsPerSecond
	queueBytes := max(4*MTU, int64(queue.Seconds()*float64(bitsPerSecond)/8))
	return h.run("tc", "qdisc", "replace", "dev", h.Dev, "root", "tbf",
		"rate", strconv.FormatInt(bitsPerSecond, 10)+"bit",
		"burst", strconv.Itoa(2*MTU), // two packets: a link, not a burst buffer
		"limit", strconv.FormatInt(queueBytes, 10))
}

// Vanish makes h disappear without a word: from now on every packet to or
// from it is dropped, so its peer sees neither a FIN nor an RST, only
// silence, as when a machine loses power or a NAT forgets the flow. It
// cannot be undone (make a new Link).
func (h *Host) Vanish() error {
	h.link.mu.Lock()
	h.vanish = true
	h.link.mu.Unlock()
	return h.link.apply()
}

// SetDark drops every packet h sends while on is true, and nothing h
// receives: a one-way blackout. The peer hears nothing from h (neither
// its data nor its acknowledgements) while h still hears the peer.
func (h *Host) SetDark(on bool) error {
	h.link.mu.Lock()
	h.dark = on
	h.link.mu.Unlock()
	return h.link.apply()
}

// SetMaxPacket drops every packet h sends that is larger than n bytes (IP
// header included), as a path whose MTU shrank behind a firewall that
// eats the ICMP "fragmentation needed" message: full segments vanish,
// acknowledgements and short segments cross. 0 removes the limit.
func (h *Host) SetMaxPacket(n int) error {
	if n < 0 {
		return fmt.Errorf("netlab: packet size %d is negative", n)
	}
	h.link.mu.Lock()
	h.maxPacket = n
	h.link.mu.Unlock()
	return h.link.apply()
}

// SetResetting makes every TCP packet h sends be answered with an RST to
// h, as ResetOneSide does, while on is true.
func (h *Host) SetResetting(on bool) error {
	h.link.mu.Lock()
	h.resetting = on
	h.link.mu.Unlock()
	return h.link.apply()
}

// ResetOneSide makes every TCP packet h sends be answered with an RST to h
// (iptables REJECT --reject-with tcp-reset at the peer's door), while the
// peer hears nothing more from h, not even h's own RST: h's connection
// ends at once, its peer's stays open and silent. That is a reset that
// reached only one end, as from a middlebox that forgot the flow. It
// cannot be undone.
func (h *Host) ResetOneSide() error {
	h.link.mu.Lock()
	h.resetTo = true
	h.link.mu.Unlock()
	return h.link.apply()
}

// apply rewrites the INPUT chain of both namespaces from the knobs: each
// side's chain decides the fate of what its peer sent. Each side's rules
// are replaced in one step (iptables-restore), never flushed and rebuilt,
// so a change of one fault does not open a gap in another.
func (l *Link) apply() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("netlab: link is closed")
	}
	for _, h := range []*Host{l.A, l.B} {
		from := h.peer // the rules in h's namespace act on what from sends
		var rules [][]string
		switch {
		case l.cut || h.vanish || from.vanish || from.dark:
			rules = append(rules, []string{"-j", "DROP"})
		case from.resetTo || from.resetting:
			rules = append(rules,
				[]string{"-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"},
				[]string{"-j", "DROP"})
		default:
			if from.maxPacket > 0 {
				rules = append(rules, []string{"-m", "length", "--length", strconv.Itoa(from.maxPacket+1) + ":65535", "-j", "DROP"})
			}
			if from.loss > 0 {
				rules = append(rules, []string{"-m", "statistic", "--mode", "random", "--probability", strconv.FormatFloat(from.loss, 'f', -1, 64), "-j", "DROP"})
			}
		}
		var table strings.Builder
		table.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
		for _, r := range rules {
			table.WriteString("-A INPUT -i " + h.Dev + " " + strings.Join(r, " ") + "\n")
		}
		table.WriteString("COMMIT\n")
		if err := h.runInput(table.String(), "iptables-restore", "-w"); err != nil {
			return err
		}
	}
	return nil
}

// run runs a program inside h's namespace and returns its error with its
// standard error output.
func (h *Host) run(prog string, args ...string) error { return h.runInput("", prog, args...) }

// runInput is run with input on the program's standard input.
func (h *Host) runInput(input, prog string, args ...string) error {
	full := append([]string{"netns", "exec", h.Name, prog}, args...)
	cmd := labCommand("ip", full...)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s in %s: %v: %s", prog, strings.Join(args, " "), h.Name, err, firstLine(out))
	}
	return nil
}

// Command returns a command that runs name with args inside h's
// namespace (ip netns exec, which execs the program in its own place, so
// the process's pid is the command's).
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	full := append([]string{"netns", "exec", h.Name, name}, args...)
	return exec.CommandContext(ctx, "ip", full...)
}

// Do runs fn on an OS thread switched into h's namespace and returns its
// error. Sockets fn makes belong to that namespace for their whole life;
// fn should make them and return, not serve them. Other goroutines are not
// affected: the thread is locked to fn's goroutine and switched back (or,
// if that fails, discarded) afterwards.
func (h *Host) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restored, err := h.enter()
		if err == nil {
			err = fn()
			restored()
		}
		errc <- err
	}()
	return <-errc
}

// Listen listens on h's address and port (0: an ephemeral one) inside h's
// namespace.
func (h *Host) Listen(port int) (*net.TCPListener, error) {
	var ln net.Listener
	err := h.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(h.Addr, uint16(port)).String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlab: listen in %s: %w", h.Name, err)
	}
	return ln.(*net.TCPListener), nil
}

// Dial connects from inside h's namespace to addr (usually the peer's
// address and a port).
func (h *Host) Dial(ctx context.Context, addr string) (*net.TCPConn, error) {
	var c net.Conn
	err := h.Do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, "tcp4", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlab: dial %s from %s: %w", addr, h.Name, err)
	}
	return c.(*net.TCPConn), nil
}

// Peer is the other side of h's link.
func (h *Host) Peer() *Host { return h.peer }

func ipCmd(args ...string) error {
	out, err := labCommand("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, firstLine(out))
	}
	return nil
}

// labCommand is a command that builds, changes or removes the lab. It
// runs in a process group of its own (on Linux): Ctrl-C at a terminal
// sends SIGINT to the whole foreground group, and an ip or iptables killed
// by it half way leaves its job undone, a namespace that outlives the run
// among them. The program that started it decides what the interrupt
// means and lets it finish.
func labCommand(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	ownProcessGroup(cmd)
	return cmd
}

// firstLine is the first line of a program's output, so that an error
// stays one line.
func firstLine(out []byte) string {
	line, _, _ := bytes.Cut(bytes.TrimSpace(out), []byte("\n"))
	return string(line)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// errNotLinux is Check's answer where there are no network namespaces.
var errNotLinux = errors.New("netlab: needs Linux network namespaces")
