// Package procps renders the reports of procps-ng's w, ps aux and uptime,
// and the same facts as JSON, from /proc and the login records, without
// starting a program: svr's native renderer, for a machine without procps
// (a minimal container) or an operator who wants no program run. It is
// internal: its output is the tools', and its only API is what package
// status binds to its allow-list.
package procps

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/user"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/process"

	"github.com/tcplab/tcplab/internal/safetext"
)

// The native renderers print the reports of procps-ng's w, ps aux and
// uptime from /proc and the login records (through gopsutil where it has
// the fact, /proc/PID/stat and status directly for the few fields it does
// not expose, sessions.go for who is logged in), so a server in a minimal
// container without procps still answers. They follow
// procps-ng 4's formats column for column; TestNativeMatchesProcps checks
// them against the installed tools.

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat. It is 100
// on every Linux architecture Go supports.
const clockTicks = 100

// snapshot is what every report is made from, read once.
type snapshot struct {
	now      time.Time
	uptime   float64 // seconds since boot
	bootTime uint64  // Unix seconds, /proc/stat's btime
	load     [3]float64
	users    []session
	memTotal uint64 // KiB
	memAvail uint64 // KiB
	procs    []procInfo
	// args shows processes' command lines; without it, only their
	// command names (see AllowOptions.Args).
	args bool
}

// procInfo is one process, as ps aux and w need it.
type procInfo struct {
	pid, ppid, pgrp, sid, tpgid int
	state                       string
	ttyNr                       uint64
	ticks                       uint64 // utime + stime
	nice                        int
	threads                     int
	startTicks                  uint64 // since boot
	vsizeKB, rssKB              uint64
	locked                      bool
	uid, ruid                   string // effective and real
	comm                        string
	args                        string
}

func readUptime() (float64, error) {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, errors.New("empty /proc/uptime")
	}
	return strconv.ParseFloat(f[0], 64)
}

// takeSnapshot reads the facts; withProcs also reads every process.
func takeSnapshot(withProcs bool) (*snapshot, error) {
	s := &snapshot{now: time.Now()}
	var err error
	if s.uptime, err = readUptime(); err != nil {
		return nil, fmt.Errorf("read uptime: %w", err)
	}
	if s.bootTime, err = host.BootTime(); err != nil {
		return nil, fmt.Errorf("read boot time: %w", err)
	}
	avg, err := load.Avg()
	if err != nil {
		return nil, fmt.Errorf("read load average: %w", err)
	}
	s.load = [3]float64{avg.Load1, avg.Load5, avg.Load15}
	s.users, err = loggedIn()
	if err != nil {
		return nil, err
	}
	if !withProcs {
		return s, nil
	}
	vm, err := mem.VirtualMemory()
	if err != nil {
		return nil, fmt.Errorf("read memory size: %w", err)
	}
	s.memTotal = vm.Total / 1024
	s.memAvail = vm.Available / 1024
	pids, err := process.Pids()
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	slices.Sort(pids)
	pageKB := uint64(os.Getpagesize() / 1024)
	for _, pid := range pids {
		if p, ok := readProc("/proc", int(pid), pageKB); ok {
			s.procs = append(s.procs, p)
		}
	}
	return s, nil
}

// readProc reads stat, status and cmdline of PID in procfs (/proc). A
// process that ends while being read is skipped (ok false), as ps does:
// without its status there is no user to show.
func readProc(procfs string, pid int, pageKB uint64) (procInfo, bool) {
	dir := procfs + "/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return procInfo{}, false
	}
	open, close := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 0 || close < open {
		return procInfo{}, false
	}
	p := procInfo{pid: pid, comm: string(stat[open+1 : close])}
	f := strings.Fields(string(stat[close+1:]))
	if len(f) < 22 {
		return procInfo{}, false
	}
	num := func(i int) uint64 { v, _ := strconv.ParseUint(f[i], 10, 64); return v }
	inum := func(i int) int { v, _ := strconv.Atoi(f[i]); return v }
	// Fields after the command, counted from 0: state 0, ppid 1, pgrp 2,
	// session 3, tty_nr 4, tpgid 5, utime 11, stime 12, nice 16,
	// num_threads 17, starttime 19, vsize 20, rss 21 (proc(5)).
	p.state = f[0]
	p.ppid, p.pgrp, p.sid = inum(1), inum(2), inum(3)
	p.ttyNr = num(4)
	p.tpgid = inum(5)
	p.ticks = num(11) + num(12)
	p.nice = inum(16)
	p.threads = inum(17)
	p.startTicks = num(19)
	p.vsizeKB = num(20) / 1024
	p.rssKB = num(21) * pageKB
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return procInfo{}, false
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "Uid":
			if u := strings.Fields(v); len(u) > 1 {
				p.uid = u[1] // effective uid, as ps's USER
				p.ruid = u[0]
			}
		case "VmRSS":
			// ps's RSS. stat's rss field is the kernel's approximate
			// per-CPU sum, often a few pages short of this one.
			if v := strings.Fields(v); len(v) > 0 {
				if kb, err := strconv.ParseUint(v[0], 10, 64); err == nil {
					p.rssKB = kb
				}
			}
		case "VmLck":
			if v := strings.Fields(v); len(v) > 0 && v[0] != "0" {
				p.locked = true
			}
		}
	}
	if p.uid == "" {
		return procInfo{}, false // ended as status was read
	}
	if cmdline, err := os.ReadFile(dir + "/cmdline"); err == nil && len(cmdline) > 0 {
		cmdline = bytes.TrimRight(cmdline, "\x00")
		p.args = printable(strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	if p.args == "" {
		p.args = "[" + printable(p.comm) + "]"
	}
	if strings.HasPrefix(p.state, "Z") {
		p.args += " <defunct>" // as ps aux shows a zombie; ps auxc, the name only
	}
	return p, true
}

// printable replaces each character that safetext calls unsafe (controls,
// bidirectional overrides) and each byte that is not UTF-8 with '?', as ps
// shows an unprintable command, so a process cannot put a newline (a
// forged row) or an escape sequence into the report.
func printable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size <= 1) || safetext.Unsafe(r) {
			b.WriteByte('?')
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// loginField is how w shows a field of a login record written by someone
// else (a remote host name from sshd, a terminal name), as procps's w
// prints FROM (print_host): its first max bytes up to the first one that
// is not printable ASCII or is a space, which is shown as "-" and ends
// the field. A field with no such byte is shown whole (within max). So a
// record cannot forge a row, send escape sequences or reorder the text.
func loginField(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return s[:i] + "-"
		}
	}
	return s
}

// ttyName names a controlling terminal from its device number, as ps does
// for the usual devices; others show as "?".
func ttyName(nr uint64) string {
	if nr == 0 {
		return "?"
	}
	major := (nr >> 8) & 0xfff
	minor := (nr & 0xff) | ((nr >> 12) & 0xfff00)
	switch {
	case major >= 136 && major <= 143:
		return fmt.Sprintf("pts/%d", (major-136)*256+minor)
	case major == 4 && minor < 64:
		return fmt.Sprintf("tty%d", minor)
	case major == 4:
		return fmt.Sprintf("ttyS%d", minor-64)
	case major == 5 && minor == 1:
		return "console"
	}
	return "?"
}

// userNames maps uids to names, caching, as ps shows them: a name longer
// than 8 is cut to 7 and marked with '+'.
type userNames map[string]string

func (u userNames) name(uid string) string {
	if n, ok := u[uid]; ok {
		return n
	}
	n := uid
	if usr, err := user.LookupId(uid); err == nil {
		n = usr.Username
	}
	if len(n) > 8 {
		n = n[:7] + "+"
	}
	u[uid] = n
	return n
}

// column is one column of a procps report.
type column struct {
	header string
	width  int
	left   bool
}

// row lays out cells as procps does: one space between columns, and a cell
// wider than its column pushes the rest right until later padding absorbs
// the overflow. The last column is not padded.
func row(cols []column, cells []string) string {
	var b strings.Builder
	debt := 0
	for i, c := range cols {
		text := cells[i]
		if i > 0 {
			b.WriteByte(' ')
		}
		last := i == len(cols)-1
		pad := c.width - len(text)
		if pad < 0 {
			debt -= pad
			pad = 0
		} else if debt > 0 {
			take := min(pad, debt)
			pad -= take
			debt -= take
		}
		switch {
		case c.left && last:
			b.WriteString(text)
		case c.left:
			b.WriteString(text)
			b.WriteString(strings.Repeat(" ", pad))
		default:
			b.WriteString(strings.Repeat(" ", pad))
			b.WriteString(text)
		}
	}
	return b.String()
}

// pidWidth is the width ps gives PID: the digits of the largest pid.
func pidWidth() int {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return 5
	}
	return max(len(strings.TrimSpace(string(b))), 5)
}

// permille formats a share in tenths of a percent as ps does: "12.3", or a
// whole number from 100 up.
func permille(v uint64) string {
	if v > 999 {
		return strconv.FormatUint(v/10, 10)
	}
	return fmt.Sprintf("%d.%d", v/10, v%10)
}

// PS is "ps aux", or with args false "ps auxc" (command names only).
func PS(args bool) ([]byte, error) {
	s, err := takeSnapshot(true)
	if err != nil {
		return nil, err
	}
	s.args = args
	return s.ps(), nil
}

// command is what ps's COMMAND, w's WHAT and json's command show of p: its
// command line, or with s.args false its command name (ps's "c" option).
func (s *snapshot) command(p *procInfo) string {
	if s.args {
		return p.args
	}
	return printable(p.comm)
}

func (s *snapshot) ps() []byte {
	cols := []column{
		{"USER", 8, true}, {"PID", pidWidth(), false}, {"%CPU", 4, false}, {"%MEM", 4, false},
		{"VSZ", 6, false}, {"RSS", 5, false}, {"TTY", 8, true}, {"STAT", 4, true},
		{"START", 5, false}, {"TIME", 6, false}, {"COMMAND", 0, true},
	}
	var b bytes.Buffer
	hdr := make([]string, len(cols))
	for i, c := range cols {
		hdr[i] = c.header
	}
	b.WriteString(row(cols, hdr))
	b.WriteByte('\n')
	names := userNames{}
	// START counts from the kernel's boot time in whole seconds (btime in
	// /proc/stat), plus whole seconds of the start time, as ps does.
	boot := time.Unix(int64(s.bootTime), 0)
	for _, p := range s.procs {
		elapsed := s.uptime - float64(p.startTicks)/clockTicks
		var pcpu uint64
		if elapsed >= 1 {
			pcpu = uint64(float64(p.ticks*1000/clockTicks) / elapsed)
		}
		var pmem uint64
		if s.memTotal > 0 {
			pmem = p.rssKB * 1000 / s.memTotal
		}
		start := boot.Add(time.Duration(p.startTicks/clockTicks) * time.Second)
		secs := p.ticks / clockTicks
		cells := []string{
			names.name(p.uid), strconv.Itoa(p.pid), permille(pcpu), permille(pmem),
			strconv.FormatUint(p.vsizeKB, 10), strconv.FormatUint(p.rssKB, 10),
			ttyName(p.ttyNr), p.stat(), startTime(start, s.now),
			fmt.Sprintf("%d:%02d", secs/60, secs%60), s.command(&p),
		}
		b.WriteString(row(cols, cells))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// stat is ps's STAT: the state letter, then < (high priority), N (low
// priority), L (locked pages), s (session leader), l (multi-threaded), +
// (in the foreground process group of its terminal).
func (p procInfo) stat() string {
	st := p.state
	switch {
	case p.nice < 0:
		st += "<"
	case p.nice > 0:
		st += "N"
	}
	if p.locked {
		st += "L"
	}
	if p.sid == p.pid {
		st += "s"
	}
	if p.threads > 1 {
		st += "l"
	}
	if p.tpgid != -1 && p.tpgid == p.pgrp {
		st += "+"
	}
	return st
}

// startTime is ps's START (procps pr_stime): the time of day for a process
// started today, the month and day for one started earlier this year, the
// year before that. Today and this year are calendar ones, in now's zone:
// a process started at 23:50 shows as "Nov25" ten minutes after midnight.
func startTime(t, now time.Time) string {
	t = t.In(now.Location())
	switch {
	case t.Year() != now.Year():
		return t.Format("2006")
	case t.YearDay() != now.YearDay():
		return t.Format("Jan02")
	default:
		return t.Format("15:04")
	}
}

// Uptime is uptime(1)'s one line.
func Uptime() ([]byte, error) {
	s, err := takeSnapshot(false)
	if err != nil {
		return nil, err
	}
	return []byte(s.uptimeLine() + "\n"), nil
}

// uptimeLine is procps's sprint_uptime, the first line of w.
func (s *snapshot) uptimeLine() string {
	n := len(s.users)
	word := "user"
	if n > 1 {
		word = "users"
	}
	return fmt.Sprintf(" %s up %s, %2d %s,  load average: %.2f, %.2f, %.2f",
		s.now.Format("15:04:05"), upFor(s.uptime), n, word, s.load[0], s.load[1], s.load[2])
}

// upFor is how long the machine has been up as procps prints it after
// "up": "3 days,  2:04", "1 day, 10 min", "2:04" right-aligned, "8 min".
func upFor(secs float64) string {
	up := int(secs)
	days, hours, mins := up/86400, up/3600%24, up/60%60
	var b strings.Builder
	if days > 0 {
		word := "day"
		if days > 1 {
			word = "days"
		}
		fmt.Fprintf(&b, "%d %s, ", days, word)
	}
	if hours > 0 {
		fmt.Fprintf(&b, "%2d:%02d", hours, mins)
	} else {
		fmt.Fprintf(&b, "%d min", mins)
	}
	return b.String()
}

// FormatUptime is upFor with its runs of spaces made one, as
// ParseUptimeLine gives an uptime: "3 days, 2:04", "1 day, 0:10", "2:04",
// "8 min".
func FormatUptime(secs float64) string { return strings.Join(strings.Fields(upFor(secs)), " ") }

// UptimeLine is what procps's uptime line (w's first line and uptime(1))
// says.
type UptimeLine struct {
	Uptime string // as FormatUptime gives it
	Users  int
	Load   [3]float64
}

// uptimeRE matches procps's uptime line:
// " 18:58:58 up 3 days,  2:04,  2 users,  load average: 0.89, 0.61, 0.28".
var uptimeRE = regexp.MustCompile(`up\s+(.*?),\s+(\d+)\s+users?,\s+load averages?:\s+([\d.]+),?\s+([\d.]+),?\s+([\d.]+)`)

// ParseUptimeLine reads uptime, users and load from an uptime line, as
// any w or uptime prints it (procps's, BSD's "load averages:").
func ParseUptimeLine(line string) (UptimeLine, bool) {
	m := uptimeRE.FindStringSubmatch(line)
	if m == nil {
		return UptimeLine{}, false
	}
	u := UptimeLine{Uptime: strings.Join(strings.Fields(m[1]), " ")}
	u.Users, _ = strconv.Atoi(m[2])
	for i := range 3 {
		u.Load[i], _ = strconv.ParseFloat(m[3+i], 64)
	}
	return u, true
}

// W is w(1): the uptime line, a header and one row per session; with
// args false, WHAT is the command name only.
func W(args bool) ([]byte, error) {
	s, err := takeSnapshot(true)
	if err != nil {
		return nil, err
	}
	s.args = args
	return s.w(), nil
}

const wHeader = "USER     TTY      FROM             LOGIN@   IDLE   JCPU   PCPU WHAT"

// wWhatMax is how much of WHAT procps's w prints when its output is not a
// terminal and COLUMNS is unset, as when svr runs it: its MAX_CMD_WIDTH,
// 512, less the 65 columns before WHAT.
const wWhatMax = 512 - 65

func (s *snapshot) w() []byte {
	var b bytes.Buffer
	b.WriteString(s.uptimeLine())
	b.WriteString("\n" + wHeader + "\n")
	uids := map[string]string{} // user name to uid, "" for no account
	for _, u := range s.users {
		uid, ok := uids[u.User]
		if !ok {
			if usr, err := user.Lookup(u.User); err == nil {
				uid = usr.Uid
			}
			uids[u.User] = uid
		}
		jcpu, pcpu, what, shown := s.ttyUsage(u, uid)
		if !shown {
			continue
		}
		// FROM as procps prints it (loginField), "-" when empty; TTY and
		// USER by the same rule, where procps's w prints them raw (a
		// terminal name holding a newline forges a row in its answer).
		from := loginField(u.Host, 16)
		if from == "" {
			from = "-"
		}
		user, tty := loginField(u.User, 8), loginField(u.Terminal, 8)
		login := time.Unix(u.Started, 0)
		// IDLE as procps's: the terminal's last access, 0 when it cannot
		// be read.
		var idle string
		switch {
		case strings.HasPrefix(u.Terminal, ":"):
			idle = " ?xdm? " // an X display, not a terminal
		case u.Terminal == "":
			idle = "       "
		default:
			idle = ival7(0, 0)
			if at, ok := accessTime("/dev/" + u.Terminal); ok {
				idle = ival7(s.now.Sub(at), 0)
			}
		}
		if len(what) > wWhatMax {
			what = what[:wWhatMax]
		}
		pc := "   ?   "
		if pcpu > 0 {
			pc = ival7(time.Duration(pcpu)*time.Second/clockTicks, pcpu%clockTicks)
		}
		fmt.Fprintf(&b, "%-9.8s%-9.8s%-16.16s %s%s%s%s %s\n", user, tty, from,
			loginTime(login, s.now), idle, ival7(time.Duration(jcpu)*time.Second/clockTicks, jcpu%clockTicks), pc, what)
	}
	return b.Bytes()
}

// ttyUsage is w's JCPU (CPU ticks of every process on the session's
// terminal), PCPU and WHAT (those of the process w shows), chosen as
// procps's w chooses (find_best_proc): the login process, unless a later
// started foreground process on the terminal runs as the session's user
// (uid, effective or real); failing both, the latest started process on
// the terminal. shown is false for a session that procps's w skips: its
// user has no account (uid ""), or its login process is gone (a stale
// record, left by a login that ended without clearing it). The count of
// users on the uptime line counts every session, as procps's does.
func (s *snapshot) ttyUsage(u session, uid string) (jcpu, pcpu uint64, what string, shown bool) {
	if uid == "" {
		return 0, 0, "", false
	}
	var best *procInfo
	var bestStart, secondStart uint64
	for i := range s.procs {
		p := &s.procs[i]
		if p.pid == u.Pid {
			shown = true
			if bestStart == 0 {
				best, bestStart = p, p.startTicks
			}
		}
		if ttyName(p.ttyNr) != u.Terminal {
			continue
		}
		jcpu += p.ticks
		if secondStart == 0 || p.startTicks > secondStart {
			secondStart = p.startTicks
			if best == nil {
				best = p
			}
		}
		if (p.uid != uid && p.ruid != uid) || p.pgrp != p.tpgid || p.startTicks <= bestStart {
			continue
		}
		best, bestStart = p, p.startTicks
	}
	if best == nil {
		return jcpu, 0, "-", shown
	}
	return jcpu, best.ticks, s.command(best), shown
}

// loginTime is w's LOGIN@, 7 columns as procps prints it (after FROM's
// space): the time today, else weekday and hour within a week, else day,
// month and year. Its rows are thus one column right of the header's
// IDLE, JCPU and PCPU, as procps's are.
func loginTime(t, now time.Time) string {
	if now.Sub(t) > 12*time.Hour && t.YearDay() != now.YearDay() {
		if now.Sub(t) > 6*24*time.Hour {
			return fmt.Sprintf("%02d%s%02d", t.Day(), t.Format("Jan"), t.Year()%100)
		}
		return fmt.Sprintf("%s%02d  ", t.Format("Mon"), t.Hour())
	}
	return t.Format("15:04") + "  "
}

// ival7 is w's 7-column interval: days, hours:minutes, minutes:seconds or
// seconds.centiseconds.
func ival7(d time.Duration, centi uint64) string {
	t := int64(d / time.Second)
	switch {
	case t < 0:
		return "   ?   "
	case t >= 48*3600:
		return fmt.Sprintf(" %2ddays", t/86400)
	case t >= 3600:
		return fmt.Sprintf(" %2d:%02dm", t/3600, t/60%60)
	case t > 60:
		return fmt.Sprintf(" %2d:%02d ", t/60, t%60)
	default:
		return fmt.Sprintf(" %2d.%02ds", t, centi)
	}
}
