package procps

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v4/host"
)

// utmpRecord is one record in glibc's layout.
func utmpRecord(typ int16, line, user, hostName string, sec int32) []byte {
	b := make([]byte, utmpSize)
	binary.NativeEndian.PutUint16(b[utOffType:], uint16(typ))
	binary.NativeEndian.PutUint32(b[4:], 4242) // ut_pid
	copy(b[utOffLine:utOffLine+32], line)
	copy(b[40:44], "ts/0") // ut_id
	copy(b[utOffUser:utOffUser+32], user)
	copy(b[utOffHost:utOffHost+256], hostName)
	binary.NativeEndian.PutUint32(b[utOffTvSec:], uint32(sec))
	return b
}

func writeUtmp(t *testing.T, dir string) string {
	t.Helper()
	var buf bytes.Buffer
	buf.Write(utmpRecord(2, "~", "reboot", "6.1.0", 1700000000))        // BOOT_TIME
	buf.Write(utmpRecord(7, "pts/0", "alice", "192.0.2.4", 1700000100)) // USER_PROCESS
	buf.Write(utmpRecord(8, "pts/1", "", "", 1700000150))               // DEAD_PROCESS
	buf.Write(utmpRecord(7, "tty1", "bobbobbobbob", "", 1700000200))
	buf.Write(utmpRecord(7, "pts/2", "torn", "", 1)[:100]) // being written
	p := filepath.Join(dir, "run", "utmp")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The utmp reader reads what gopsutil's does (gopsutil reads utmp itself
// where the file exists; it is its fallback that runs loginctl).
func TestReadUtmpMatchesGopsutil(t *testing.T) {
	dir := t.TempDir()
	p := writeUtmp(t, dir)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := readUtmp(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []session{
		{User: "alice", Terminal: "pts/0", Host: "192.0.2.4", Started: 1700000100, Pid: 4242},
		{User: "bobbobbobbob", Terminal: "tty1", Started: 1700000200, Pid: 4242},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("readUtmp = %+v, want %+v", got, want)
	}
	t.Setenv("HOST_VAR", dir)
	theirs, err := host.Users()
	if err != nil {
		t.Fatal(err)
	}
	var conv []session
	for _, u := range theirs {
		// gopsutil keeps no login PID.
		conv = append(conv, session{User: u.User, Terminal: u.Terminal, Host: u.Host, Started: int64(u.Started), Pid: 4242})
	}
	if !reflect.DeepEqual(got, conv) {
		t.Fatalf("readUtmp = %+v, gopsutil %+v", got, conv)
	}
}

func writeLogind(t *testing.T, dir string) {
	t.Helper()
	files := map[string]string{
		"3": "# This is private data. Do not parse.\nUID=1000\nUSER=alice\nACTIVE=1\nSTATE=active\nREMOTE=1\nTYPE=tty\nCLASS=user\nTTY=pts/0\nREMOTE_HOST=192.0.2.4\nSERVICE=sshd\nLEADER=1234\nREALTIME=1700000100123456\n",
		"5": "UID=1001\nUSER=carol\nTYPE=wayland\nCLASS=user\nSEAT=seat0\nREALTIME=1700000050000000\n",
		// A user manager and a greeter are no logins; neither is a session
		// with neither terminal nor seat (a cron job).
		"c1": "UID=1000\nUSER=alice\nCLASS=manager\nREALTIME=1700000000000000\n",
		"7":  "UID=113\nUSER=lightdm\nCLASS=greeter\nSEAT=seat0\nREALTIME=1700000000000000\n",
		"9":  "UID=0\nUSER=root\nCLASS=user\nTYPE=unspecified\nREALTIME=1700000000000000\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The session's reference FIFO: opening it would block for ever.
	if err := syscall.Mkfifo(filepath.Join(dir, "3.ref"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestReadLogindSessions(t *testing.T) {
	dir := t.TempDir()
	writeLogind(t, dir)
	got, err := readLogindSessions(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []session{
		{User: "carol", Terminal: "seat0", Started: 1700000050},
		{User: "alice", Terminal: "pts/0", Host: "192.0.2.4", Started: 1700000100, Pid: 1234},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("readLogindSessions = %+v, want %+v", got, want)
	}
}

// The documented order: utmp where it exists, else logind's records, else
// nobody.
func TestLoggedInOrder(t *testing.T) {
	dir := t.TempDir()
	utmp := writeUtmp(t, dir)
	logind := filepath.Join(dir, "sessions")
	os.Mkdir(logind, 0o755)
	writeLogind(t, logind)
	set := func(u, l string) {
		oldU, oldL := utmpPath, logindSessions
		utmpPath, logindSessions = u, l
		t.Cleanup(func() { utmpPath, logindSessions = oldU, oldL })
	}
	for _, tc := range []struct {
		name, utmp, logind string
		users              []string
	}{
		{"utmp first", utmp, logind, []string{"alice", "bobbobbobbob"}},
		{"logind without utmp", filepath.Join(dir, "none"), logind, []string{"carol", "alice"}},
		{"neither", filepath.Join(dir, "none"), filepath.Join(dir, "none2"), nil},
	} {
		set(tc.utmp, tc.logind)
		s, err := loggedIn()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var users []string
		for _, u := range s {
			users = append(users, u.User)
		}
		if !reflect.DeepEqual(users, tc.users) {
			t.Errorf("%s: users %q, want %q", tc.name, users, tc.users)
		}
	}
	// And the count reaches w's uptime line.
	set(filepath.Join(dir, "none"), logind)
	out, err := Uptime()
	if err != nil || !bytes.Contains(out, []byte(" 2 users,")) {
		t.Fatalf("uptime with two logind sessions: %q, %v", out, err)
	}
}

// Reading the login records is bounded whatever the file is: a FIFO in
// utmp's place (open would wait for a writer for ever) or a device that
// never ends is refused at once, and of a huge utmp only the first
// maxUtmpBytes are read.
func TestLoggedInBounded(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge")
	rec := utmpRecord(7, "pts/9", "mallory", "", 1700000000)
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(bytes.Repeat(rec, 2*maxUtmpBytes/utmpSize))
	f.Close()
	oldU, oldL := utmpPath, logindSessions
	t.Cleanup(func() { utmpPath, logindSessions = oldU, oldL })
	logindSessions = filepath.Join(dir, "none")
	for _, tc := range []struct {
		path  string
		users int
		fails bool
	}{
		{fifo, 0, true},
		{"/dev/zero", 0, true},
		{huge, maxUtmpBytes / utmpSize, false},
	} {
		utmpPath = tc.path
		done := make(chan struct{})
		var s []session
		go func() { s, err = loggedIn(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second): // a guard: the read must not block
			t.Fatalf("%s: loggedIn still reading after 10 s", tc.path)
		}
		if (err != nil) != tc.fails || len(s) != tc.users {
			t.Errorf("%s: %d sessions, error %v; want %d, failure %v", tc.path, len(s), err, tc.users, tc.fails)
		}
	}
}
