package procps

import (
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A zombie shows as ps shows it: "[name] <defunct>" in ps aux, the bare
// name in ps auxc. Before, native ps aux showed "[name]", and a few
// zombies on the machine failed TestNativeMatchesProcpsPS.
func TestNativePSZombie(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	// Wait for the exit without reaping it (WNOWAIT): /bin/true is a
	// zombie from then until cmd.Wait.
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == nil {
			break
		}
		if err != unix.EINTR {
			t.Fatalf("waitid: %v", err)
		}
	}
	for _, tc := range []struct {
		args bool
		want string
	}{{true, "[true] <defunct>"}, {false, "true"}} {
		out, err := PS(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		_, rows, _ := psRows(t, string(out))
		row := rows[cmd.Process.Pid]
		if len(row) < 11 || strings.Join(row[10:], " ") != tc.want {
			t.Errorf("args %v: zombie's row %q, want COMMAND %q", tc.args, row, tc.want)
		}
	}
}
