package testkit

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ListeningPort returns the port of a TCP socket in state LISTEN that
// process pid holds (from /proc: its file descriptors' socket inodes,
// looked up in /proc/net/tcp and tcp6), or "" if it holds none yet. It
// tells a server's own port from one that merely answers on it: a dial
// that succeeds may reach another test's server that took the port first.
func ListeningPort(pid int) string {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if ino, ok := strings.CutPrefix(link, "socket:["); ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line)
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			if n, err := strconv.ParseUint(hexPort, 16, 16); err == nil {
				return strconv.FormatUint(n, 10)
			}
		}
	}
	return ""
}
