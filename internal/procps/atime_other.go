//go:build !linux

package procps

import "time"

// accessTime is Linux's here: everything this package reads is in /proc,
// which other systems do not have, so w's IDLE is never asked for.
func accessTime(string) (time.Time, bool) { return time.Time{}, false }
