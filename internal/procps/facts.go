package procps

import (
	"encoding/json"
	"os"
	"time"
)

// Facts is the structured form of w and ps, the answer to the "json"
// command: the same facts as the text reports, for scripts and dashboards
// (and for wps's fleet table). Classic clients never see it: they ask for w
// or ps. Fields are only ever added.
type Facts struct {
	Host          string       `json:"host"`
	Time          time.Time    `json:"time"`
	UptimeSeconds float64      `json:"uptime_seconds"`
	Load          [3]float64   `json:"load"`  // 1, 5 and 15 minute load averages
	Users         []UserFacts  `json:"users"` // login sessions, as w lists them (see loggedIn)
	Procs         int          `json:"procs"` // number of processes
	Processes     []ProcFacts  `json:"processes"`
	Memory        *MemoryFacts `json:"memory,omitempty"`
}

// UserFacts is one logged-in session.
type UserFacts struct {
	User  string    `json:"user"`
	TTY   string    `json:"tty"`
	From  string    `json:"from"`
	Login time.Time `json:"login"`
}

// ProcFacts is one process, the columns of ps aux.
type ProcFacts struct {
	PID        int     `json:"pid"`
	User       string  `json:"user"`
	CPUPercent float64 `json:"cpu_percent"` // lifetime average, as ps's %CPU
	MemPercent float64 `json:"mem_percent"`
	VSZKiB     uint64  `json:"vsz_kib"`
	RSSKiB     uint64  `json:"rss_kib"`
	TTY        string  `json:"tty"`
	Stat       string  `json:"stat"`
	CPUSeconds float64 `json:"cpu_seconds"`
	Command    string  `json:"command"`
}

// MemoryFacts is the machine's memory in KiB.
type MemoryFacts struct {
	TotalKiB     uint64 `json:"total_kib"`
	AvailableKiB uint64 `json:"available_kib"`
}

// collectFacts reads the facts; with args false a process's Command is
// its command name only.
func collectFacts(args bool) (*Facts, error) {
	s, err := takeSnapshot(true)
	if err != nil {
		return nil, err
	}
	s.args = args
	return s.facts(), nil
}

func (s *snapshot) facts() *Facts {
	f := &Facts{
		Time:          s.now.UTC().Truncate(time.Second),
		UptimeSeconds: s.uptime,
		Load:          s.load,
		Users:         []UserFacts{},
		Procs:         len(s.procs),
		Processes:     make([]ProcFacts, 0, len(s.procs)),
	}
	f.Host, _ = os.Hostname()
	for _, u := range s.users {
		f.Users = append(f.Users, UserFacts{User: u.User, TTY: u.Terminal, From: u.Host, Login: time.Unix(u.Started, 0).UTC()})
	}
	names := userNames{}
	for i := range s.procs {
		p := &s.procs[i]
		elapsed := s.uptime - float64(p.startTicks)/clockTicks
		var cpu, memp float64
		if elapsed >= 1 {
			cpu = float64(p.ticks) / clockTicks / elapsed * 100
		}
		if s.memTotal > 0 {
			memp = float64(p.rssKB) / float64(s.memTotal) * 100
		}
		f.Processes = append(f.Processes, ProcFacts{
			PID: p.pid, User: names.name(p.uid), CPUPercent: round1(cpu), MemPercent: round1(memp),
			VSZKiB: p.vsizeKB, RSSKiB: p.rssKB, TTY: ttyName(p.ttyNr), Stat: p.stat(),
			CPUSeconds: float64(p.ticks) / clockTicks, Command: s.command(p),
		})
	}
	if s.memTotal > 0 {
		f.Memory = &MemoryFacts{TotalKiB: s.memTotal, AvailableKiB: s.memAvail}
	}
	return f
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }

// JSON is the "json" command: Facts as one line of JSON; with args false
// a process's command is its name only.
func JSON(args bool) ([]byte, error) {
	f, err := collectFacts(args)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
