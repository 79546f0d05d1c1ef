package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/store"
	"github.com/tcplab/tcplab/store/redisstore"
)

// Where strsvr keeps v: choosing and opening the store, the repair mode,
// and the check of a recovered v.

// strsvrPort parses strsvr's arguments: PORT, or nothing with --repair.
func strsvrPort(fs *flagSet, std stdio, args []string, repair *string) (server.Socket, error) {
	return fs.parseServerPortUnless(std, args, func(pos []string) (bool, error) {
		repairing := false
		var others []string
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "repair":
				repairing = true
			case "log-format":
			default:
				others = append(others, "--"+f.Name)
			}
		})
		switch {
		case !repairing:
			return false, nil
		case *repair == "":
			return true, usagef("--repair needs a FILE, the data file to repair")
		case len(pos) > 0:
			return true, usagef("--repair FILE repairs the log and exits: give no PORT")
		case len(others) > 0:
			return true, usagef("--repair FILE repairs the log and exits: %s would not be used; give --repair alone", strings.Join(others, ", "))
		}
		return true, nil
	})
}

// openLogError adds to the refusal of a damaged log what to do about it.
func openLogError(err error) error {
	var ce *store.CorruptError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w: refusing to start; tcplab strsvr --repair %s keeps a copy and drops only the damaged bytes", err, ce.Path)
	}
	return err
}

// repairLog is strsvr --repair FILE: it repairs the log (see
// store.RepairLog) and says on standard output what it did, down to the
// letters each dropped record held.
//
// A signal stops it: before the log is replaced, nothing is changed, and
// it says so (the exit status, 130 or 143, says which signal); after, the
// repair is complete and its report is printed.
func repairLog(ctx context.Context, std stdio, path string) error {
	rep, err := store.RepairLogContext(ctx, path)
	if err != nil {
		var sig stopSignal
		if ctx.Err() != nil && errors.As(context.Cause(ctx), &sig) {
			fmt.Fprintf(std.out, "%s: repair stopped by %s before the log was replaced: nothing changed\n", path, signalName(sig.sig))
		}
		return err
	}
	if rep.Copy == "" {
		fmt.Fprintf(std.out, "%s: nothing to repair: %d records, v is %d bytes\n", path, rep.Records, rep.Letters)
		return nil
	}
	fmt.Fprintf(std.out, "%s: kept a copy of the original as %s\n", path, rep.Copy)
	var dropped, letters int64
	for _, d := range rep.Dropped {
		fmt.Fprintf(std.out, "%s: dropped %d bytes at byte %d: %s; %s\n", path, d.Bytes, d.Offset, d.Why, droppedLetters(d))
		dropped += d.Bytes
		letters += int64(len(d.Letters))
	}
	fmt.Fprintf(std.out, "%s: kept %d records: v is now %d bytes (%d before the first damage); %d bytes of the log dropped, in %d spans, %d of them letters\n",
		path, rep.Records, rep.Letters, rep.LettersBeforeDamage, dropped, len(rep.Dropped), letters)
	return nil
}

// shownLetters is how many of a dropped record's letters repairLog quotes;
// all of them are in the copy, at the bytes it names.
const shownLetters = 200

// droppedLetters says which letters a dropped span held and where they
// stood in v.
func droppedLetters(d store.DroppedSpan) string {
	where := fmt.Sprintf("they stood after letter %d of v", d.Before)
	if !d.Known {
		return "no letters can be told in them (" + where + ")"
	}
	what := fmt.Sprintf("%d letters", len(d.Letters))
	if d.Announced > 0 {
		what = fmt.Sprintf("%d of its %d letters (never answered)", len(d.Letters), d.Announced)
	}
	shown := d.Letters
	more := ""
	if len(shown) > shownLetters {
		shown, more = shown[:shownLetters], fmt.Sprintf("... (%d more)", len(d.Letters)-shownLetters)
	}
	return fmt.Sprintf("%s, as stored (damage may have changed them), bytes %d to %d of the copy: %q%s; %s",
		what, d.LettersAt, d.LettersAt+int64(len(d.Letters)), shown, more, where)
}

// checkRecovered logs the v a store starts with, and refuses one longer
// than maxValue: every client would be dropped.
func checkRecovered(ctx context.Context, log *slog.Logger, st store.Store, maxValue int, from string) error {
	v, err := st.Value(ctx)
	if err != nil {
		return fmt.Errorf("read v: %w", err)
	}
	if len(v) > maxValue {
		return fmt.Errorf("v in %s is %d bytes, more than --max-value %d: every letter would be refused; start with --max-value %d or more", from, len(v), maxValue, len(v))
	}
	if len(v) > 0 {
		log.Info("recovered v", "bytes", len(v), "from", from)
	}
	return nil
}

// storePlace is where strsvr keeps v, as its flags say: in memory (the
// default, as the tutorial's), in a log file (--data), or in Redis
// (--store), shared by every strsvr on the same URL.
type storePlace struct {
	data       string
	fsync      string
	fsyncEvery time.Duration
	url        string

	policy store.Fsync        // fsync, parsed by check
	redis  *redisstore.Config // url, parsed by check
}

// checkFsync refuses bad --fsync and --fsync-interval values. strsvr
// checks them, then --log-format, then the place (checkPlace): with two
// bad flags, the line names the first in that order, as it always has.
func (p *storePlace) checkFsync() error {
	if p.fsyncEvery <= 0 {
		return usagef("--fsync-interval must be positive, not %s", p.fsyncEvery)
	}
	policy, err := store.ParseFsync(p.fsync)
	if err != nil {
		return usageError{err.Error()}
	}
	p.policy = policy
	return nil
}

// checkPlace refuses flags that name no usable place, before anything
// starts.
func (p *storePlace) checkPlace() error {
	if p.url == "" {
		return nil
	}
	if p.data != "" {
		return usagef("--store and --data are two places for v: give one")
	}
	var err error
	if p.redis, err = redisstore.ParseURL(p.url); err != nil {
		return usageError{err.Error()}
	}
	return nil
}

// open opens the store that checkFsync and checkPlace accepted.
func (p *storePlace) open(ctx context.Context, log *slog.Logger) (store.Store, error) {
	switch {
	case p.redis != nil:
		if inURL := passwordFromEnv(p.redis.Options, os.LookupEnv); inURL {
			warnPasswordInURL(log)
		}
		rs, err := redisstore.OpenConfig(ctx, p.redis, redisstore.WithLogger(log))
		if err != nil {
			return nil, withAuthHint(err)
		}
		return rs, nil
	case p.data != "":
		f, err := store.OpenFile(p.data, store.FileOptions{Fsync: p.policy, Interval: p.fsyncEvery, Logger: log})
		if err != nil {
			return nil, openLogError(err)
		}
		if n, why := f.Cut(); n > 0 {
			log.Warn("cut a torn tail (an interrupted last write, never answered) from the data file", "file", p.data, "bytes", n, "what", why)
		}
		return f, nil
	}
	return store.NewMemory(), nil
}

// name names where v is kept, for messages (no password).
func (p *storePlace) name() string {
	switch {
	case p.data != "":
		return p.data
	case p.redis != nil:
		return p.redis.Shown
	}
	return "memory"
}
