package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tcplab/tcplab/internal/datalog"
)

// logFile is File's open log: the file, its header, where its good part
// ends, and whether its path still names it. OpenFile sets it up and from
// then on only flushLoop uses it (and Close, after flushLoop has
// returned), so it has no lock.
type logFile struct {
	path    string
	f       *os.File
	id      os.FileInfo    // f as opened, to notice the path naming another file
	head    datalog.Header // the log's header: its format and checksum key
	policy  Fsync
	log     *slog.Logger
	off     int64     // end of the good part of the file
	enc     []byte    // scratch: the records of one write
	failing error     // the last write failed; the next tries again
	checked time.Time // when sameFile last looked
}

// openLog opens or creates the log at path and locks it.
func openLog(path string, policy Fsync, log *slog.Logger) (*logFile, error) {
	if err := regularOrAbsent(path); err != nil {
		return nil, err
	}
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
	if !id.Mode().IsRegular() { // made so since regularOrAbsent looked
		f.Close()
		return nil, notRegular(path, id)
	}
	return &logFile{path: path, f: f, id: id, policy: policy, log: log}, nil
}

// regularOrAbsent refuses a path that names something other than a
// regular file (through symbolic links): a FIFO, whose open(2) would wait
// for a writer, or a device, which takes writes it cannot keep. It looks
// before the open, which for such files may block or do something.
func regularOrAbsent(path string) error {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().IsRegular() {
		return nil // absent (it is created), or the open says why not
	}
	return notRegular(path, fi)
}

func notRegular(path string, fi os.FileInfo) error {
	what := "not a regular file"
	switch t := fi.Mode().Type(); {
	case t&os.ModeNamedPipe != 0:
		what += " but a FIFO"
	case t&os.ModeDevice != 0:
		what += " but a device"
	case t&os.ModeSocket != 0:
		what += " but a socket"
	case t&os.ModeDir != 0:
		what += " but a directory"
	}
	return fmt.Errorf("data file %s is %s: a log must be a file", path, what)
}

// cutTail is what load cut from the end of a log: a write torn by a crash.
type cutTail struct {
	Bytes int64
	Why   string
}

// load reads the log into v, cuts a torn tail (see datalog's Header.Tail)
// and leaves the file ready for appends; a log of an older format is
// rewritten in the current one first (upgraded: the path of the original,
// kept beside it). A log damaged anywhere else is refused with a
// CorruptError and left as it is; so is a file whose header does not
// parse, whatever version it seems to name.
func (l *logFile) load() (v []byte, cut cutTail, upgraded string, err error) {
	st, err := l.f.Stat()
	if err != nil {
		return nil, cut, "", fmt.Errorf("data file: %w", err)
	}
	if st.Size() == 0 {
		return nil, cut, "", l.writeHeader()
	}
	h, v, good, err := datalog.Read(bufio.NewReaderSize(l.f, int(min(st.Size(), 256<<10))))
	switch {
	case errors.Is(err, datalog.ErrTornHeader):
		// Torn while it was created: no record was ever written.
		if err := l.cut(0); err != nil {
			return nil, cut, "", err
		}
		return nil, cutTail{st.Size(), "a header cut short"}, "", l.writeHeader()
	case err != nil:
		return nil, cut, "", fmt.Errorf("data file %s: %w", l.path, err)
	}
	l.head = h
	if good < st.Size() {
		tail, err := l.readTail(good, st.Size())
		if err != nil {
			return nil, cut, "", err
		}
		verdict := h.Tail(tail, good)
		if !verdict.Cut {
			return nil, cut, "", &CorruptError{Path: l.path, Offset: good, After: st.Size() - good, Next: verdict.Next, Why: verdict.Why}
		}
		if err := l.cut(good); err != nil {
			return nil, cut, "", err
		}
		cut = cutTail{st.Size() - good, verdict.Why}
	}
	if h.Version < datalog.Version {
		if upgraded, err = l.upgrade(v); err != nil {
			return nil, cut, "", err
		}
		return v, cut, upgraded, nil
	}
	if _, err := l.f.Seek(good, io.SeekStart); err != nil {
		return nil, cut, "", fmt.Errorf("data file: %w", err)
	}
	l.off = good
	return v, cut, "", nil
}

// writeHeader writes the header of a new log into the empty file.
func (l *logFile) writeHeader() error {
	line, h := datalog.NewHeader()
	if _, err := l.f.WriteAt(line, 0); err != nil {
		return fmt.Errorf("write data file: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("sync data file: %w", err)
	}
	syncDir(l.path)
	l.head = h
	l.off = int64(len(line))
	return nil
}

// upgrade rewrites the log, of an older format and holding v, in the
// current one. The new log is written beside the old one, locked and
// synced, the original is kept as PATH.vN-TIME (a hard link where the
// file system allows one, else a synced copy), and the new log is
// renamed over the path, so at every moment the path names a whole log,
// old or new. It returns the name of the kept original.
func (l *logFile) upgrade(v []byte) (kept string, err error) {
	target, err := filepath.EvalSymlinks(l.path)
	if err != nil {
		return "", fmt.Errorf("upgrade data file %s: %w", l.path, err)
	}
	mode := l.id.Mode().Perm()
	tmp := target + ".upgrade-tmp"
	os.Remove(tmp) // left by an upgrade that crashed: this log's lock is ours
	nf, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return "", fmt.Errorf("upgrade data file %s: %w", l.path, err)
	}
	fail := func(err error) (string, error) {
		nf.Close()
		os.Remove(tmp)
		return "", fmt.Errorf("upgrade data file %s from format v%d: %w; nothing changed", l.path, l.head.Version, err)
	}
	if _, err := lock(nf); err != nil {
		return fail(err)
	}
	line, h := datalog.NewHeader()
	b := h.AppendRecords(line, int64(len(line)), v)
	if err := nf.Chmod(mode); err != nil {
		return fail(err)
	}
	if _, err := nf.Write(b); err != nil {
		return fail(err)
	}
	if err := nf.Sync(); err != nil {
		return fail(err)
	}
	id, err := nf.Stat()
	if err != nil {
		return fail(err)
	}
	kept = fmt.Sprintf("%s.v%d-%s", target, l.head.Version, time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.Link(target, kept); err != nil {
		orig, rerr := os.ReadFile(target)
		if rerr != nil {
			return fail(rerr)
		}
		if err := writeSynced(kept, orig, os.O_EXCL, mode); err != nil {
			os.Remove(kept)
			return fail(fmt.Errorf("keep the original: %w", err))
		}
	}
	if err := os.Rename(tmp, target); err != nil {
		os.Remove(kept)
		return fail(err)
	}
	syncDir(target)
	l.log.Info("upgraded the data file to the current format", "file", l.path, "from", fmt.Sprintf("v%d", l.head.Version), "to", fmt.Sprintf("v%d", h.Version), "original", kept, "bytes", len(v))
	l.f.Close() // the original, now only under kept
	l.f, l.id, l.head, l.off = nf, id, h, int64(len(b))
	return kept, nil
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

// write appends data to v in the log, as one record per write (data over
// datalog.MaxRecord takes several, each synced before the next under
// FsyncAlways, so that a crash can tear only the last), syncs as the policy
// (or stopping) says, then checks that the path still names the file. On
// failure it cuts what was partly written, so the next write starts from
// the good end again, and returns the error for the batch; if even the cut
// fails, or the file was replaced, fatal is the error the store must refuse
// every later append with.
func (l *logFile) write(data []byte, stopping bool) (err, fatal error) {
	at := l.off
	for rest := data; len(rest) > 0 && err == nil; {
		n := min(len(rest), datalog.MaxRecord)
		l.enc = l.head.AppendRecords(l.enc[:0], at, rest[:n])
		rest = rest[n:]
		if _, err = l.f.WriteAt(l.enc, at); err != nil {
			err = fmt.Errorf("write data file %s: %w", l.path, pathCause(err))
			break
		}
		at += int64(len(l.enc))
		if l.policy == FsyncAlways || stopping {
			if err = l.f.Sync(); err != nil {
				err = fmt.Errorf("sync data file %s: %w", l.path, pathCause(err))
			}
		}
	}
	if cap(l.enc) > 4<<20 {
		l.enc = nil
	}
	if err == nil {
		if err = l.sameFile(false); err != nil {
			err = fmt.Errorf("%w: letters written now would be lost; restart strsvr", err)
			return err, err
		}
		l.off = at
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
// looks at most once every checkEvery (unless now), and letters written in
// that window may be answered into a log that was just removed.
func (l *logFile) sameFile(now bool) error {
	if l.policy != FsyncAlways && !now {
		t := time.Now()
		if t.Sub(l.checked) < checkEvery {
			return nil
		}
		l.checked = t
	}
	fi, err := os.Stat(l.path)
	if err != nil {
		return fmt.Errorf("data file %s was removed while in use (%w)", l.path, pathCause(err))
	}
	if !os.SameFile(fi, l.id) {
		return fmt.Errorf("data file %s was replaced by another file while in use", l.path)
	}
	return nil
}

// check is the look Close takes at the log when the store stops: the path
// still names it, it ends where the store last wrote it, and it reads
// back as v, the letters the store wrote. Reading it back costs one pass
// over the log at the stop (as a restart would), with a bounded buffer
// (256 KiB and one record): it is what tells a log cut and then written
// past (a hole where records were), or changed in place by the same
// number of bytes anywhere, from a log that is kept, and nothing short
// of reading every byte sees the latter.
func (l *logFile) check(v []byte) error {
	if err := l.sameFile(true); err != nil {
		return err
	}
	fi, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("data file %s: %w", l.path, pathCause(err))
	}
	if fi.Size() != l.off {
		return fmt.Errorf("data file %s is %d bytes where strsvr wrote %d: something else cut it or wrote to it while in use", l.path, fi.Size(), l.off)
	}
	// Streamed, each record compared with its part of v as it comes: the
	// memory is r's buffer and one record, whatever the log's length.
	r := bufio.NewReaderSize(io.NewSectionReader(l.f, 0, l.off), int(min(l.off, 256<<10)))
	rest, same := v, true
	_, good, err := datalog.Walk(r, func(data []byte) bool {
		same = bytes.HasPrefix(rest, data)
		if same {
			rest = rest[len(data):]
		}
		return same
	})
	if err != nil {
		return fmt.Errorf("data file %s no longer reads back (%w): something else wrote to it while in use", l.path, err)
	}
	if !same || len(rest) != 0 && good == l.off {
		return fmt.Errorf("data file %s no longer reads back as v: something else wrote to it while in use", l.path)
	}
	if good != l.off {
		return fmt.Errorf("data file %s no longer reads back as v (its records end at byte %d, strsvr wrote %d): something else cut it or wrote to it while in use", l.path, good, l.off)
	}
	return nil
}

// checkEvery bounds, under FsyncInterval, how often sameFile looks.
const checkEvery = 10 * time.Millisecond
