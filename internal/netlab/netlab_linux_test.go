package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	osexec "os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// pair connects A (client) to B (server) over l and returns both ends.
func pair(t *testing.T, l *Link) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := l.B.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err = l.A.Dial(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	ln.SetDeadline(time.Now().Add(10 * time.Second))
	b, err = ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

func tcpInfo(t *testing.T, c *net.TCPConn) *unix.TCPInfo {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	var ierr error
	if err := rc.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		t.Fatal(err)
	}
	if ierr != nil {
		t.Fatal(ierr)
	}
	return info
}

// send writes n patterned bytes on a and reads them whole on b, and
// returns how long it took.
func send(t *testing.T, a, b *net.TCPConn, n int) time.Duration {
	t.Helper()
	msg := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), n/36+1)[:n]
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		a.SetWriteDeadline(time.Now().Add(30 * time.Second))
		_, err := a.Write(msg)
		errc <- err
	}()
	got := make([]byte, n)
	b.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(b, got); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("received bytes differ from the sent ones")
	}
	return time.Since(start)
}

func TestLinkCarriesOneSegmentPerPacket(t *testing.T) {
	l := ForTest(t)
	a, b := pair(t, l)
	send(t, a, b, 200_000)
	info := tcpInfo(t, b)
	if info.Rcv_mss > MTU-40 || info.Rcv_mss < 1000 {
		t.Errorf("receiver's MSS estimate is %d bytes, want an Ethernet segment (at most %d)", info.Rcv_mss, MTU-40)
	}
	perSeg := info.Bytes_received / uint64(info.Data_segs_in)
	if perSeg > MTU-40 {
		t.Errorf("%d bytes per received segment: super-packets crossed the link", perSeg)
	}
	t.Logf("200,000 bytes in %d segments of %d bytes on average, receiver's MSS %d", info.Data_segs_in, perSeg, info.Rcv_mss)
}

func TestAddressesOnlyInsideTheNamespaces(t *testing.T) {
	l := ForTest(t)
	out, err := l.A.Command(context.Background(), "ip", "-4", "-o", "addr", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), l.A.Addr.String()+"/24") {
		t.Errorf("namespace A has no %s:\n%s", l.A.Addr, out)
	}
	hostOut, err := osexec.Command("ip", "-4", "-o", "addr", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	if host := string(hostOut); strings.Contains(host, l.A.Addr.String()+"/") || strings.Contains(host, l.B.Addr.String()+"/") {
		t.Errorf("the host's namespace has a lab address:\n%s", host)
	}
}

// The loss knob drops packets and TCP makes up for them. 10% each way:
// enough that about 7 of 70 segments are lost, and far from the 20% at
// which backed-off retransmissions outlast send's 30 s now and then (it
// did once in CI). The 20% runs, which retry honest failures, are the
// lab tests of the pairs.
func TestLossIsRecoveredByRetransmission(t *testing.T) {
	l := ForTest(t)
	a, b := pair(t, l)
	if err := l.A.SetLoss(0.1); err != nil {
		t.Fatal(err)
	}
	if err := l.B.SetLoss(0.1); err != nil {
		t.Fatal(err)
	}
	send(t, a, b, 100_000)
	if r := tcpInfo(t, a).Total_retrans; r == 0 {
		t.Error("10% loss each way and the sender retransmitted nothing: the loss is not applied")
	} else {
		t.Logf("100,000 bytes exact at 10%% loss each way, %d segments retransmitted", r)
	}
	if err := l.A.SetLoss(1); err == nil {
		t.Error("loss 1 accepted")
	}
}

func TestRateLimitsTheUplink(t *testing.T) {
	l := ForTest(t)
	a, b := pair(t, l)
	const bits = 200_000
	if err := l.A.SetRate(bits, time.Second); err != nil {
		t.Fatal(err)
	}
	const n = 25_000 // 1 s at 200 kbit/s
	took := send(t, a, b, n)
	if floor := time.Duration(float64(n*8) / bits * 0.8 * float64(time.Second)); took < floor {
		t.Errorf("%d bytes in %v over 200 kbit/s, faster than the rate allows (%v)", n, took, floor)
	}
	t.Logf("%d bytes in %v at 200 kbit/s", n, took)
	if err := l.A.SetRate(0, 0); err != nil {
		t.Fatal(err)
	}
	if took := send(t, a, b, n); took > 500*time.Millisecond {
		t.Errorf("rate still limited after removal: %v", took)
	}
	if err := l.A.SetRate(0, 0); err != nil {
		t.Errorf("removing no limit: %v", err)
	}
}

// quiet reports whether c receives nothing (no data, no FIN, no RST) for
// d. The wait is the point: silence can only be observed over time.
func quiet(c *net.TCPConn, d time.Duration) error {
	c.SetReadDeadline(time.Now().Add(d))
	var buf [1]byte
	n, err := c.Read(buf[:])
	c.SetReadDeadline(time.Time{})
	if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	return fmt.Errorf("read %d bytes, %v", n, err)
}

func TestPartitionDropsEverythingUntilLifted(t *testing.T) {
	l := ForTest(t)
	a, b := pair(t, l)
	if err := l.Partition(true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := quiet(b, 300*time.Millisecond); err != nil {
		t.Fatalf("through a partition: %v", err)
	}
	if err := l.Partition(false); err != nil {
		t.Fatal(err)
	}
	// The retransmission of "x" arrives once the partition is lifted.
	b.SetReadDeadline(time.Now().Add(10 * time.Second))
	var buf [1]byte
	if _, err := io.ReadFull(b, buf[:]); err != nil || buf[0] != 'x' {
		t.Fatalf("after the partition: %q, %v", buf, err)
	}
}

func TestVanishedPeerSendsNeitherFINNorRST(t *testing.T) {
	l := ForTest(t)
	a, b := pair(t, l)
	if err := l.A.Vanish(); err != nil {
		t.Fatal(err)
	}
	a.Close() // its FIN is lost with everything else
	if err := quiet(b, 300*time.Millisecond); err != nil {
		t.Fatalf("the vanished peer was heard: %v", err)
	}
	if _, err := b.Write([]byte("anyone?")); err != nil {
		t.Fatal(err)
	}
	if err := quiet(b, 300*time.Millisecond); err != nil {
		t.Fatalf("the vanished peer answered: %v", err)
	}
	if info := tcpInfo(t, b); info.Unacked == 0 {
		t.Error("the write to the vanished peer was acknowledged")
	}
}

func TestResetOneSideReachesOnlyThatSide(t *testing.T) {
	l := ForTest(t)
	a, b := pair(t, l)
	if err := l.A.ResetOneSide(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	a.SetReadDeadline(time.Now().Add(10 * time.Second))
	var buf [16]byte
	if _, err := a.Read(buf[:]); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("A read %v, want a reset", err)
	}
	if _, err := b.Write([]byte("still there?")); err != nil {
		t.Fatal(err)
	}
	if err := quiet(b, 300*time.Millisecond); err != nil {
		t.Fatalf("B heard of the reset: %v", err)
	}
}

func TestCloseRemovesTheNamespaces(t *testing.T) {
	if err := Check(); err != nil {
		t.Skip(err)
	}
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []*Host{l.A, l.B} {
		if _, err := os.Stat(netnsDir + "/" + h.Name); err != nil {
			t.Errorf("namespace %s missing: %v", h.Name, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for _, h := range []*Host{l.A, l.B} {
		if _, err := os.Stat(netnsDir + "/" + h.Name); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s still there after Close: %v", h.Name, err)
		}
	}
	if err := l.A.SetLoss(0.1); err == nil {
		t.Error("a knob on a closed link worked")
	}
}

func TestCleanStaleRemovesOnlyDeadRuns(t *testing.T) {
	if err := Check(); err != nil {
		t.Skip(err)
	}
	dead := fmt.Sprintf("%s%d-%s-a", namePrefix, 1<<30, randomHex(3)) // beyond pid_max: never alive
	live := fmt.Sprintf("%s%d-%s-a", namePrefix, os.Getpid(), randomHex(3))
	for _, n := range []string{dead, live} {
		if err := ipCmd("netns", "add", n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ipCmd("netns", "del", n) })
	}
	CleanStale()
	if _, err := os.Stat(netnsDir + "/" + dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale namespace %s kept: %v", dead, err)
	}
	if _, err := os.Stat(netnsDir + "/" + live); err != nil {
		t.Errorf("a live run's namespace %s removed: %v", live, err)
	}
}

// A run killed with SIGKILL leaves behind what it started in its
// namespaces (a tms --keep serves for ever, a client waits): removing the
// namespace's name does not end them, and they keep the namespace alive.
// CleanStale ends them too. Before, after kill -9 of the cmd/tcplab lab
// test, `tcplab tms --keep` and tmc.py were left running under pid 1.
func TestCleanStaleEndsTheProcessesOfDeadRuns(t *testing.T) {
	if err := Check(); err != nil {
		t.Skip(err)
	}
	dead := fmt.Sprintf("%s%d-%s-b", namePrefix, 1<<30, randomHex(3)) // beyond pid_max: never alive
	if err := ipCmd("netns", "add", dead); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ipCmd("netns", "del", dead) })
	left := osexec.Command("ip", "netns", "exec", dead, "sleep", "300")
	if err := left.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- left.Wait() }()
	t.Cleanup(func() {
		left.Process.Kill()
		<-exited
	})
	// ip netns exec has joined the namespace once the process is listed
	// in it.
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, _ := osexec.Command("ip", "netns", "pids", dead).Output()
		if strings.TrimSpace(string(out)) != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the process never entered the namespace")
		}
		time.Sleep(10 * time.Millisecond) // polling: there is no event for joining a namespace
	}
	CleanStale()
	select {
	case err := <-exited:
		exited <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("a process in a dead run's namespace still runs after CleanStale")
	}
	if _, err := os.Stat(netnsDir + "/" + dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale namespace %s kept: %v", dead, err)
	}
}

// The demo shows Check's line to users of the binary, who have no
// scripts/test.sh: it names the packages to install. Before, it said
// "needs iptables (scripts/test.sh installs them)".
func TestCheckNamesThePackagesToInstall(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("netlab: needs root (network namespaces, iptables, tc)")
	}
	dir := t.TempDir()
	ip, err := osexec.LookPath("ip")
	if err != nil {
		t.Skip("netlab: needs ip")
	}
	if err := os.Symlink(ip, dir+"/ip"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	err = check()
	want := "netlab: needs tc, iptables (install the iproute2 and iptables packages)"
	if err == nil || err.Error() != want {
		t.Fatalf("check() = %v, want %s", err, want)
	}
}

// A one-way blackout: B hears nothing from A (not even its
// acknowledgements) while A still hears B; lifted, A's data arrives.
func TestDarkIsOneWay(t *testing.T) {
	l := ForTest(t)
	a, b := pair(t, l)
	if err := l.A.SetDark(true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := quiet(b, 300*time.Millisecond); err != nil {
		t.Fatalf("B heard A through its blackout: %v", err)
	}
	if _, err := b.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	var buf [1]byte
	if _, err := io.ReadFull(a, buf[:]); err != nil || buf[0] != 'y' {
		t.Fatalf("A did not hear B: %q, %v", buf, err)
	}
	if info := tcpInfo(t, b); info.Unacked == 0 {
		t.Error("A's acknowledgement of y crossed the blackout")
	}
	if err := l.A.SetDark(false); err != nil {
		t.Fatal(err)
	}
	b.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(b, buf[:]); err != nil || buf[0] != 'x' {
		t.Fatalf("after the blackout: %q, %v", buf, err)
	}
}

// A path-MTU blackhole eats full segments and lets small packets through.
func TestMaxPacketDropsOnlyLargePackets(t *testing.T) {
	l := ForTest(t)
	a, b := pair(t, l)
	if err := l.A.SetMaxPacket(1000); err != nil {
		t.Fatal(err)
	}
	send(t, a, b, 100) // a small segment crosses
	if _, err := a.Write(bytes.Repeat([]byte("z"), 3000)); err != nil {
		t.Fatal(err)
	}
	if err := quiet(b, 300*time.Millisecond); err != nil {
		t.Fatalf("a full segment crossed the blackhole: %v", err)
	}
	if err := l.A.SetMaxPacket(0); err != nil {
		t.Fatal(err)
	}
	b.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(b, make([]byte, 3000)); err != nil {
		t.Fatalf("after the blackhole: %v", err)
	}
	if err := l.A.SetMaxPacket(-1); err == nil {
		t.Error("a negative size accepted")
	}
}

// SetResetting resets what the side sends while on, and can be lifted: a
// connection made afterwards works.
func TestResettingCanBeLifted(t *testing.T) {
	l := ForTest(t)
	a, b := pair(t, l)
	if err := l.A.SetResetting(true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	a.SetReadDeadline(time.Now().Add(10 * time.Second))
	var buf [16]byte
	if _, err := a.Read(buf[:]); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("A read %v, want a reset", err)
	}
	if err := quiet(b, 100*time.Millisecond); err != nil {
		t.Fatalf("B heard of the reset: %v", err)
	}
	if err := l.A.SetResetting(false); err != nil {
		t.Fatal(err)
	}
	a2, b2 := pair(t, l)
	send(t, a2, b2, 1000)
}

// The same seed gives the same schedule; the faults keep to the options'
// bounds; different seeds differ.
func TestNewScheduleIsSeeded(t *testing.T) {
	o := ScheduleOptions{Span: 3 * time.Second, MaxFaults: 4, MaxBlackout: 8 * time.Second}
	seen := map[string]bool{}
	kinds := map[FaultKind]bool{}
	for seed := range uint64(200) {
		s := NewSchedule(seed, o)
		if again := NewSchedule(seed, o); again.String() != s.String() {
			t.Fatalf("seed %d gave %s, then %s", seed, s, again)
		}
		seen[s.String()] = true
		if n := len(s.Faults); n < 1 || n > 4 {
			t.Errorf("seed %d: %d faults", seed, n)
		}
		for i, f := range s.Faults {
			kinds[f.Kind] = true
			if f.At < 0 || f.At > o.Span || f.For <= 0 || f.For > o.MaxBlackout {
				t.Errorf("seed %d: fault out of bounds: %s", seed, f)
			}
			if i > 0 && f.At < s.Faults[i-1].At {
				t.Errorf("seed %d: faults out of order: %s", seed, s)
			}
		}
	}
	if len(seen) < 190 {
		t.Errorf("200 seeds gave only %d different schedules", len(seen))
	}
	if len(kinds) != len(kindNames) {
		t.Errorf("200 schedules used only the kinds %v", kinds)
	}
}

// Run applies each fault in its window and lifts everything at the end:
// a blackout of A for the schedule's middle holds A's byte back until it
// ends, and nothing is left applied afterwards.
func TestRunAppliesAndLiftsTheFaults(t *testing.T) {
	l := ForTest(t)
	a, b := pair(t, l)
	s := Schedule{Faults: []Fault{
		{Kind: Blackout, From: FromA, At: 0, For: 600 * time.Millisecond},
		{Kind: RateChange, From: FromB, At: 100 * time.Millisecond, For: 200 * time.Millisecond, Rate: 64_000},
	}}
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- l.Run(context.Background(), s) }()
	// The first fault applies at once; the write races it, so look for
	// the byte only after the blackout has certainly begun.
	for !l.A.isDark() {
		time.Sleep(time.Millisecond) // polling the knob: Run has no event for it
	}
	if _, err := a.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b.SetReadDeadline(time.Now().Add(10 * time.Second))
	var buf [1]byte
	if _, err := io.ReadFull(b, buf[:]); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 600*time.Millisecond {
		t.Errorf("the byte crossed after %v, inside the blackout", took)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out, err := l.A.Command(context.Background(), "iptables", "-S", "INPUT").CombinedOutput()
	if err != nil || strings.Contains(string(out), "DROP") {
		t.Errorf("rules left after the schedule: %s %v", out, err)
	}
	if l.B.currentRate() != 0 {
		t.Error("B's rate limit left after the schedule")
	}
}
