package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/tcplab/tcplab/store"
)

// What strsvr does with its store at start and at exit, beyond opening it:
// the repair mode, the check of a recovered v, and a final v that is the
// saved one.

// strsvrPort parses strsvr's arguments: PORT, or nothing with --repair.
func strsvrPort(fs *flagSet, std stdio, args []string, repair *string) (serverPort, error) {
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
// store.RepairLog) and says on standard output what it did.
func repairLog(std stdio, path string) error {
	rep, err := store.RepairLog(path)
	if err != nil {
		return err
	}
	if rep.Copy == "" {
		fmt.Fprintf(std.out, "%s: nothing to repair: %d records, v is %d bytes\n", path, rep.Records, rep.Letters)
		return nil
	}
	fmt.Fprintf(std.out, "%s: kept a copy of the original as %s\n", path, rep.Copy)
	var dropped int64
	for _, sp := range rep.Dropped {
		fmt.Fprintf(std.out, "%s: dropped %d bytes at byte %d (not a valid record)\n", path, sp.Bytes, sp.Offset)
		dropped += sp.Bytes
	}
	fmt.Fprintf(std.out, "%s: kept %d records: v is now %d bytes (%d before the first damage); %d bytes of the log dropped, in %d spans\n",
		path, rep.Records, rep.Letters, rep.LettersBeforeDamage, dropped, len(rep.Dropped))
	return nil
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

// storeName names where v is kept, for messages (no password).
func storeName(data, storeURL string) string {
	switch {
	case data != "":
		return data
	case storeURL != "":
		if u, err := url.Parse(storeURL); err == nil {
			return u.Redacted()
		}
		return "Redis"
	}
	return "memory"
}

// flushStore waits for the appends still in flight at exit (their clients
// are gone, but they may still be stored), so that the final v printed is
// the v the store keeps.
func flushStore(st store.Store) {
	if f, ok := st.(store.Flusher); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f.Flush(ctx)
	}
}
