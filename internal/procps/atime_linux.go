package procps

import (
	"os"
	"syscall"
	"time"
)

// accessTime is the last access of the file at path (a terminal's: the
// user's last keystroke), to the second.
func accessTime(path string) (time.Time, bool) {
	st, err := os.Stat(path)
	if err != nil {
		return time.Time{}, false
	}
	at, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(at.Atim.Sec, 0), true
}
