package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/tcplab/tcplab/internal/datalog"
)

// What can follow the last good record of a log, and what to do about it.
//
// A crash can leave only the end of the log bad, and only the last write:
// its record short, or, after a power cut on some file systems, with
// sectors that never reached the disk and read as zeros. Nothing in such
// a torn tail was answered, so OpenFile cuts it (datalog's Header.Tail
// says exactly what passes for one). Anything else that fails its check is
// damage: a record in the middle, a complete last record with no zeroed
// sector, bytes that are no record. The records it holds or that follow
// it were answered, so OpenFile refuses the log (CorruptError) and leaves
// it as it is; RepairLog, run on purpose, keeps a copy and drops only the
// damaged bytes, saying which letters they held.

// CorruptError is OpenFile's refusal of a damaged log: the bytes from
// Offset on are not valid records and are not a torn last write. The file
// is unchanged.
type CorruptError struct {
	Path   string
	Offset int64  // where the damage starts
	After  int64  // bytes from Offset to the end of the file
	Next   int64  // offset of the first valid record after the damage, or -1
	Why    string // what the bytes at Offset are, in words
}

func (e *CorruptError) Error() string {
	next := ""
	if e.Next >= 0 {
		next = fmt.Sprintf(", the next valid record at byte %d", e.Next)
	}
	return fmt.Sprintf("data file %s is damaged at byte %d: %s (%d bytes from there to the end%s); the file is unchanged",
		e.Path, e.Offset, e.Why, e.After, next)
}

// Span is a run of bytes of a log, by offset and length.
type Span struct {
	Offset int64
	Bytes  int64
}

// DroppedSpan is a span RepairLog dropped, and what it held.
type DroppedSpan struct {
	Span
	// Why says what the span is: a record whose checksum fails, a torn
	// last record, bytes that are no record.
	Why string
	// Letters are the letters the span held, as stored (damage may have
	// changed them), when it is one record whose header holds; LettersAt
	// is where they start in the original; Known says whether there are
	// any such. For a torn last record, Letters holds only what the file
	// has of it and Announced says how many its header announced.
	Letters   []byte
	LettersAt int64
	Known     bool
	Announced int
	// Before is how many letters of the repaired v come before the span:
	// the dropped letters stood right after them.
	Before int64
	// WrittenAt, for an intact record that is not at its place (moved,
	// duplicated, or after bytes deleted before it), is the offset where
	// it was written; 0 otherwise.
	WrittenAt int64
}

// RepairReport says what RepairLog did.
type RepairReport struct {
	Path string
	// Copy is where the original was kept ("" if the log needed no repair).
	Copy string
	// Dropped are the spans removed, by offset in the original.
	Dropped []DroppedSpan
	// Records kept; the letters before the first damage (all that cutting
	// the log there would have kept) and the letters of v after repair.
	Records             int
	LettersBeforeDamage int64
	Letters             int64
}

// RepairLog repairs the log at path for OpenFile: it keeps every valid
// record, in order, and drops only the bytes between them that are not
// valid records (a damaged record loses its letters; later records keep
// theirs). The repaired log is written in the current format, the kept
// records at their new places. Before changing anything it copies the
// original beside it, as path.damaged-TIME, synced. The repaired log
// replaces the original atomically (written beside it, synced, renamed).
// A log that needs no repair is left alone and no copy is made (a log of
// an older format with nothing to repair is upgraded by OpenFile). It
// refuses a log in use by a running server, and a file that is not a log.
//
// RepairLog is RepairLogContext without a way to stop it.
func RepairLog(path string) (*RepairReport, error) {
	return RepairLogContext(context.Background(), path)
}

// RepairLogContext is RepairLog that stops when ctx ends (strsvr --repair's
// SIGINT or SIGTERM): it looks at ctx between chunks of its reads and
// writes and before it replaces the log, and if ctx has ended it removes
// what it wrote (the copy, the temporary file) and returns an error that
// wraps ctx's: the log is unchanged. Once the log is replaced the repair
// is complete, and it returns its report whatever ctx says. Only an fsync
// already begun is waited out.
func RepairLogContext(ctx context.Context, path string) (*RepairReport, error) {
	stopped := func() error {
		return fmt.Errorf("repair of %s stopped before the log was replaced: %w; nothing changed", path, context.Cause(ctx))
	}
	repairStage("begun")
	if ctx.Err() != nil {
		return nil, stopped()
	}
	// A symbolic link is repaired where it points: renaming over the link
	// would replace it with a file.
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("repair: %w", err)
	}
	if err := regularOrAbsent(target); err != nil {
		return nil, fmt.Errorf("repair: %w; nothing changed", err)
	}
	f, err := os.Open(target)
	if err != nil {
		return nil, fmt.Errorf("repair: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("repair: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("repair: %w; nothing changed", notRegular(path, info))
	}
	if busy, err := lock(f); err != nil {
		if busy {
			return nil, fmt.Errorf("repair: data file %s is in use by another process (a running strsvr?)", path)
		}
		return nil, fmt.Errorf("repair: lock %s: %w", path, err)
	}
	orig, err := readAllContext(ctx, f, info.Size())
	if err != nil {
		if ctx.Err() != nil {
			return nil, stopped()
		}
		return nil, fmt.Errorf("repair: %w", err) // it names the path
	}
	if _, err := datalog.ParseHeader(orig); err != nil {
		if errors.Is(err, datalog.ErrTornHeader) {
			return nil, fmt.Errorf("repair: %s holds no whole header (strsvr begins such a log afresh); nothing changed", path)
		}
		return nil, fmt.Errorf("repair: %s: %w; nothing changed", path, err)
	}
	out, rep := repairBytes(orig)
	rep.Path = path
	repairStage("read")
	if ctx.Err() != nil {
		return nil, stopped()
	}
	if len(rep.Dropped) == 0 {
		return rep, nil
	}
	mode := info.Mode().Perm()
	rep.Copy = fmt.Sprintf("%s.damaged-%s", target, time.Now().UTC().Format("20060102T150405.000000000Z"))
	// On failure nothing is left behind: not a partial copy, which could
	// pass for a whole one, nor a whole copy of an original left as it was
	// (each retry would add one to a disk that is likely full).
	// Written under another name and renamed when whole and synced: a
	// SIGKILL or a power cut while it is written leaves a part of the
	// original as FILE.repair-copy-tmp (removed by the next run, as the
	// temporary file below), never under the name of a whole copy.
	part := target + ".repair-copy-tmp"
	if err := os.Remove(part); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("repair: remove %s left by an earlier run: %w; nothing changed", part, err)
	}
	if err := writeSyncedContext(ctx, part, orig, mode); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			os.Remove(part)
		}
		if ctx.Err() != nil {
			return nil, stopped()
		}
		return nil, fmt.Errorf("repair: keep a copy of the original: %w; nothing changed", err)
	}
	if err := os.Rename(part, rep.Copy); err != nil {
		os.Remove(part)
		return nil, fmt.Errorf("repair: keep a copy of the original: %w; nothing changed", err)
	}
	syncDir(rep.Copy)
	repairStage("copied")
	// The temporary file is made afresh: whatever a stopped or crashed
	// run (or anyone) left at its path, a FIFO included, would otherwise
	// be opened, and a FIFO's open blocks for good.
	tmp := target + ".repair-tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		os.Remove(rep.Copy)
		return nil, fmt.Errorf("repair: remove %s left by an earlier run: %w; nothing changed", tmp, err)
	}
	if err := writeSyncedContext(ctx, tmp, out, mode); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			os.Remove(tmp)
		}
		os.Remove(rep.Copy)
		if ctx.Err() != nil {
			return nil, stopped()
		}
		return nil, fmt.Errorf("repair: write the repaired log: %w; nothing changed", err)
	}
	repairStage("written")
	if ctx.Err() != nil {
		os.Remove(tmp)
		os.Remove(rep.Copy)
		return nil, stopped()
	}
	// The lock holds the file read, not its path: a log moved into place
	// meanwhile (a backup put back, a new log a strsvr then opened) or
	// written to by a process that takes no lock would be lost to the
	// rename, in no copy. Checked at the last moment; what stays open is
	// the instant between this look and the rename.
	if err := stillTheLog(target, f, info, int64(len(orig))); err != nil {
		os.Remove(tmp)
		os.Remove(rep.Copy)
		return nil, fmt.Errorf("repair: %w; nothing changed", err)
	}
	if err := os.Rename(tmp, target); err != nil {
		os.Remove(tmp)
		os.Remove(rep.Copy)
		return nil, fmt.Errorf("repair: replace %s: %w; nothing changed", target, err)
	}
	syncDir(target)
	repairStage("replaced")
	return rep, nil
}

// stillTheLog says whether path still names f, the log RepairLogContext
// read (info is f's as it was opened), and f is still size bytes long.
func stillTheLog(path string, f *os.File, info fs.FileInfo, size int64) error {
	now, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s is gone while it was being repaired: %w", path, err)
	}
	if !os.SameFile(now, info) {
		return fmt.Errorf("%s was replaced by another file while it was being repaired", path)
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != size {
		return fmt.Errorf("%s is %d bytes where the repair read %d: something wrote to it while it was being repaired", path, fi.Size(), size)
	}
	return nil
}

// repairHook, set by tests (SetRepairHook), is called at each stage of
// RepairLogContext where it looks at its context.
var repairHook func(stage string)

func repairStage(stage string) {
	if repairHook != nil {
		repairHook(stage)
	}
}

// ioChunk is how much RepairLogContext reads or writes between two looks
// at its context.
const ioChunk = 4 << 20

// readAllContext reads f (of about size bytes) to its end, in chunks,
// and stops with ctx's error when ctx ends.
func readAllContext(ctx context.Context, f *os.File, size int64) ([]byte, error) {
	b := make([]byte, 0, size+512)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := f.Read(b[len(b):min(cap(b), len(b)+ioChunk)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// repairBytes is RepairLog on a log in memory that starts with a whole
// header: the repaired log (in the current format; the same key for a log
// already in it) and what was kept and dropped.
func repairBytes(orig []byte) ([]byte, *RepairReport) {
	h, _ := datalog.ParseHeader(orig)
	line, out := datalog.NewHeader()
	if h.Version == datalog.Version {
		line, out = datalog.HeaderFor(h.Version, h.Key)
	}
	rep := &RepairReport{}
	b := make([]byte, 0, len(orig))
	b = append(b, line...)
	damaged := false
	for pos := h.Len; pos < len(orig); {
		if n := h.RecordAt(orig[pos:], int64(pos)); n > 0 {
			data := orig[pos+h.RecordHeaderLen() : pos+n]
			b = out.AppendRecords(b, int64(len(b)), data)
			rep.Records++
			rep.Letters += int64(len(data))
			if !damaged {
				rep.LettersBeforeDamage = rep.Letters
			}
			pos += n
			continue
		}
		damaged = true
		next := h.NextRecord(orig[pos:], int64(pos))
		end := len(orig)
		if next > 0 {
			end = pos + next
		}
		rep.Dropped = append(rep.Dropped, droppedSpans(h, orig, pos, end, rep.Letters)...)
		pos = end
	}
	return b, rep
}

// droppedSpans describes the span orig[pos:end] that repairBytes drops,
// before letters of the repaired v: the intact records in it that are not
// at their place, each with where it was written and its letters, and the
// bytes around them.
func droppedSpans(h datalog.Header, orig []byte, pos, end int, before int64) []DroppedSpan {
	var out []DroppedSpan
	start := pos
	for q := pos; q+datalog.RecordHeader <= end; q++ {
		// Bytes deleted before a record leave it below where it was
		// written, past the end of the file perhaps, so the bound is
		// loose; but a bound there must be: the header of a record of
		// another log (another key) solves to some offset too, a random
		// one below 2^32, and its letters check whatever the key: one
		// chance in 2^31/len(orig) of a false place.
		w, n, ok := h.WrittenAt(orig[q:end], 2*int64(len(orig)))
		if !ok || w == int64(q) || w < int64(h.Len) {
			continue
		}
		if q > start {
			out = append(out, dropped(h, orig, start, q, before))
		}
		hl := datalog.RecordHeader
		out = append(out, DroppedSpan{
			Span:    Span{Offset: int64(q), Bytes: int64(hl + n)},
			Why:     fmt.Sprintf("a whole record written at byte %d, not at its place (moved, duplicated, or bytes before it deleted)", w),
			Letters: orig[q+hl : q+hl+n], LettersAt: int64(q + hl), Known: true,
			Before: before, WrittenAt: w,
		})
		q += hl + n - 1
		start = q + 1
	}
	if start < end {
		out = append(out, dropped(h, orig, start, end, before))
	}
	return out
}

// dropped describes the span orig[pos:end] that repairBytes drops, before
// letters of the repaired v.
func dropped(h datalog.Header, orig []byte, pos, end int, before int64) DroppedSpan {
	d := DroppedSpan{Span: Span{Offset: int64(pos), Bytes: int64(end - pos)}, Before: before}
	hl := h.RecordHeaderLen()
	n, ok := h.RecordLen(orig[pos:end], int64(pos))
	switch {
	case ok && pos+hl+n == end:
		d.Why = "a record whose checksum fails"
		d.Known, d.Letters, d.LettersAt = true, orig[pos+hl:end], int64(pos+hl)
	case ok && end == len(orig) && pos+hl+n > end:
		d.Why = "an incomplete last record (a torn write)"
		d.Known, d.Letters, d.LettersAt, d.Announced = true, orig[pos+hl:end], int64(pos+hl), n
	default:
		d.Why = "bytes that are not a record"
	}
	return d
}

// writeSyncedContext creates path, which must not exist (O_EXCL), with
// the permissions of mode, writes b in chunks, and fsyncs it and its
// directory; it stops with ctx's error between chunks.
func writeSyncedContext(ctx context.Context, path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil { // whatever the umask
		f.Close()
		return err
	}
	for len(b) > 0 {
		if err := ctx.Err(); err != nil {
			f.Close()
			return err
		}
		n := min(len(b), ioChunk)
		if _, err := f.Write(b[:n]); err != nil {
			f.Close()
			return err
		}
		b = b[n:]
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	syncDir(path)
	return nil
}

// writeSynced creates path (with flag added to O_WRONLY|O_CREATE, and the
// permissions of mode), writes b and fsyncs it and its directory.
func writeSynced(path string, b []byte, flag int, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|flag, mode)
	if err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil { // whatever the umask
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	syncDir(path)
	return nil
}
