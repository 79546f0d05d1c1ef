package main

import (
	"bytes"
	"context"
	byteorder "encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/datalog"
	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/sharedstring"
	"github.com/tcplab/tcplab/store"
)

// recovered opens the log at path as a restart would and returns v.
func recovered(t *testing.T, path string) []byte {
	t.Helper()
	st, err := store.OpenFile(path, store.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v, err := st.Value(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The final v that strsvr prints on SIGTERM is the v a restart recovers,
// even with letters in flight at the signal. (Before: 1-6 bytes short in
// about half of the loaded runs, the appends still being written.)
func TestStrSvrFinalValueIsSaved(t *testing.T) {
	for round := range 4 {
		policy := []string{"always", "interval"}[round%2]
		data := filepath.Join(t.TempDir(), "v.log")
		svr, ps := startStrsvr(t, "--keep", "--data", data, "--fsync", policy)
		var wg sync.WaitGroup
		var sent sync.WaitGroup
		sent.Add(16)
		for i := range 16 {
			wg.Go(func() {
				var once sync.Once
				defer once.Do(sent.Done) // also if it fails early
				c, err := sharedstring.Dial(context.Background(), "127.0.0.1", ps, sharedstring.Options{Mode: sharedstring.Mode(1 + i%2)})
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				for n := 0; ; n++ {
					if _, err := c.Send([]byte{byte('a' + i)}); err != nil {
						return // the server stopped
					}
					if n == 20 {
						once.Do(sent.Done)
					}
				}
			})
		}
		sent.Wait() // every client is in full flow
		svr.Cmd.Process.Signal(syscall.SIGTERM)
		if code := svr.Wait(t, 10*time.Second); code != exitTerminated {
			t.Fatalf("round %d: exit %d, want %d: %s", round, code, exitTerminated, svr.Stderr.String())
		}
		wg.Wait()
		printed, ok := strings.CutPrefix(svr.Stdout.String(), "the final value of v is ")
		if !ok {
			t.Fatalf("round %d: printed %q", round, svr.Stdout.String())
		}
		printed = strings.TrimSuffix(printed, "\n")
		if got := recovered(t, data); string(got) != printed {
			t.Fatalf("round %d (%s): printed a v of %d bytes, a restart recovers %d", round, policy, len(printed), len(got))
		}
	}
}

// writeTestLog writes a log of n records "<i>" and returns the file's bytes
// and the offset of each record.
func writeTestLog(t *testing.T, path string, n int) ([]byte, []int) {
	t.Helper()
	st, err := store.OpenFile(path, store.FileOptions{Fsync: store.FsyncInterval})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := st.Append(context.Background(), fmt.Appendf(nil, "<%d>", i)); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int
	off := datalog.HeaderLen(b)
	for i := range n {
		offsets = append(offsets, off)
		off += datalog.RecordHeader + len(fmt.Sprintf("<%d>", i))
	}
	return b, offsets
}

// A log damaged before valid records: strsvr refuses to start (exit 1, one
// line naming the file, the offset and the bytes after it) and leaves the
// file alone; strsvr --repair keeps a copy, says what it dropped, and then
// strsvr starts with every other letter. (Before: the log was cut at the
// damage with one WARN line, exit 0, and every letter after it was lost.)
func TestStrSvrDamagedLog(t *testing.T) {
	bin := testkit.Binary(t)
	data := filepath.Join(t.TempDir(), "v.log")
	file, offsets := writeTestLog(t, data, 2000)
	damaged := bytes.Clone(file)
	damaged[offsets[900]+9] ^= 0x01
	os.WriteFile(data, damaged, 0o644)

	p := testkit.Start(t, nil, bin, "strsvr", "--data", data, "0")
	if code := p.Wait(t, 10*time.Second); code != 1 {
		t.Fatalf("strsvr on a damaged log: exit %d, want 1: %s", code, p.Stderr.String())
	}
	msg := strings.TrimSpace(p.Stderr.String())
	after := len(file) - offsets[900]
	for _, want := range []string{data, "at byte " + strconv.Itoa(offsets[900]), strconv.Itoa(after) + " bytes", "--repair"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal %q does not say %q", msg, want)
		}
	}
	if strings.Count(msg, "\n") != 0 {
		t.Errorf("refusal is not one line: %q", msg)
	}
	if now, _ := os.ReadFile(data); !bytes.Equal(now, damaged) {
		t.Fatal("strsvr changed a damaged log")
	}

	rep := testkit.Start(t, nil, bin, "strsvr", "--repair", data)
	if code := rep.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("strsvr --repair: exit %d: %s", code, rep.Stderr.String())
	}
	out := rep.Stdout.String()
	copies, _ := filepath.Glob(data + ".damaged-*")
	if len(copies) != 1 {
		t.Fatalf("%d copies of the original beside it, want 1", len(copies))
	}
	if saved, _ := os.ReadFile(copies[0]); !bytes.Equal(saved, damaged) {
		t.Error("the copy is not the original")
	}
	for _, want := range []string{copies[0], fmt.Sprintf("dropped %d bytes at byte %d", offsets[901]-offsets[900], offsets[900]), "1999 records"} {
		if !strings.Contains(out, want) {
			t.Errorf("repair report does not say %q:\n%s", want, out)
		}
	}
	want := ""
	for i := range 2000 {
		if i != 900 {
			want += fmt.Sprintf("<%d>", i)
		}
	}
	if got := recovered(t, data); string(got) != want {
		t.Fatalf("repaired v has %d bytes, want %d", len(got), len(want))
	}
	// Nothing to repair now.
	rep = testkit.Start(t, nil, bin, "strsvr", "--repair", data)
	if code := rep.Wait(t, 10*time.Second); code != 0 || !strings.Contains(rep.Stdout.String(), "nothing to repair") {
		t.Fatalf("second repair: exit %d: %q %q", code, rep.Stdout.String(), rep.Stderr.String())
	}
}

// A torn tail is still cut at start, with a WARN that gives the bytes.
func TestStrSvrTornTailWarns(t *testing.T) {
	data := filepath.Join(t.TempDir(), "v.log")
	file, _ := writeTestLog(t, data, 10)
	os.WriteFile(data, append(file, 0, 0, 0, 5, 1, 2), 0o644)
	var errOut testkit.SafeBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out bytes.Buffer
	go func() {
		done <- run(ctx, []string{"strsvr", "--keep", "--data", data, "0"}, strings.NewReader(""), &out, &errOut)
	}()
	for !strings.Contains(errOut.String(), "strsvr listening") {
		select {
		case code := <-done:
			t.Fatalf("exit %d: %s", code, errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != exitInterrupted { // a caller's cancel reads as Ctrl-C
		t.Fatalf("exit %d, want %d", code, exitInterrupted)
	}
	if !strings.Contains(errOut.String(), "level=WARN") || !strings.Contains(errOut.String(), "bytes=6") {
		t.Errorf("no WARN with the 6 bytes cut:\n%s", errOut.String())
	}
}

// A recovered v longer than --max-value is refused at start, in one line.
// (Before: the server started, then dropped every client.)
func TestStrSvrRecoveredValueOverMaxValue(t *testing.T) {
	data := filepath.Join(t.TempDir(), "v.log")
	writeTestLog(t, data, 100) // 390 bytes: <0> to <99>
	code, _, errOut := runCmd(t, "", "strsvr", "--data", data, "--max-value", "100", "0")
	if code != 1 || !strings.Contains(errOut, "390 bytes") || !strings.Contains(errOut, "--max-value") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("exit %d: %q", code, errOut)
	}
	if got := recovered(t, data); len(got) != 390 {
		t.Fatalf("v changed: %d bytes", len(got))
	}
}

// The log removed under a running server, and a second server started on
// the path: the first stops answering letters, with an ERROR that says
// why, so nothing answered goes only into the unlinked file; the second
// serves the new log. (Before: the first went on answering into the
// deleted file, and those letters were gone after a restart.)
func TestStrSvrLogRemovedUnderIt(t *testing.T) {
	data := filepath.Join(t.TempDir(), "v.log")
	first, port1 := startStrsvr(t, "--keep", "--data", data)
	c := dialFramed(t, port1)
	defer c.Close()
	if v, err := c.Send([]byte("a")); err != nil || string(v) != "a" {
		t.Fatalf("Send a: %q %v", v, err)
	}
	os.Remove(data)
	second, port2 := startStrsvr(t, "--keep", "--data", data)
	if v, err := c.Send([]byte("b")); err == nil {
		t.Fatalf("the first server answered %q after its log was removed", v)
	} else if !strings.Contains(err.Error(), "letters not stored") {
		t.Errorf("client told %q, want 'letters not stored'", err)
	}
	first.WaitFor(t, "by another file while in use", 10*time.Second) // the second server made a new one
	if !strings.Contains(first.Stderr.String(), "level=ERROR") {
		t.Errorf("no ERROR line: %s", first.Stderr.String())
	}
	c2 := dialFramed(t, port2)
	defer c2.Close()
	if v, err := c2.Send([]byte("Z")); err != nil || string(v) != "Z" {
		t.Fatalf("second server: %q %v", v, err)
	}
	for _, p := range []*testkit.Proc{first, second} {
		p.Cmd.Process.Signal(syscall.SIGTERM)
		p.Wait(t, 10*time.Second)
	}
	if got := recovered(t, data); string(got) != "Z" {
		t.Fatalf("the log on the path holds %q, want Z", got)
	}
}

// A full disk through the binaries: strclnt is told why its letters were
// not stored and exits 1, the server logs the cause at ERROR once, and
// once space is freed a new strclnt is served, with no restart.
func TestStrSvrDiskFull(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tcplab-test", dir, "tmpfs", 0, "size=128k"); err != nil {
		t.Skipf("cannot mount a tmpfs for a full disk (%v): needs root", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	bin := testkit.Binary(t)
	data := filepath.Join(dir, "v.log")
	svr, ps := startStrsvr(t, "--keep", "--data", data)
	ty := startTypist(t, bin, "strclnt", "localhost", ps)
	ty.typeLetter(t, "a", "a")
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{4096, 1} {
		for {
			if _, err := filler.Write(make([]byte, n)); err != nil {
				break
			}
		}
	}
	filler.Close()
	io.WriteString(ty.in, strings.Repeat("x", 8000)+"\n") // more than the log's last page holds
	if code := ty.proc.Wait(t, 10*time.Second); code != 1 {
		t.Fatalf("strclnt on a full disk: exit %d, want 1; stderr %q", code, ty.proc.Stderr.String())
	}
	if msg := ty.proc.Stderr.String(); !strings.Contains(msg, "letters not stored") || !strings.Contains(msg, "no space left on device") {
		t.Errorf("strclnt's error: %q", msg)
	}
	svr.WaitFor(t, "level=ERROR msg=\"cannot store letters", 10*time.Second)
	os.Remove(filler.Name())
	again := startTypist(t, bin, "strclnt", "localhost", ps)
	again.typeLetter(t, "b", "ab")
	again.leave(t)
	svr.WaitFor(t, "accepts writes again", 10*time.Second)
}

// A classic client types, in one write, letters that spell a record (the
// length and CRC-32C of "evil", then "evil"); a crash then tears that
// record. The restart cuts the torn tail with a WARN and serves: the
// look-alike does not pass for a valid record after the tear. (Before:
// strsvr refused to start, "damaged ... with valid records after it",
// until an operator ran --repair.)
func TestStrSvrTornLetterLookingLikeRecord(t *testing.T) {
	data := filepath.Join(t.TempDir(), "v.log")
	srv, port := startStrsvr(t, "--no-discovery", "--data", data)
	fake := []byte("evil")
	letters := bytes.Repeat([]byte("x"), 20)
	letters = byteorder.BigEndian.AppendUint32(letters, uint32(len(fake)))
	letters = byteorder.BigEndian.AppendUint32(letters, crc32.Checksum(fake, crc32.MakeTable(crc32.Castagnoli)))
	letters = append(letters, fake...)
	letters = append(letters, bytes.Repeat([]byte("y"), 20)...)
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		t.Fatal(err)
	}
	c.Write(letters)
	// The replies are v after each letter: 1 + 2 + ... + len(letters) bytes.
	want := len(letters) * (len(letters) + 1) / 2
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, want)); err != nil {
		t.Fatalf("replies: %v", err)
	}
	c.Close()
	if code := srv.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("strsvr exit %d: %s", code, srv.Stderr.String())
	}
	file, _ := os.ReadFile(data)
	if got, _, _ := datalog.Decode(bytes.NewReader(file)); !bytes.Equal(got, letters) {
		t.Fatalf("log holds %q, want the letters", got)
	}
	os.WriteFile(data, file[:len(file)-10], 0o644) // the crash: "y"s torn off
	// startStrsvr fails the test if strsvr refuses the torn tail.
	srv, _ = startStrsvr(t, "--keep", "--data", data)
	srv.Cmd.Process.Signal(syscall.SIGTERM)
	srv.Wait(t, 10*time.Second)
	if !strings.Contains(srv.Stderr.String(), "level=WARN") {
		t.Errorf("no WARN for the torn tail: %s", srv.Stderr.String())
	}
	if got := recovered(t, data); len(got) != 0 {
		t.Errorf("recovered %q, want an empty v", got)
	}
}

// --repair misused is a usage error (exit 2) that names --repair, and
// repairs nothing: an empty FILE, a PORT, or flags that only a serving
// strsvr reads (an operator who adds --data B to --repair A would
// otherwise have A repaired and B ignored, silently).
func TestStrSvrRepairUsage(t *testing.T) {
	data := filepath.Join(t.TempDir(), "v.log")
	writeTestLog(t, data, 3)
	for _, args := range [][]string{
		{"--repair", ""},
		{"--repair", data, "2000"},
		{"--repair", data, "--data", data + ".other"},
		{"--repair", data, "--store", "redis://127.0.0.1:1/0?key=v"},
		{"--repair", data, "--keep"},
	} {
		code, out, errOut := runCmd(t, "", append([]string{"strsvr"}, args...)...)
		if code != 2 || !strings.Contains(errOut, "--repair") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || out != "" {
			t.Errorf("strsvr %q: exit %d, stdout %q, stderr %q; want exit 2 and one line naming --repair", args, code, out, errOut)
		}
	}
}

// A stop tells the truth about the log: one removed or replaced while the
// server was idle, or after it refused a letter for that, is seen at stop,
// and whatever signal stopped the server it exits 1 with an ERROR line
// saying v is not kept, since a failure outranks 130 and 143 (a unit with
// SuccessExitStatus=143 would report success). (Before: SIGTERM printed
// "hello", exited 143 with no ERROR, and a restart recovered nothing; after
// a refused letter, --keep and SIGTERM still exited 143.)
func TestStrSvrStopTellsTheLogIsGone(t *testing.T) {
	for _, c := range []struct {
		name    string
		sig     syscall.Signal
		refused bool // a letter is refused first (the store saw it)
		replace bool
		json    bool
	}{
		{"removed while idle, SIGTERM", syscall.SIGTERM, false, false, false},
		{"replaced while idle, SIGINT", syscall.SIGINT, false, true, false},
		{"removed, a letter refused, SIGTERM", syscall.SIGTERM, true, false, false},
		{"removed while idle, --json", syscall.SIGTERM, false, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "v.log")
			// --fsync always: the store looks at the path after every
			// write, so the refused letter is refused (interval looks
			// every 10 ms).
			policy := map[bool]string{false: "interval", true: "always"}[c.refused]
			args := []string{"--keep", "--fsync", policy, "--data", data}
			if c.json {
				args = append(args, "--json")
			}
			svr, port := startStrsvr(t, args...)
			cl := dialFramed(t, port)
			defer cl.Close()
			if v, err := cl.Send([]byte("hello")); err != nil || string(v) != "hello" {
				t.Fatalf("Send hello: %q %v", v, err)
			}
			os.Remove(data)
			if c.replace {
				os.WriteFile(data, nil, 0o644)
			}
			if c.refused {
				if v, err := cl.Send([]byte("!")); err == nil {
					t.Fatalf("a letter was answered (%q) after the log was removed", v)
				}
				svr.WaitFor(t, "level=ERROR", 10*time.Second)
			}
			svr.Cmd.Process.Signal(c.sig)
			code := svr.Wait(t, 10*time.Second)
			errOut := svr.Stderr.String()
			if code != 1 {
				t.Errorf("exit %d, want 1: a log that is gone outranks the signal:\n%s", code, errOut)
			}
			last := lastLine(errOut)
			if !strings.HasPrefix(last, "tcplab strsvr: ") || !strings.Contains(last, "not kept") || !strings.Contains(last, data) {
				t.Errorf("last line %q does not say that v is not kept in %s", last, data)
			}
			if !strings.Contains(errOut, "level=ERROR") {
				t.Errorf("no ERROR line:\n%s", errOut)
			}
			if out := svr.Stdout.String(); c.json && !strings.Contains(out, `"event":"end"`) || c.json && !strings.Contains(out, `"ok":false`) {
				t.Errorf("--json output does not end with ok false:\n%s", out)
			}
		})
	}
}
