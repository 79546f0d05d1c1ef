package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
)

// damagedTestLog writes a log of 2000 records with record 900 damaged and
// returns its path and bytes.
func damagedTestLog(t *testing.T) (path string, damaged []byte) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "v.log")
	file, offsets := writeTestLog(t, path, 2000)
	damaged = bytes.Clone(file)
	damaged[offsets[900]+9] ^= 0x01
	if err := os.WriteFile(path, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, damaged
}

// unchangedLog fails the test unless the log at path holds orig and
// nothing was left beside it: no copy, no temporary file.
func unchangedLog(t *testing.T, path string, orig []byte) {
	t.Helper()
	if now, _ := os.ReadFile(path); !bytes.Equal(now, orig) {
		t.Errorf("the log changed (%d bytes, was %d)", len(now), len(orig))
	}
	if left, _ := filepath.Glob(path + ".*"); len(left) != 0 {
		t.Errorf("left beside the log: %v", left)
	}
}

// strsvr --repair stops at SIGTERM: a repair stopped before it replaced
// the log changes nothing, leaves no copy and no temporary file, says so
// on standard output, and exits 143. (Before: the repair went on to the
// end, deaf to the signal, and replaced the log.) Here SIGTERM has come
// as the repair begins, which is the one moment an in-process run can
// choose without a clock; store's TestRepairLogStopsAtEveryStage stops
// it at every later stage.
func TestStrsvrRepairStopsAtSIGTERM(t *testing.T) {
	path, damaged := damagedTestLog(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(stopSignal{syscall.SIGTERM})
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"strsvr", "--repair", path}, strings.NewReader(""), &out, &errOut)
	if code != exitTerminated {
		t.Errorf("exit %d, want %d", code, exitTerminated)
	}
	unchangedLog(t, path, damaged)
	if want := path + ": repair stopped by SIGTERM before the log was replaced: nothing changed\n"; out.String() != want {
		t.Errorf("standard output %q, want %q", out.String(), want)
	}
	if errOut.Len() != 0 {
		t.Errorf("standard error %q, want nothing", errOut.String())
	}
}

// The same through the binary, with a real SIGTERM at a moment the test
// does not choose: the repair is stopped with nothing changed, or it had
// replaced the log already and says so; either way the status is 143.
func TestStrsvrRepairSIGTERMBinary(t *testing.T) {
	bin := testkit.Binary(t)
	path, damaged := damagedTestLog(t)
	p := testkit.Start(t, nil, bin, "strsvr", "--repair", path)
	p.Cmd.Process.Signal(syscall.SIGTERM)
	code := p.Wait(t, 10*time.Second)
	out := p.Stdout.String()
	switch {
	case code == -1:
		// Killed before it caught signals: it had begun nothing.
		unchangedLog(t, path, damaged)
	case code == 0 && strings.Contains(out, "kept a copy of the original"):
		// Done before the signal was caught: a complete repair.
	case code != exitTerminated:
		t.Fatalf("exit %d after SIGTERM, want %d: %q %q", code, exitTerminated, out, p.Stderr.String())
	case strings.Contains(out, "nothing changed"):
		unchangedLog(t, path, damaged)
	case strings.Contains(out, "kept a copy of the original"):
		if now, _ := os.ReadFile(path); bytes.Equal(now, damaged) {
			t.Error("the report says the log was repaired, and it was not")
		}
	default:
		t.Fatalf("after SIGTERM, standard output says neither outcome: %q (stderr %q)", out, p.Stderr.String())
	}
}
