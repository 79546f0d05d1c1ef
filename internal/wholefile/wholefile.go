// Package wholefile writes a file whole or not at all: the pcap files and
// pictures the lessons and tmc --plot leave for a person to open.
//
// Write writes to a new file beside the one named and renames it into
// place only when every write and the close succeeded, so a full disk
// leaves no cut-off pcap or picture that looks whole, and a file that was
// there before is left as it was. The new file is created, never opened:
// a symlink planted at the name (in a directory another user can write,
// such as one under /tmp, for "sudo tcplab demo --out /tmp/lab") is
// replaced, never followed, so root never writes through it to the file
// it points at.
package wholefile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
)

// Write creates or replaces the file path with what write writes, mode
// 0644. On any error it removes what it wrote and returns the error,
// naming path.
func Write(path string, write func(io.Writer) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.part")
	if err != nil {
		return named(err, path)
	}
	tmp := f.Name()
	err = write(f)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return named(err, path)
	}
	return nil
}

// named reports a file error under the name the caller gave, not the
// temporary one.
func named(err error, path string) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return &os.PathError{Op: pe.Op, Path: path, Err: pe.Err}
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return &os.PathError{Op: "rename", Path: path, Err: le.Err}
	}
	return err
}
