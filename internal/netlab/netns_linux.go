package netlab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// killInside sends SIGKILL to every process in the named namespace.
func killInside(name string) {
	out, err := labCommand("ip", "netns", "pids", name).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// enter switches the calling (locked) thread into h's namespace and
// returns the function that switches it back and unlocks it. If switching
// back fails the thread stays locked, and Go ends it with its goroutine.
// On an error the thread is unchanged and unlocked.
func (h *Host) enter() (restore func(), err error) {
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("netlab: %w", err)
	}
	target, err := os.Open(netnsDir + "/" + h.Name)
	if err != nil {
		self.Close()
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("netlab: %w", err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		self.Close()
		runtime.UnlockOSThread() // still in its own namespace
		return nil, fmt.Errorf("netlab: enter %s: %w", h.Name, err)
	}
	return func() {
		defer self.Close()
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}, nil
}

// ownProcessGroup makes cmd the leader of a process group of its own, out
// of reach of a terminal's SIGINT to this one.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
