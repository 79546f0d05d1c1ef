package store

import (
	"bytes"
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
// A crash can leave only the end of the log bad: the last write short, or
// (a power cut on some file systems) filled with garbage or zeros. Nothing
// valid follows such a torn tail, and nothing in it was answered, so
// OpenFile cuts it. A bad record with valid records after it is something
// else: the disk or someone changed bytes in the middle of the log, and the
// records after it hold letters that were answered. Cutting there would
// throw them away, so OpenFile refuses the log (CorruptError) and leaves it
// as it is; RepairLog, run on purpose, keeps a copy and drops only the
// damaged bytes.

// CorruptError is OpenFile's refusal of a log damaged before its end: the
// record at Offset is bad (short, too long, or failing its checksum) and
// valid records follow it. The file is unchanged.
type CorruptError struct {
	Path   string
	Offset int64 // where the damage starts
	After  int64 // bytes from Offset to the end of the file
	Next   int64 // offset of the first valid record after the damage
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("data file %s is damaged at byte %d, with valid records after it (%d bytes from there to the end, the next valid record at byte %d); the file is unchanged",
		e.Path, e.Offset, e.After, e.Next)
}

// Span is a run of bytes of a log, by offset and length.
type Span struct {
	Offset int64
	Bytes  int64
}

// checkTail looks at the bytes of a log after its good part, which starts
// at offset good: it returns nil for a torn tail (nothing valid after the
// first bad byte) and a CorruptError otherwise.
func checkTail(path string, tail []byte, good int64, key uint32) error {
	if len(tail) == 0 {
		return nil
	}
	next := datalog.NextRecord(tail, key)
	if next < 0 {
		return nil
	}
	return &CorruptError{Path: path, Offset: good, After: int64(len(tail)), Next: good + int64(next)}
}

// RepairReport says what RepairLog did.
type RepairReport struct {
	Path string
	// Copy is where the original was kept ("" if the log needed no repair).
	Copy string
	// Dropped are the damaged spans removed, by offset in the original.
	Dropped []Span
	// Records kept; the letters before the first damage (all that cutting
	// the log there would have kept) and the letters of v after repair.
	Records             int
	LettersBeforeDamage int64
	Letters             int64
}

// RepairLog repairs the log at path for OpenFile: it keeps every valid
// record, in order, and drops only the bytes between them that are not
// valid records (a damaged record loses its letters; later records keep
// theirs). Before changing anything it copies the original beside it, as
// path.damaged-TIME, synced. The repaired log replaces the original
// atomically (written beside it, synced, renamed). A log that needs no
// repair is left alone and no copy is made. It refuses a log in use by a
// running server, and a file that is not a log.
func RepairLog(path string) (*RepairReport, error) {
	// A symbolic link is repaired where it points: renaming over the link
	// would replace it with a file.
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("repair: %w", err)
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
	if busy, err := lock(f); err != nil {
		if busy {
			return nil, fmt.Errorf("repair: data file %s is in use by another process (a running strsvr?)", path)
		}
		return nil, fmt.Errorf("repair: lock %s: %w", path, err)
	}
	orig, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("repair: %w", err) // it names the path
	}
	if datalog.HeaderLen(orig) == 0 {
		if _, _, err := datalog.Decode(bytes.NewReader(orig)); err != nil {
			return nil, fmt.Errorf("repair: %s: %w; nothing changed", path, err)
		}
		return nil, fmt.Errorf("repair: %s holds no whole header (strsvr begins such a log afresh); nothing changed", path)
	}
	out, rep := repairBytes(orig)
	rep.Path = path
	if len(rep.Dropped) == 0 {
		return rep, nil
	}
	mode := info.Mode().Perm()
	rep.Copy = fmt.Sprintf("%s.damaged-%s", target, time.Now().UTC().Format("20060102T150405.000000000Z"))
	// On failure nothing is left behind: not a partial copy, which could
	// pass for a whole one, nor a whole copy of an original left as it was
	// (each retry would add one to a disk that is likely full).
	if err := writeSynced(rep.Copy, orig, os.O_EXCL, mode); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			os.Remove(rep.Copy)
		}
		return nil, fmt.Errorf("repair: keep a copy of the original: %w; nothing changed", err)
	}
	tmp := target + ".repair-tmp"
	if err := writeSynced(tmp, out, os.O_TRUNC, mode); err != nil {
		os.Remove(tmp)
		os.Remove(rep.Copy)
		return nil, fmt.Errorf("repair: write the repaired log: %w; nothing changed", err)
	}
	if err := os.Rename(tmp, target); err != nil {
		os.Remove(tmp)
		os.Remove(rep.Copy)
		return nil, fmt.Errorf("repair: replace %s: %w; nothing changed", target, err)
	}
	syncDir(target)
	return rep, nil
}

// repairBytes is RepairLog on a log in memory that starts with a whole
// header: the repaired log and what was kept and dropped.
func repairBytes(orig []byte) ([]byte, *RepairReport) {
	key, hn, _ := datalog.ParseHeader(orig)
	rep := &RepairReport{}
	out := make([]byte, 0, len(orig))
	out = append(out, orig[:hn]...)
	damaged := false
	for pos := hn; pos < len(orig); {
		if n := datalog.RecordAt(orig[pos:], key); n > 0 {
			out = append(out, orig[pos:pos+n]...)
			rep.Records++
			rep.Letters += int64(n - datalog.RecordHeader)
			if !damaged {
				rep.LettersBeforeDamage = rep.Letters
			}
			pos += n
			continue
		}
		damaged = true
		next := datalog.NextRecord(orig[pos:], key)
		end := len(orig)
		if next > 0 {
			end = pos + next
		}
		rep.Dropped = append(rep.Dropped, Span{Offset: int64(pos), Bytes: int64(end - pos)})
		pos = end
	}
	return out, rep
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
