//go:build !unix

package store

import (
	"errors"
	"os"
)

// lock fails: without flock(2) two servers could append to one log and
// interleave their records, so here OpenFile and RepairLog refuse every
// data file (Memory and Redis work as anywhere).
func lock(*os.File) (busy bool, err error) {
	return false, errors.New("data files need flock(2), which this system does not have")
}
