package store

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/tcplab/tcplab/internal/datalog"
)

// logFile is File's open log: the file, its checksum key, where its good
// part ends, and whether its path still names it. OpenFile sets it up and
// from then on only flushLoop uses it (AppendCapped reads key, which never
// changes), so it has no lock.
type logFile struct {
	path    string
	f       *os.File
	id      os.FileInfo // f as opened, to notice the path naming another file
	key     uint32      // the log's checksum key (0 in an unkeyed log)
	policy  Fsync
	log     *slog.Logger
	off     int64     // end of the good part of the file
	failing error     // the last write failed; the next tries again
	checked time.Time // when sameFile last looked
}

// openLog opens or creates the log at path and locks it.
func openLog(path string, policy Fsync, log *slog.Logger) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open data file: %w", err)
	}
	if busy, err := lock(f); err != nil {
		f.Close()
		if busy {
			return nil, fmt.Errorf("data file %s is in use by another process", path)
		}
		return nil, fmt.Errorf("lock data file %s: %w", path, err)
	}
	id, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data file: %w", err)
	}
	return &logFile{path: path, f: f, id: id, policy: policy, log: log}, nil
}

// load reads the log into v, cuts a torn tail (dropped: its length) and
// leaves the file ready for appends. A log damaged before its end is
// refused with a CorruptError and left as it is.
func (l *logFile) load() (v []byte, dropped int64, err error) {
	st, err := l.f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("data file: %w", err)
	}
	if st.Size() == 0 {
		return nil, 0, l.writeHeader()
	}
	v, good, key, err := datalog.DecodeKeyed(bufio.NewReaderSize(l.f, 256<<10))
	l.key = key
	if err != nil {
		return nil, 0, fmt.Errorf("data file %s: %w", l.path, err)
	}
	if good < st.Size() {
		if good > 0 {
			tail, err := l.readTail(good, st.Size())
			if err != nil {
				return nil, 0, err
			}
			if err := checkTail(l.path, tail, good, l.key); err != nil {
				return nil, 0, err
			}
		}
		if err := l.cut(good); err != nil {
			return nil, 0, err
		}
		dropped = st.Size() - good
	}
	if _, err := l.f.Seek(good, io.SeekStart); err != nil {
		return nil, 0, fmt.Errorf("data file: %w", err)
	}
	if good == 0 { // the header itself was torn
		return nil, dropped, l.writeHeader()
	}
	l.off = good
	return v, dropped, nil
}

// writeHeader writes the header of a new keyed log into the empty file.
func (l *logFile) writeHeader() error {
	h, key := datalog.NewHeader()
	if _, err := l.f.WriteAt(h, 0); err != nil {
		return fmt.Errorf("write data file: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("sync data file: %w", err)
	}
	syncDir(l.path)
	l.key = key
	l.off = int64(len(h))
	return nil
}

// cut truncates the log at good and syncs it.
func (l *logFile) cut(good int64) error {
	if err := l.f.Truncate(good); err != nil {
		return fmt.Errorf("cut torn tail of %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("sync data file: %w", err)
	}
	return nil
}

// readTail reads the log from off to size.
func (l *logFile) readTail(off, size int64) ([]byte, error) {
	tail := make([]byte, size-off)
	if _, err := l.f.ReadAt(tail, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read data file %s: %w", l.path, err)
	}
	return tail, nil
}

// write writes data at the end of the good part of the log and syncs it if
// the policy (or stopping) says so, then checks that the path still names
// the file. On failure it cuts what was partly written, so the next write
// starts from the good end again, and returns the error for the batch; if
// even the cut fails, or the file was replaced, fatal is the error the
// store must refuse every later append with.
func (l *logFile) write(data []byte, stopping bool) (err, fatal error) {
	_, err = l.f.WriteAt(data, l.off)
	if err == nil && (l.policy == FsyncAlways || stopping) {
		if err = l.f.Sync(); err != nil {
			err = fmt.Errorf("sync data file %s: %w", l.path, pathCause(err))
		}
	} else if err != nil {
		err = fmt.Errorf("write data file %s: %w", l.path, pathCause(err))
	}
	if err == nil {
		if err = l.sameFile(); err != nil {
			return err, err
		}
		l.off += int64(len(data))
		was := l.failing
		l.failing = nil
		if was != nil {
			l.log.Info("the data file accepts writes again: appending", "file", l.path)
		}
		return nil, nil
	}
	if terr := l.f.Truncate(l.off); terr != nil {
		return err, fmt.Errorf("%w; and the partial write cannot be cut (%v): refusing appends until restarted", err, terr)
	}
	first := l.failing == nil
	l.failing = err
	if first {
		l.log.Error("cannot store letters: refusing them until the data file accepts writes again", "file", l.path, "err", err)
	}
	return err, nil
}

// pathCause drops the path from an *os.PathError, which the message names
// already.
func pathCause(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// sameFile reports whether the path still names the open log: a log
// unlinked or replaced under a running server would take every later
// letter with it, and let a second server in on the path. Under
// FsyncAlways it looks after every write, where the fsync dwarfs it. Under
// FsyncInterval a stat costs about as much as the write itself, so it
// looks at most once every checkEvery: letters written in that window may
// be answered into a log that was just removed.
func (l *logFile) sameFile() error {
	if l.policy != FsyncAlways {
		now := time.Now()
		if now.Sub(l.checked) < checkEvery {
			return nil
		}
		l.checked = now
	}
	fi, err := os.Stat(l.path)
	if err != nil {
		return fmt.Errorf("data file %s was removed while in use (%w): letters written now would be lost; restart strsvr", l.path, pathCause(err))
	}
	if !os.SameFile(fi, l.id) {
		return fmt.Errorf("data file %s was replaced by another file while in use: letters written now would be lost; restart strsvr", l.path)
	}
	return nil
}

// checkEvery bounds, under FsyncInterval, how often sameFile looks.
const checkEvery = 10 * time.Millisecond
