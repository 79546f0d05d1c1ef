package procps

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Who is logged in, read without starting a program.
//
// w and uptime count "users": login sessions. gopsutil's host.Users reads
// utmp, but where there is none (Debian 13 keeps no utmp; containers have
// none) it runs loginctl, found on the server's own PATH and run with the
// server's environment: a program outside the allow-list, which svr
// promises never to start. So the sessions are read here, in this order:
//
//  1. utmp (/var/run/utmp, glibc's _PATH_UTMP), when the file
//     exists: its USER_PROCESS records, as w and who read them;
//  2. else systemd-logind's session records in /run/systemd/sessions, when
//     that directory exists: the files that libsystemd's sd-login reads
//     for sd_get_sessions and sd_session_get_* (which procps-ng's w uses
//     where it is built with systemd), kept as loginctl would list them
//     (class user*, and a seat or a terminal);
//  3. else nobody: the machine keeps no record of logins (a container).
//
// logind's D-Bus API is not used: it needs a system bus, which the
// containers where the fallback matters most do not have, and the D-Bus
// library would resolve the bus's address from the environment, where
// DBUS_SYSTEM_BUS_ADDRESS=unixexec:... makes it start a program.

// session is one login session, as w lists it.
type session struct {
	User     string
	Terminal string // "pts/0", or the seat for a graphical login
	Host     string // remote host, "" for a local login
	Started  int64  // Unix seconds
	// Pid is the login process (utmp's ut_pid, logind's LEADER); w skips
	// a session whose login process is gone, as procps's does.
	Pid int
}

// sessionSources are where sessions are read from; tests point them at
// files of their own.
var (
	utmpPath       = "/var/run/utmp"
	logindSessions = "/run/systemd/sessions"
)

// loggedIn lists the login sessions by the order above.
func loggedIn() ([]session, error) {
	f, err := openRegular(utmpPath)
	if err == nil {
		defer f.Close()
		s, err := readUtmp(io.LimitReader(f, maxUtmpBytes))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", utmpPath, err)
		}
		return s, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read utmp: %w", err)
	}
	s, err := readLogindSessions(logindSessions)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read logind sessions: %w", err)
	}
	return s, nil
}

// utmp record layout (glibc's struct utmp on Linux, the same on every
// 64-bit and 32-bit architecture Go supports: 384 bytes, little-endian on
// all but the big-endian ones, where the host order applies).
const (
	utmpSize        = 384
	utmpUserProcess = 7
	utOffType       = 0
	utOffPid        = 4
	utOffLine       = 8 // char ut_line[32]
	utOffUser       = 44
	utOffHost       = 76 // char ut_host[256]
	utOffTvSec      = 340
)

// readUtmp returns the USER_PROCESS records of a utmp file.
func readUtmp(r io.Reader) ([]session, error) {
	var out []session
	rec := make([]byte, utmpSize)
	order := binary.NativeEndian
	for {
		_, err := io.ReadFull(r, rec)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return out, nil // a torn last record is being written: skip it
		}
		if err != nil {
			return nil, err
		}
		if int16(order.Uint16(rec[utOffType:])) != utmpUserProcess || rec[utOffUser] == 0 {
			continue // not a login, or one with no user name (procps skips it)
		}
		out = append(out, session{
			User:     cString(rec[utOffUser : utOffUser+32]),
			Terminal: cString(rec[utOffLine : utOffLine+32]),
			Host:     cString(rec[utOffHost : utOffHost+256]),
			Started:  int64(int32(order.Uint32(rec[utOffTvSec:]))),
			Pid:      int(int32(order.Uint32(rec[utOffPid:]))),
		})
	}
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// maxUtmpBytes bounds what is read of utmp: 21,845 records, far more
// sessions than any machine holds at once. Records past it are not read.
const maxUtmpBytes = 8 << 20

// openRegular opens path for reading only if it is a regular file: a FIFO
// in its place is not waited on (open would block until a writer came)
// and a device is not read.
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	return f, nil
}

// maxLogindFile bounds what is read of one session record (they are a
// few hundred bytes).
const maxLogindFile = 64 << 10

// readLogindSessions reads logind's session records in dir, sorted by
// login time.
func readLogindSessions(dir string) ([]session, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []session
	for _, e := range ents {
		// session ids are names like "3" or "c1"; the directory also holds
		// their ".ref" FIFOs, never to be opened (that would block).
		if !e.Type().IsRegular() || strings.Contains(e.Name(), ".") {
			continue
		}
		kv, err := readEnvFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // the session ended while being read
		}
		if !strings.HasPrefix(kv["CLASS"], "user") || (kv["TTY"] == "" && kv["SEAT"] == "") {
			continue // a manager or greeter, or no terminal: not in utmp either
		}
		s := session{User: kv["USER"], Terminal: kv["TTY"], Host: kv["REMOTE_HOST"]}
		if s.Terminal == "" {
			s.Terminal = kv["SEAT"]
		}
		s.Pid, _ = strconv.Atoi(kv["LEADER"])
		if us, err := strconv.ParseInt(kv["REALTIME"], 10, 64); err == nil {
			s.Started = us / 1e6
		}
		if s.User == "" {
			continue
		}
		out = append(out, s)
	}
	slices.SortStableFunc(out, func(a, b session) int { return cmp.Compare(a.Started, b.Started) })
	return out, nil
}

// readEnvFile reads a KEY=VALUE file as systemd writes them (values are
// not quoted in logind's records).
func readEnvFile(path string) (map[string]string, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(io.LimitReader(f, maxLogindFile))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = v
		}
	}
	return kv, sc.Err()
}
