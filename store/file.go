package store

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FileMagic opens every data file of the first format, so that --data
// pointed at some other file is refused instead of being read as v. Logs
// of that format are still read and appended to; new logs are keyed (see
// KeyedMagic).
const FileMagic = "tcplab-strsvr-log v1\n"

// KeyedMagic opens a log whose record checksums are keyed: it is followed
// by the key, 8 lowercase hexadecimal digits, a space, the CRC-32C of
// those 8 digits, also in 8, and a newline (keyedHeader bytes in all). The
// header's own checksum keeps a damaged key from passing for another key,
// under which every record would fail and the whole log look torn. A record's checksum is the CRC-32C of its data computed from the
// key instead of from 0. Clients choose the bytes of records, and could
// otherwise type a letter that reads as a valid record; inside a record
// torn by a crash it would stand after the tear as a "valid record", and
// turn a torn tail, which is cut, into damage, which is refused. They
// never see the key, so their look-alikes fail the check (but for one
// chance in 2^32).
const KeyedMagic = "tcplab-strsvr-log v2 "

// keyedHeader is the length of a keyed log's header.
const keyedHeader = len(KeyedMagic) + 8 + 1 + 8 + 1

// LogHeaderLen returns the length of the header of the log that starts
// with b, before the first record, or 0 if b holds no whole header.
func LogHeaderLen(b []byte) int {
	if _, n, ok := parseHeader(b); ok {
		return n
	}
	return 0
}

// parseHeader reads the header at the start of b: the checksum key (0 for
// an unkeyed log), the header's length, and whether b holds a whole one.
func parseHeader(b []byte) (key uint32, n int, ok bool) {
	if len(b) >= len(FileMagic) && string(b[:len(FileMagic)]) == FileMagic {
		return 0, len(FileMagic), true
	}
	if len(b) < keyedHeader || string(b[:keyedHeader]) != string(keyedHeaderOf(b[len(KeyedMagic):len(KeyedMagic)+8])) {
		return 0, 0, false
	}
	k, err := strconv.ParseUint(string(b[len(KeyedMagic):len(KeyedMagic)+8]), 16, 32)
	if err != nil {
		return 0, 0, false
	}
	return uint32(k), keyedHeader, true
}

// keyedHeaderOf returns the header for the 8 hexadecimal digits of a key.
func keyedHeaderOf(key []byte) []byte {
	return fmt.Appendf(nil, "%s%s %08x\n", KeyedMagic, key, crc32.Checksum(key, castagnoli))
}

// tornHeader reports whether b is the start of a header cut short.
func tornHeader(b []byte) bool {
	if len(b) < len(FileMagic) && string(b) == FileMagic[:len(b)] {
		return true
	}
	if len(b) >= keyedHeader {
		return false
	}
	if len(b) <= len(KeyedMagic) {
		return string(b) == KeyedMagic[:len(b)]
	}
	if string(b[:len(KeyedMagic)]) != KeyedMagic {
		return false
	}
	for i, c := range b[len(KeyedMagic):] {
		if i == 8 && c != ' ' || i != 8 && !strings.ContainsRune("0123456789abcdef", rune(c)) {
			return false
		}
	}
	return true
}

// newHeader returns the header of a new keyed log, with a random key.
func newHeader() ([]byte, uint32) {
	var k [4]byte
	rand.Read(k[:])
	key := binary.BigEndian.Uint32(k[:]) | 1 // never 0, the unkeyed key
	return keyedHeaderOf(fmt.Appendf(nil, "%08x", key)), key
}

// recordSum is the checksum of a record's data under key.
func recordSum(key uint32, data []byte) uint32 {
	return crc32.Update(key, castagnoli, data)
}

// MaxRecord bounds one record of the log. Longer appends are cut into
// several records; a length above it on reading marks a damaged tail.
const MaxRecord = 1 << 20

// recordHeader is the length and the CRC-32C of a record's data.
const recordHeader = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

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
// from which OpenFile recovers it exactly after a restart.
//
// The log is a header followed by records, one per append (or per
// MaxRecord bytes of it). The header is KeyedMagic, the key in 8 lowercase
// hexadecimal digits and a newline (or, in logs made before keys, only
// FileMagic, with key 0). A record is:
//
//	offset 0  uint32 big-endian  n, the length of the data, 1..MaxRecord
//	offset 4  uint32 big-endian  CRC-32C (Castagnoli) of the data, computed
//	                             from the key (crc32.Update(key, ...))
//	offset 8  n bytes            the data: bytes appended to v, in order
//
// A crash can leave the last record short or, after a power cut on some
// file systems, filled with garbage or zeros; OpenFile keeps every record up to the
// first one that is short or fails its checksum and cuts this torn tail
// (Dropped says how many bytes). Those bytes were never answered, since
// Append waits for its record to be written (and, under FsyncAlways,
// synced) before it returns. A bad record with valid records after it is
// not a torn tail but damage: OpenFile refuses the log with a CorruptError
// and does not change it (see RepairLog).
//
// Value returns only what is written to the file, so a watcher is never
// shown a byte that a crash could still take back. The file is locked
// (flock) so two servers cannot write the same log, and after every write
// File checks that its path still names the file it holds: a log removed or
// replaced underneath stops the store (every later append fails) rather
// than let letters be answered into a file nobody will read.
//
// An append that cannot be written (a full disk, an I/O error) fails, and
// so do the appends queued behind it; the partial write is cut from the
// file, v forgets those bytes, and the next append tries the disk again, so
// the store recovers by itself once the disk accepts writes. Only when the
// partial write cannot be cut (or the file was replaced) does the store
// refuse every later append.
type File struct {
	localGroup
	path string
	opts FileOptions
	f    *os.File
	key  uint32 // the log's checksum key (0 in an unkeyed log)
	// The device and inode of f, to notice the path naming another file;
	// pathStat is sameFile's buffer.
	dev, ino uint64
	pathStat syscall.Stat_t
	checked  time.Time
	log      *slog.Logger

	mu      sync.Mutex
	buf     []byte // v: all bytes appended, written or not
	written int    // prefix of buf that is in the file
	pending []byte // encoded records not yet written
	spare   []byte // the other half of the double buffer
	batch   *batch // the batch the pending records belong to
	flying  *batch // the batch being written, if any
	failed  error  // the store refuses appends from then on
	closed  bool

	fileOff int64 // end of the good part of the file (flushLoop only)
	failing error // the last write failed; the next tries again (flushLoop only)

	kick    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	dropped int64
}

// batch is a group of appends written (and synced) together.
type batch struct {
	done chan struct{}
	err  error
}

// OpenFile opens or creates the log at path and recovers v from it.
func OpenFile(path string, opts FileOptions) (*File, error) {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open data file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data file %s is in use by another process", path)
		}
		return nil, fmt.Errorf("lock data file %s: %w", path, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data file: %w", err)
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		f.Close()
		return nil, fmt.Errorf("data file %s: no device and inode to check it by", path)
	}
	s := &File{path: path, opts: opts, f: f, dev: st.Dev, ino: st.Ino, log: opts.Logger, batch: newBatch(),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	if err := s.recover(); err != nil {
		f.Close()
		return nil, err
	}
	go s.flushLoop()
	return s, nil
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// recover reads the log into s.buf, cuts a damaged tail and leaves the file
// offset at the end.
func (s *File) recover() error {
	st, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("data file: %w", err)
	}
	if st.Size() == 0 {
		return s.writeHeader()
	}
	buf, good, key, err := decodeLog(bufio.NewReaderSize(s.f, 256<<10))
	s.key = key
	if err != nil {
		return fmt.Errorf("data file %s: %w", s.path, err)
	}
	if good < st.Size() {
		if good > 0 {
			tail, err := s.readTail(good, st.Size())
			if err != nil {
				return err
			}
			if err := checkTail(s.path, tail, good, s.key); err != nil {
				return err
			}
		}
		if err := s.dropTail(good, st.Size()); err != nil {
			return err
		}
	}
	if _, err := s.f.Seek(good, io.SeekStart); err != nil {
		return fmt.Errorf("data file: %w", err)
	}
	if good == 0 { // the header itself was torn
		return s.writeHeader()
	}
	s.buf = buf
	s.written = len(buf)
	s.fileOff = good
	return nil
}

// writeHeader writes the header of a new keyed log into the empty file.
func (s *File) writeHeader() error {
	h, key := newHeader()
	if _, err := s.f.WriteAt(h, 0); err != nil {
		return fmt.Errorf("write data file: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync data file: %w", err)
	}
	syncDir(s.path)
	s.key = key
	s.fileOff = int64(len(h))
	return nil
}

// DecodeLog reads a log as written by File and returns v and the length of
// the good part of the log (magic and whole, valid records). A damaged or
// short tail is not an error: decoding stops before it. A log that does not
// start with FileMagic is.
func DecodeLog(r io.Reader) (v []byte, good int64, err error) {
	v, good, _, err = decodeLog(r)
	return v, good, err
}

// decodeLog is DecodeLog, and returns the log's checksum key too.
func decodeLog(r io.Reader) (v []byte, good int64, key uint32, err error) {
	br := bufio.NewReader(r) // r itself if r is a big enough bufio.Reader
	head, _ := br.Peek(keyedHeader)
	key, hn, ok := parseHeader(head)
	if !ok {
		if tornHeader(head) {
			return nil, 0, 0, nil // torn while being created: start afresh
		}
		if len(head) == keyedHeader && string(head[:len(KeyedMagic)]) == KeyedMagic {
			return nil, 0, 0, errors.New("damaged header: the checksum key on its first line does not match the checksum beside it, so no record can be checked")
		}
		return nil, 0, 0, errors.New("not a strsvr data file (bad magic)")
	}
	br.Discard(hn)
	r = br
	good = int64(hn)
	var hdr [recordHeader]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return v, good, key, nil
		}
		size := binary.BigEndian.Uint32(hdr[0:4])
		sum := binary.BigEndian.Uint32(hdr[4:8])
		if size == 0 || size > MaxRecord {
			return v, good, key, nil
		}
		start := len(v)
		v = append(v, make([]byte, size)...)
		if _, err := io.ReadFull(r, v[start:]); err != nil || recordSum(key, v[start:]) != sum {
			return v[:start], good, key, nil
		}
		good += recordHeader + int64(size)
	}
}

// appendRecords encodes p as records, checksummed under key, onto dst.
func appendRecords(dst []byte, key uint32, p []byte) []byte {
	for len(p) > 0 {
		n := min(len(p), MaxRecord)
		dst = binary.BigEndian.AppendUint32(dst, uint32(n))
		dst = binary.BigEndian.AppendUint32(dst, recordSum(key, p[:n]))
		dst = append(dst, p[:n]...)
		p = p[n:]
	}
	return dst
}

// Dropped reports how many bytes of a torn tail OpenFile cut.
func (s *File) Dropped() int64 { return s.dropped }

// Append implements Store: it returns once p is in the file (and synced,
// under FsyncAlways).
func (s *File) Append(ctx context.Context, p []byte) ([]byte, error) {
	return s.AppendCapped(ctx, p, 0)
}

// AppendCapped implements Capped. The limit counts every byte appended,
// whether or not it is in the file yet.
func (s *File) AppendCapped(ctx context.Context, p []byte, limit int) ([]byte, error) {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return nil, ErrClosed
	case s.failed != nil:
		s.mu.Unlock()
		return nil, s.failed
	case limit > 0 && len(s.buf)+len(p) > limit:
		s.mu.Unlock()
		return nil, ErrFull
	}
	s.buf = append(s.buf, p...)
	v := s.buf[:len(s.buf):len(s.buf)]
	s.pending = appendRecords(s.pending, s.key, p)
	b := s.batch
	s.mu.Unlock()
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

// flushLoop writes the pending records, batch after batch, and syncs them
// as the policy says. It is the only writer of the file.
func (s *File) flushLoop() {
	defer close(s.stopped)
	var tick <-chan time.Time
	if s.opts.Fsync == FsyncInterval {
		t := time.NewTicker(s.opts.Interval)
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
				if err := s.f.Sync(); err != nil {
					s.log.Error("cannot sync the data file: letters answered since the last sync may not be on disk", "file", s.path, "err", err)
				}
				dirty = false
			}
			continue
		case <-s.stop:
			stopping = true
		}
		s.mu.Lock()
		data, b, end := s.pending, s.batch, len(s.buf)
		s.pending, s.spare = s.spare[:0], nil
		s.batch = newBatch()
		s.flying = b
		s.mu.Unlock()
		var err error
		if len(data) > 0 {
			err = s.writeBatch(data, stopping)
			if err == nil { // a failed write leaves the earlier ones to sync
				dirty = s.opts.Fsync == FsyncInterval && !stopping
			}
		}
		if stopping && dirty {
			s.f.Sync()
		}
		s.mu.Lock()
		var next *batch
		if err != nil {
			// v forgets the failed batch and the appends queued behind
			// it, whose replies were built on top of it: none of them is
			// answered.
			s.buf = s.buf[:s.written]
			s.pending = s.pending[:0]
			next, s.batch = s.batch, newBatch()
		} else if len(data) > 0 {
			s.written = end
			s.fileOff += int64(len(data))
		}
		s.flying = nil
		if cap(data) <= 4<<20 {
			s.spare = data[:0]
		}
		s.mu.Unlock()
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

// writeBatch writes data at the end of the good part of the file and syncs
// it if the policy (or stopping) says so, then checks that the path still
// names the file. On failure it cuts what was partly written, so the next
// write starts from the good end again; if even that fails, or the file
// was replaced, the store refuses every later append (s.failed).
func (s *File) writeBatch(data []byte, stopping bool) error {
	_, err := s.f.WriteAt(data, s.fileOff)
	if err == nil && (s.opts.Fsync == FsyncAlways || stopping) {
		if err = s.f.Sync(); err != nil {
			err = fmt.Errorf("sync data file %s: %w", s.path, pathCause(err))
		}
	} else if err != nil {
		err = fmt.Errorf("write data file %s: %w", s.path, pathCause(err))
	}
	if err == nil {
		if err = s.sameFile(); err != nil {
			s.fail(err)
			return err
		}
		was := s.failing
		s.failing = nil
		if was != nil {
			s.log.Info("the data file accepts writes again: appending", "file", s.path)
		}
		return nil
	}
	if terr := s.f.Truncate(s.fileOff); terr != nil {
		s.fail(fmt.Errorf("%w; and the partial write cannot be cut (%v): refusing appends until restarted", err, terr))
		return err
	}
	first := s.failing == nil
	s.failing = err
	if first {
		s.log.Error("cannot store letters: refusing them until the data file accepts writes again", "file", s.path, "err", err)
	}
	return err
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

// fail puts the store in the failed state for good, saying so once.
func (s *File) fail(err error) {
	s.mu.Lock()
	first := s.failed == nil
	if first {
		s.failed = err
	}
	s.mu.Unlock()
	if first {
		s.log.Error("data file store stopped: refusing every letter", "err", err)
	}
}

// Flush waits until every append made before it is in the file (and
// synced, under FsyncAlways) or has failed, even one whose caller stopped
// waiting. After it, and with no append running, Value is what OpenFile
// recovers after a restart.
func (s *File) Flush(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	var waits []*batch
	if s.flying != nil {
		waits = append(waits, s.flying)
	}
	if len(s.pending) > 0 {
		waits = append(waits, s.batch)
	}
	s.mu.Unlock()
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
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	return s.buf[:s.written:s.written], nil
}

// Close writes and syncs what is pending, then closes the file. It is safe
// to call more than once.
func (s *File) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.stopped
	s.closeGroup()
	s.mu.Lock()
	failed := s.failed
	s.mu.Unlock()
	err := s.f.Close()
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
