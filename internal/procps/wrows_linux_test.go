package procps

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startOnPty starts sleep as the foreground process of a new pseudo
// terminal and returns the terminal's name ("pts/N") and the process.
func startOnPty(t *testing.T) (string, *os.Process) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("needs a pseudo terminal: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty := "pts/" + strconv.Itoa(int(n))
	slave, err := os.OpenFile("/dev/"+tty, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	// An argv[0] longer than w's WHAT column (447 bytes when its output
	// is not a terminal), which w cuts.
	cmd := &exec.Cmd{Path: "/bin/sleep", Args: []string{"sleep" + strings.Repeat("x", 600), "60"}}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return tty, cmd.Process
}

// w's session rows, natively, are procps's: the same rows and the same
// columns. procps's w reads a utmp made by the test in a mount namespace
// of its own (a tmpfs on /run), the renderer the same file. Before, the
// renderer's LOGIN@ was one column short ("14:08 " where w prints
// " 14:08  " after FROM's 16), and it listed rows that w skips: a user
// with no account, and a stale record whose login process is gone.
func TestNativeWRowsMatchProcps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a mount namespace (unshare -m)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	w := lookPath("w")
	if w == "" {
		t.Skip("needs procps's w")
	}
	// A login process off the terminal (as sshd's is), started first.
	login := exec.Command("/bin/sleep", "61")
	if err := login.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { login.Process.Kill(); login.Wait() })
	tty, proc := startOnPty(t)
	nobody := "nobody"
	if _, err := user.Lookup(nobody); err != nil {
		t.Skip("needs the user nobody")
	}
	pidMax, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	gone, _ := strconv.Atoi(strings.TrimSpace(string(pidMax))) // never a PID
	now := time.Now()
	rec := func(user, host string, pid int, ago time.Duration) []byte {
		b := utmpRecord(utmpUserProcess, tty, user, host, int32(now.Add(-ago).Unix()))
		binary.NativeEndian.PutUint32(b[4:], uint32(pid))
		return b
	}
	var buf bytes.Buffer
	buf.Write(rec("root", "192.0.2.4", proc.Pid, 10*time.Minute))    // today
	buf.Write(rec("nosuchuser9z", "", proc.Pid, 20*time.Minute))     // no account
	buf.Write(rec("root", "stale.example", gone, 30*time.Minute))    // login process gone
	buf.Write(rec("root", "", proc.Pid, 3*24*time.Hour))             // this week
	buf.Write(rec("root", "example.org", proc.Pid, 10*24*time.Hour)) // older
	// A host that holds a newline and escape sequences: procps's w prints
	// it up to the first character that is not printable, then "-"; the
	// renderer printed it raw, a forged row and the escapes in the answer.
	buf.Write(rec("root", "evil\nroot     pts/9    forged\x1b]0;pwned\x07", proc.Pid, 4*time.Minute))
	buf.Write(rec("root", "\x1b[2J", proc.Pid, 5*time.Minute))
	buf.Write(rec("root", "rlo\u202eexample.org", proc.Pid, 6*time.Minute))
	// nobody's login process is off the terminal, and the terminal's
	// foreground process is root's: w shows the login process.
	buf.Write(rec(nobody, "", login.Process.Pid, time.Minute))
	// A record with no user name: neither listed nor counted.
	buf.Write(rec("", "", proc.Pid, time.Minute))
	// A terminal that does not exist: IDLE is 0, as w's stat fails.
	b := rec("root", "", proc.Pid, 2*time.Minute)
	copy(b[utOffLine:utOffLine+32], "pts/4242\x00")
	buf.Write(b)
	utmp := filepath.Join(t.TempDir(), "utmp")
	if err := os.WriteFile(utmp, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "-m", "/bin/sh", "-c", `mount -t tmpfs tmpfs /run && cp "$1" /run/utmp && exec "$2"`, "sh", utmp, w)
	cmd.Env = toolEnv
	real, err := cmd.Output()
	if err != nil {
		t.Skipf("cannot run w in a mount namespace: %v", err)
	}
	oldU, oldL := utmpPath, logindSessions
	t.Cleanup(func() { utmpPath, logindSessions = oldU, oldL })
	utmpPath = utmp
	native, err := W(true)
	if err != nil {
		t.Fatal(err)
	}
	rl := strings.Split(strings.TrimSuffix(string(real), "\n"), "\n")
	nl := strings.Split(strings.TrimSuffix(string(native), "\n"), "\n")
	if len(rl) != 10 {
		t.Fatalf("w listed %d rows, the test expects 8:\n%s", len(rl)-2, real)
	}
	if len(nl) != len(rl) {
		t.Fatalf("native rows differ in number from w's:\n native\n%s w\n%s", native, real)
	}
	// IDLE (columns 42 to 48) is the terminal's idle time, read by each at
	// its own second: masked, but for the row whose terminal does not
	// exist.
	mask := func(s string) string {
		if len(s) < 49 || strings.Contains(s, "pts/4242") {
			return s
		}
		return s[:42] + "<idle.>" + s[49:]
	}
	ru, _ := ParseUptimeLine(rl[0])
	nu, _ := ParseUptimeLine(nl[0])
	if nu.Users != ru.Users {
		t.Errorf("native counts %d users, w %d", nu.Users, ru.Users)
	}
	for i := 1; i < len(rl); i++ {
		if mask(nl[i]) != mask(rl[i]) {
			t.Errorf("line %d\n native %q\n w      %q", i, nl[i], rl[i])
		}
	}
}
