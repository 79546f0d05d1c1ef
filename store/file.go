package store

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Fsync says when File makes appended bytes durable.
type Fsync int

const (
	// FsyncAlways: Append returns only after the bytes are written and
	// fsync'd, so no answered byte is lost even to a power cut. Concurrent
	// appends share one fsync (group commit).
	FsyncAlways Fsync = iota
	// FsyncInterval: Append returns after the bytes are written to the
	// file (so they survive the process being killed) and they are fsync'd
	// every FileOptions.Interval; a power cut loses at most that much.
	FsyncInterval
)

func (f Fsync) String() string {
	if f == FsyncInterval {
		return "interval"
	}
	return "always"
}

// ParseFsync parses "always" or "interval".
func ParseFsync(s string) (Fsync, error) {
	switch s {
	case "always":
		return FsyncAlways, nil
	case "interval":
		return FsyncInterval, nil
	}
	return 0, fmt.Errorf("fsync policy must be always or interval, not %q", s)
}

// FileOptions configures OpenFile.
type FileOptions struct {
	Fsync Fsync
	// Interval between fsyncs under FsyncInterval; zero means one second.
	Interval time.Duration
	// Logger receives the store's state changes, once each: writes failing
	// (ERROR), writes working again, the file replaced. Nil discards.
	Logger *slog.Logger
}

// File keeps v in memory, as Memory does, and in an append-only log file,
// from which OpenFile recovers it exactly after a restart. The format of
// the log is package internal/datalog's: a header with a checksum key,
// then one record per write, each checked together with its length and
// its place in the file, so that a record duplicated, dropped or moved
// cannot pass.
//
// A crash can tear only the last write: leave its record short or, after
// a power cut on some file systems, with sectors of zeros. OpenFile cuts
// such a torn tail (Cut says how many bytes, and what they were). Those
// bytes were never answered, since Append waits for its record to be
// written (and, under FsyncAlways, synced) before it returns. Any other bad
// bytes are damage, which OpenFile refuses with a CorruptError, leaving the
// file as it was (see RepairLog). A log of an older format is rewritten in
// the current one, the original kept beside it (Upgraded).
//
// Value returns only what is written to the file, so a watcher is never
// shown a byte that a crash could still take back. The file is locked
// (flock) so two servers cannot write the same log, and after every write
// File checks that its path still names the file it holds: a log removed or
// replaced underneath stops the store (every later append fails) rather
// than let letters be answered into a file nobody will read. Close looks
// once more, so a log lost while the store was idle is reported too.
//
// An append that cannot be written (a full disk, an I/O error) fails, and
// so do the appends queued behind it; the partial write is cut from the
// file, v forgets those bytes, and the next append tries the disk again, so
// the store recovers by itself once the disk accepts writes. Only when the
// partial write cannot be cut (or the file was replaced) does the store
// refuse every later append.
type File struct {
	localGroup
	queue    appendQueue
	file     *logFile // flushLoop's alone once OpenFile returns, until it stops
	logger   *slog.Logger
	cut      cutTail // the torn tail OpenFile cut
	upgraded string  // where OpenFile kept a log of an older format

	kick    chan struct{} // wakes flushLoop: records are pending
	stop    chan struct{} // closed by Close
	stopped chan struct{} // closed when flushLoop has returned
}

// appendQueue is v and the appends on their way to the file. Appenders add
// to it and flushLoop takes from it; its lock guards every field, so that
// a reply (a prefix of buf), the batch it waits for and what Value shows
// (the written prefix) always agree. The bytes after written are the
// pending appends: flushLoop encodes them as a record when it writes them,
// at the offset they will have.
type appendQueue struct {
	mu      sync.Mutex
	buf     []byte // v: all bytes appended, written or not
	written int    // prefix of buf that is in the file
	batch   *batch // the batch of the appends after written
	flying  *batch // the batch being written, if any
	failed  error  // the store refuses appends from then on
	closed  bool
}

// batch is a group of appends written (and synced) together.
type batch struct {
	done chan struct{}
	err  error
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// OpenFile opens or creates the log at path and recovers v from it.
func OpenFile(path string, opts FileOptions) (*File, error) {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	lf, err := openLog(path, opts.Fsync, opts.Logger)
	if err != nil {
		return nil, err
	}
	v, cut, upgraded, err := lf.load()
	if err != nil {
		lf.f.Close()
		return nil, err
	}
	s := &File{file: lf, logger: opts.Logger, cut: cut, upgraded: upgraded,
		queue: appendQueue{buf: v, written: len(v), batch: newBatch()},
		kick:  make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go s.flushLoop(opts.Interval)
	return s, nil
}

// Dropped reports how many bytes of a torn tail OpenFile cut.
func (s *File) Dropped() int64 { return s.cut.Bytes }

// Cut reports the torn tail OpenFile cut: its bytes, and what they were
// ("an incomplete last record", "zeros", ...); 0 and "" if none.
func (s *File) Cut() (bytes int64, why string) { return s.cut.Bytes, s.cut.Why }

// Upgraded reports where OpenFile kept the original of a log it rewrote
// in the current format, or "".
func (s *File) Upgraded() string { return s.upgraded }

// Append implements Store: it returns once p is in the file (and synced,
// under FsyncAlways).
func (s *File) Append(ctx context.Context, p []byte) ([]byte, error) {
	return s.AppendCapped(ctx, p, 0)
}

// AppendCapped implements Capped. The limit counts every byte appended,
// whether or not it is in the file yet.
func (s *File) AppendCapped(ctx context.Context, p []byte, limit int) ([]byte, error) {
	q := &s.queue
	q.mu.Lock()
	switch {
	case q.closed:
		q.mu.Unlock()
		return nil, ErrClosed
	case q.failed != nil:
		q.mu.Unlock()
		return nil, q.failed
	case limit > 0 && len(q.buf)+len(p) > limit:
		q.mu.Unlock()
		return nil, ErrFull
	}
	q.buf = append(q.buf, p...)
	v := q.buf[:len(q.buf):len(q.buf)]
	b := q.batch
	q.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	select {
	case <-b.done:
		if b.err != nil {
			return nil, b.err
		}
		return v, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// flushLoop writes the pending appends, batch after batch, and syncs them
// as the policy says. It is the only writer of the file.
func (s *File) flushLoop(interval time.Duration) {
	defer close(s.stopped)
	q := &s.queue
	var tick <-chan time.Time
	if s.file.policy == FsyncInterval {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	dirty := false
	for {
		stopping := false
		select {
		case <-s.kick:
		case <-tick:
			if dirty {
				if err := s.file.f.Sync(); err != nil {
					s.logger.Error("cannot sync the data file: letters answered since the last sync may not be on disk", "file", s.file.path, "err", err)
				}
				dirty = false
			}
			continue
		case <-s.stop:
			stopping = true
		}
		q.mu.Lock()
		// Appends only add past len(buf) (or move buf), so data stays as
		// it is while it is written without the lock.
		data, b, end := q.buf[q.written:], q.batch, len(q.buf)
		q.batch = newBatch()
		q.flying = b
		q.mu.Unlock()
		var err error
		if len(data) > 0 {
			var fatal error
			err, fatal = s.file.write(data, stopping)
			if fatal != nil {
				s.fail(fatal)
			}
			if err == nil { // a failed write leaves the earlier ones to sync
				dirty = s.file.policy == FsyncInterval && !stopping
			}
		}
		if stopping && dirty {
			if serr := s.file.f.Sync(); serr != nil {
				s.fail(fmt.Errorf("sync data file %s at stop: %w: letters answered since the last sync may not be on disk", s.file.path, pathCause(serr)))
			}
		}
		q.mu.Lock()
		var next *batch
		if err != nil {
			// v forgets the failed batch and the appends queued behind
			// it, whose replies were built on top of it: none of them is
			// answered.
			q.buf = q.buf[:q.written]
			next, q.batch = q.batch, newBatch()
		} else if len(data) > 0 {
			q.written = end
		}
		q.flying = nil
		q.mu.Unlock()
		b.err = err
		close(b.done)
		if next != nil {
			next.err = err
			close(next.done)
		}
		if len(data) > 0 && err == nil {
			s.notify.Signal()
		}
		if stopping {
			return
		}
	}
}

// fail puts the store in the failed state for good, saying so once.
func (s *File) fail(err error) {
	q := &s.queue
	q.mu.Lock()
	first := q.failed == nil
	if first {
		q.failed = err
	}
	q.mu.Unlock()
	if first {
		s.logger.Error("data file store stopped: refusing every letter", "err", err)
	}
}

// Flush waits until every append made before it is in the file (and
// synced, under FsyncAlways) or has failed, even one whose caller stopped
// waiting. After it, and with no append running, Value is what OpenFile
// recovers after a restart.
func (s *File) Flush(ctx context.Context) error {
	q := &s.queue
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	var waits []*batch
	if q.flying != nil {
		waits = append(waits, q.flying)
	}
	if len(q.buf) > q.written {
		waits = append(waits, q.batch)
	}
	q.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	for _, b := range waits {
		select {
		case <-b.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Value implements Store: v as far as it is in the file.
func (s *File) Value(context.Context) ([]byte, error) {
	q := &s.queue
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, ErrClosed
	}
	return q.buf[:q.written:q.written], nil
}

// Close writes and syncs what is pending, checks that the path still names
// the log and that the log ends where the store wrote it last, then closes
// the file. Its error says that v is not kept: the store failed (the log
// was removed or replaced, a write could not be cut), the last sync
// failed, or the log was removed, replaced, cut or written to by someone
// else while the store held it, even while no letter came. It is safe to
// call more than once.
func (s *File) Close() error {
	q := &s.queue
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	close(s.stop)
	<-s.stopped
	s.closeGroup()
	q.mu.Lock()
	failed, v := q.failed, q.buf[:q.written]
	q.mu.Unlock()
	if failed == nil {
		if failed = s.file.check(v); failed != nil {
			s.logger.Error("data file lost: v is not kept", "err", failed)
		}
	}
	err := s.file.f.Close()
	if failed != nil {
		return failed
	}
	if err != nil {
		return fmt.Errorf("close data file: %w", err)
	}
	return nil
}

// syncDir fsyncs the directory holding path, so a newly created file
// survives a power cut.
func syncDir(path string) {
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
}
