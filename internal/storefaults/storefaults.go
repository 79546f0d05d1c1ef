// Package storefaults is the checker of strsvr on Redis under faults: a
// seeded, randomized run against a real redis-server (with a replica) and
// several strsvr processes, with typists, classic clients, watchers and
// strclnt --watch binaries, while a nemesis stalls Redis (CLIENT PAUSE,
// DEBUG SLEEP), kills it with and without persistence, partitions one
// strsvr from it through a proxy, fails over to the replica after cutting
// it off, and edits v by hand. After every step, with typing paused, it
// reads the group's v and checks the one promise: every v any client was
// shown is a prefix of the group's v (or the client was told, with an 'e'
// frame, that its v is gone), and every watcher is current or told. At the
// end every strsvr is stopped with SIGTERM and must print the group's v.
//
// It is shared by a short run in the test suite and a long one in the
// bench (go run ./bench -only storefaults); a failing run says its seed,
// and Config.Seed replays it (the faults and their timing follow from the
// seed; the interleaving of letters does not).
package storefaults

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tcplab/tcplab/internal/procout"
)

// Config is one run.
type Config struct {
	Binary  string               // a tcplab binary
	Dir     string               // scratch directory (Redis's files)
	Port    func() (int, error)  // a free port for a redis-server
	Seed    uint64               // the nemesis's choices follow from it
	Steps   int                  // nemesis steps
	Servers int                  // strsvr processes; 3 if 0
	Longest time.Duration        // longest stall or partition; 7 s if 0
	Actions []string             // the nemesis's actions in order (see actions); nil: chosen by the seed
	Logf    func(string, ...any) // progress, one line a step; nil: none
}

// Result is what a run saw.
type Result struct {
	Seed     uint64
	Steps    int
	Faults   map[string]int // nemesis actions, by name
	Letters  int64          // letters answered to typists and classic clients
	Shown    int64          // v's shown to clients (replies, updates, lines)
	Checks   int            // client records checked against the group's v
	Wrong    int            // a v shown that is not a prefix of the group's v, the client not told
	Window   int            // a v shown from the old bytes in the detection window of a hand edit
	Stale    int            // a watcher neither current nor told 30 s after Redis answered
	Told     int64          // connections the server ended with an 'e' frame
	Ended    map[string]int // connections ended, by kind of client
	CatchUp  time.Duration  // longest wait of a watcher, from Redis answering again to showing the v it held then
	EditSeen time.Duration  // longest time from a same-length hand edit to every server's WARN
	Finals   int            // strsvr processes stopped at the end that printed the group's v
	Stops    int            // times the stopper (the strsvr without --keep) stopped on a group it found empty
	Early    int            // of those, stops while a client of the group was connected
	Problems []string       // each violation, in words
	Took     time.Duration
}

// OK reports whether the run kept every promise.
func (r *Result) OK() bool { return len(r.Problems) == 0 }

// run is the state of one run.
type run struct {
	cfg   *Config
	rng   *rand.Rand
	c     *cluster
	count counter

	era atomic.Int64 // bumped by every fault that may lose v (a new era)
	// stepAt is when the current step began (ns); cut is the strsvr a
	// partition of this step cut off from Redis, -1 if none.
	stepAt  atomic.Int64
	cut     atomic.Int64
	letters atomic.Int64
	told    atomic.Int64

	shownCount atomic.Int64

	// editBefore is, per server, how many WARNs of a same-length edit it
	// had logged before the last edit (the step's own).
	editBefore []int

	gate     sync.Mutex
	paused   bool
	resume   chan struct{} // closed when typing resumes
	inflight sync.WaitGroup

	mu       sync.Mutex
	problems []string
	clients  []*client
	ended    []endedConn // connections that ended since the last check
	stops    []stop      // the stopper's stops since the last check
}

// stop is one stop of the stopper: when, and the clients of the other
// servers that were connected then (by the checker's record; a client
// that was shown a v after the stop on the same connection surely was).
type stop struct {
	at        time.Time
	code      int
	connected []witness
}

type witness struct {
	c    *client
	conn int
}

// watchStopper starts the stopper again whenever it stops, and records
// each stop for the next check, until ctx ends.
func (r *run) watchStopper(ctx context.Context) {
	for {
		s := r.c.currentStopper()
		select {
		case <-ctx.Done():
			return
		case <-s.done:
		}
		st := stop{at: s.exitAt, code: s.code}
		// Witnesses: clients counted in the group since before this step
		// began (shown a v then, so their server's Join had landed),
		// none of a server cut off from Redis (its lease may run out:
		// its clients stop counting). A client that joined during the
		// step may not be seen yet: another server's count reaches the
		// stopper one pub/sub message later, as documented.
		began := time.Unix(0, r.stepAt.Load())
		r.mu.Lock()
		for _, c := range r.clients {
			g := c.rec.get()
			if g.up && g.told == "" && g.gone == nil && !g.first.IsZero() && g.first.Before(began) && int64(c.server.i) != r.cut.Load() {
				st.connected = append(st.connected, witness{c, g.conn})
			}
		}
		r.stops = append(r.stops, st)
		r.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if _, err := r.c.startStopper(ctx); err != nil {
			r.fail("start the stopper again: %v", err)
			return
		}
	}
}

// checkStops checks the stopper's stops since the last check: the
// stopper may print the final v and exit only when no client of the
// group is connected, anywhere. A witness (see watchStopper) shown a v
// after the stop, on the same connection, was connected at the stop.
func (r *run) checkStops(what string, res *Result) {
	r.mu.Lock()
	stops := r.stops
	r.stops = nil
	r.mu.Unlock()
	for _, st := range stops {
		res.Stops++
		for _, w := range st.connected {
			g := w.c.rec.get()
			if g.conn == w.conn && g.at.After(st.at) {
				res.Early++
				r.fail("after %s: the stopper (strsvr without --keep) took the group for empty and exited %d at %s while %s, connected since %s, was still connected (shown a v at %s)",
					what, st.code, st.at.Format("15:04:05.000"), w.c.name, g.since.Format("15:04:05.000"), g.at.Format("15:04:05.000"))
				break
			}
		}
	}
}

// endedConn is the record of a connection that ended, kept for the next
// check: a v shown before an 'e' frame must be a prefix of the group's v
// as much as any other.
type endedConn struct {
	name   string
	kind   kind
	server int // the strsvr it was connected to
	snapshot
}

// closed keeps the record of c's connection, which just ended.
func (r *run) closed(c *client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = append(r.ended, endedConn{c.name + fmt.Sprintf(" (connection %d)", c.rec.conn), c.kind, c.server.i, c.rec.get()})
}

func (r *run) currentEra() int { return int(r.era.Load()) }

func (r *run) failing() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.problems) > 0
}

func (r *run) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// mayType blocks while typing is paused; a client that returns from it
// holds a place in inflight until typed.
func (r *run) mayType(ctx context.Context) error {
	for {
		r.gate.Lock()
		if !r.paused {
			r.inflight.Add(1)
			r.gate.Unlock()
			return nil
		}
		ch := r.resume
		r.gate.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *run) typed() { r.inflight.Done() }

// pause stops typing and waits for the letters on their way.
func (r *run) pause() {
	r.gate.Lock()
	r.paused = true
	r.resume = make(chan struct{})
	r.gate.Unlock()
	r.inflight.Wait()
}

func (r *run) unpause() {
	r.gate.Lock()
	if r.paused {
		r.paused = false
		close(r.resume)
	}
	r.gate.Unlock()
}

// Run runs the checker. Its error is a failure to run (Redis would not
// start); a broken promise is in Result.Problems.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Servers == 0 {
		cfg.Servers = 3
	}
	if cfg.Longest == 0 {
		cfg.Longest = 7 * time.Second
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	start := time.Now()
	r := &run{cfg: &cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x73746f7265)), resume: make(chan struct{})}
	r.stepAt.Store(time.Now().UnixNano())
	r.cut.Store(-1)
	close(r.resume)
	r.c = &cluster{cfg: &cfg}
	defer r.c.stop()
	if err := r.c.start(ctx); err != nil {
		return nil, fmt.Errorf("seed %d: start: %w", cfg.Seed, err)
	}
	cctx, stopClients := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i, s := range r.c.servers {
		for k, n := range map[kind]int{typist: 2, classic: 1, watcher: 2, binary: 1} {
			for j := range n {
				c := &client{name: fmt.Sprintf("server %d %s %d", i, k, j), kind: k, server: s, rec: newShown(), r: r,
					rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i*100+int(k)*10+j)))}
				r.clients = append(r.clients, c)
				wg.Go(func() { c.loop(cctx) })
			}
		}
	}
	v := &client{name: "the stopper's visitor", kind: visitor, rec: newShown(), r: r, rng: rand.New(rand.NewPCG(cfg.Seed, 0x76697369746f72))}
	wg.Go(func() { v.visit(cctx) })
	wg.Go(func() { r.watchStopper(cctx) })
	res := &Result{Seed: cfg.Seed, Faults: map[string]int{}}
	defer func() {
		stopClients()
		wg.Wait()
	}()
	for step := range cfg.Steps {
		if ctx.Err() != nil {
			break
		}
		if err := r.step(ctx, step, res); err != nil {
			r.fail("step %d: %v", step, err)
			break
		}
		res.Steps++
		if r.failing() {
			break // the seed replays it
		}
	}
	r.pause()
	if truth, err := r.c.truth(ctx); err == nil && !r.failing() {
		r.check(ctx, "the end", truth, time.Now(), time.Time{}, res)
		r.checkStops("the end", res)
		stopClients()
		wg.Wait()
		r.finals(truth, res)
	}
	res.Letters = r.letters.Load()
	res.Shown = r.shownCount.Load()
	res.Told = r.told.Load()
	res.Ended = r.count.get()
	r.mu.Lock()
	res.Problems = r.problems
	r.mu.Unlock()
	for i, p := range res.Problems {
		res.Problems[i] = fmt.Sprintf("seed %d: %s", cfg.Seed, p)
	}
	res.Took = time.Since(start)
	if !res.OK() {
		for _, s := range r.c.servers {
			res.Problems = append(res.Problems, fmt.Sprintf("seed %d: strsvr %d's log ends:\n%s", cfg.Seed, s.i, s.logTail(15)))
		}
	}
	return res, nil
}

// The nemesis's actions. Those that may lose v (a kill without
// persistence, a failover after the replica was cut off, a hand edit)
// begin a new era at the moment of the loss: what was shown before may
// cease to be a prefix of the group's v, and the clients that hold it
// must be told; anything shown after must be a prefix of the new v.
var actions = []string{"none", "pause", "sleep", "kill", "kill-no-aof", "partition", "failover", "edit", "flushall", "delgroup"}

// step is one nemesis step: letters flow, a fault comes and goes while
// they flow, then typing pauses and every client is checked.
func (r *run) step(ctx context.Context, n int, res *Result) error {
	action := actions[r.rng.IntN(len(actions))]
	switch {
	case len(r.cfg.Actions) > 0:
		action = r.cfg.Actions[n%len(r.cfg.Actions)]
	case n < len(actions):
		action = actions[n] // every kind at least once, if the run is long enough
	}
	res.Faults[action]++
	r.stepAt.Store(time.Now().UnixNano())
	r.cut.Store(-1)
	d := time.Duration(r.rng.Int64N(int64(r.cfg.Longest-time.Second))) + time.Second
	// The pauses below are the run's rhythm: letters flow before, during
	// and after each fault.
	time.Sleep(time.Duration(200+r.rng.IntN(600)) * time.Millisecond)
	rc := r.c.client()
	defer rc.Close()
	var editAt time.Time
	detail := ""
	switch action {
	case "pause":
		detail = d.String()
		if err := rc.Do(ctx, "CLIENT", "PAUSE", d.Milliseconds(), "ALL").Err(); err != nil {
			return fmt.Errorf("CLIENT PAUSE: %w", err)
		}
		time.Sleep(d)
	case "sleep":
		detail = d.String()
		if err := rc.Do(ctx, "DEBUG", "SLEEP", fmt.Sprintf("%.3f", d.Seconds())).Err(); err != nil {
			return fmt.Errorf("DEBUG SLEEP: %w", err)
		}
	case "kill":
		d = time.Duration(200+r.rng.IntN(1800)) * time.Millisecond
		detail = d.String()
		r.c.master.Kill()
		time.Sleep(d)
		if err := r.c.master.Start(); err != nil {
			return fmt.Errorf("restart Redis: %w", err)
		}
	case "kill-no-aof":
		d = time.Duration(200+r.rng.IntN(1800)) * time.Millisecond
		detail = d.String()
		err := r.lose(ctx, action, func() error { return r.c.killWithoutPersistence(ctx) })
		if err != nil {
			return err
		}
		time.Sleep(d)
		if err := r.c.master.Start(); err != nil {
			return fmt.Errorf("restart Redis: %w", err)
		}
	case "partition":
		i := r.rng.IntN(len(r.c.servers))
		detail = fmt.Sprintf("strsvr %d for %s", i, d)
		r.cut.Store(int64(i))
		r.c.fronts[i].Partition(true)
		time.Sleep(d)
		r.c.fronts[i].Partition(false)
	case "failover":
		d = time.Duration(100+r.rng.IntN(500)) * time.Millisecond
		detail = fmt.Sprintf("after the replica was cut off for %s", d)
		if err := r.c.cutReplica(ctx); err != nil {
			return fmt.Errorf("failover: %w", err)
		}
		time.Sleep(d) // letters that the replica will not have
		if err := r.lose(ctx, action, func() error { return r.c.promote(ctx) }); err != nil {
			return fmt.Errorf("failover: %w", err)
		}
	case "flushall":
		// Every key: v, and the group's counts while servers have
		// clients (the stopper must not take the group for empty).
		if err := r.lose(ctx, action, func() error { return rc.FlushAll(ctx).Err() }); err != nil {
			return fmt.Errorf("FLUSHALL: %w", err)
		}
	case "delgroup":
		keys := [][]string{{"v:servers"}, {"v:clients"}, {"v:servers", "v:clients"}, {"v:group", "v:servers", "v:clients"}}[r.rng.IntN(4)]
		detail = strings.Join(keys, " ")
		if err := rc.Del(ctx, keys...).Err(); err != nil {
			return fmt.Errorf("DEL %s: %w", detail, err)
		}
	case "edit":
		var edit func() error
		detail, edit = r.edit(ctx, rc)
		before := r.sameLengthWarnings()
		r.editBefore = before
		if err := r.lose(ctx, action, edit); err != nil {
			return fmt.Errorf("edit: %w", err)
		}
		if strings.HasPrefix(detail, "SETRANGE") {
			editAt = time.Now()
			defer r.editSeen(ctx, before, editAt, res)
		}
	}
	answered := time.Now()
	r.cfg.Logf("step %d: %s %s", n, action, detail)
	if action != "none" {
		if err := r.catchUp(ctx, action+" "+detail, answered, res); err != nil {
			return err
		}
	}
	time.Sleep(time.Duration(300+r.rng.IntN(700)) * time.Millisecond)
	r.pause()
	defer r.unpause()
	truth, err := r.c.truth(ctx)
	if err != nil {
		return err
	}
	r.check(ctx, action+" "+detail, truth, answered, editAt, res)
	r.checkStops(action+" "+detail, res)
	return nil
}

// staleAfter is how long after Redis answers again a watcher may take to
// catch up before the checker calls it stale: the promise is about a
// second (Result.CatchUp says how long it took), and a watcher left stale
// stays so for good; the margin is for a machine loaded by a -race build
// and the rest of the test suite (at a load average of 50, every process
// of a bench run once stood still for over a minute).
const staleAfter = 30 * time.Second

// catchUp reads the group's v as Redis answers again after a fault (at
// answered) and waits until every watcher has shown it (or a v that
// extends it: letters keep coming), or was told, or lost its connection;
// it records the longest wait, and counts a watcher that does none of
// these within staleAfter as stale.
func (r *run) catchUp(ctx context.Context, what string, answered time.Time, res *Result) error {
	then, err := r.c.truth(ctx)
	if err != nil {
		return err
	}
	era := r.currentEra()
	wait, cancel := context.WithDeadline(ctx, answered.Add(staleAfter))
	defer cancel()
	for _, c := range r.clients {
		if c.kind != watcher && c.kind != binary {
			continue
		}
		for {
			s := c.rec.get()
			if s.told != "" || s.gone != nil || !s.up {
				break // not connected: not silent on anything
			}
			if s.era == era && len(s.last) >= len(then) && bytes.HasPrefix(s.last, then) {
				if w := s.at.Sub(answered); w > res.CatchUp {
					res.CatchUp = w
				}
				break
			}
			select {
			case <-s.wake:
				continue
			case <-wait.Done():
				if ctx.Err() == nil {
					res.Stale++
					r.fail("after %s: %s has not caught up %s after Redis answered: it shows %d bytes that do not extend the %d Redis held when it answered (they differ at byte %d), and was not told", what, c.name, staleAfter, len(s.last), len(then), firstDiff(s.last, then))
				}
			}
			break
		}
	}
	return nil
}

// lose does something that may lose v (act) at a quiet moment: typing
// paused and every client checked against the group's v, then a new era.
func (r *run) lose(ctx context.Context, what string, act func() error) error {
	r.pause()
	defer r.unpause()
	truth, err := r.c.truth(ctx)
	if err != nil {
		return err
	}
	var res Result
	r.check(ctx, "just before "+what, truth, time.Now(), time.Time{}, &res)
	r.era.Add(1)
	return act()
}

// edit chooses a change of v by hand, as an operator might, and returns
// it in words and the act that makes it.
func (r *run) edit(ctx context.Context, rc *redis.Client) (string, func() error) {
	switch r.rng.IntN(4) {
	case 0:
		return "DEL v", func() error { return rc.Del(ctx, "v").Err() }
	case 1:
		return "APPEND v XYZ", func() error { return rc.Append(ctx, "v", "XYZ").Err() }
	}
	// Same length: SETRANGE over 1 to 5 letters somewhere in v, in upper
	// case, which no typist types. Neither v's length nor its checksum
	// can show it.
	n := 1 + r.rng.IntN(5)
	frac := r.rng.Float64()
	return fmt.Sprintf("SETRANGE of %d letters", n), func() error {
		l, err := rc.StrLen(ctx, "v").Result()
		if err != nil || l == 0 {
			return err
		}
		at := min(int64(frac*float64(l)), max(0, l-int64(n)))
		return rc.SetRange(ctx, "v", at, strings.Repeat("Q", int(min(int64(n), l-at)))).Err()
	}
}

// check compares every client's record with truth, the group's v read
// with typing paused: the last v each was shown in the current era must be
// a prefix of it, told or not; and every watcher must show truth, or be
// told, within staleAfter of answered (when Redis answered again). A v shown in
// the window after a same-length hand edit at editAt is counted apart.
func (r *run) check(ctx context.Context, what string, truth []byte, answered, editAt time.Time, res *Result) {
	era := r.currentEra()
	r.mu.Lock()
	records := r.ended
	r.ended = nil
	r.mu.Unlock()
	for _, c := range r.clients {
		records = append(records, endedConn{c.name, c.kind, c.server.i, c.rec.get()})
	}
	for _, s := range records {
		res.Checks++
		if s.count == 0 || s.era != era || bytes.HasPrefix(truth, s.last) {
			continue
		}
		if !editAt.IsZero() && s.at.After(editAt) && r.inEditWindow(s, editAt, len(truth)) {
			res.Window++
			continue
		}
		res.Wrong++
		r.fail("after %s: %s was shown %d bytes that are not a prefix of the group's v (%d bytes; they first differ at byte %d; told after: %q)",
			what, s.name, len(s.last), len(truth), firstDiff(s.last, truth), s.told)
	}
	wait, cancel := context.WithDeadline(ctx, answered.Add(staleAfter))
	defer cancel()
	for _, c := range r.clients {
		if c.kind != watcher && c.kind != binary {
			continue
		}
		for current := false; !current; {
			s := c.rec.get()
			// A watcher between connections (told or gone, or not yet
			// connected) is not connected and silent; the next one
			// starts current.
			if s.told != "" || s.gone != nil || !s.up || bytes.Equal(s.last, truth) {
				break
			}
			select {
			case <-s.wake:
				continue
			case <-wait.Done():
				if ctx.Err() == nil {
					res.Stale++
					r.fail("after %s: %s is neither current nor told %s after Redis answered: it shows %d bytes, the group's v is %d", what, c.name, staleAfter, len(s.last), len(truth))
				}
			}
			current = true // given up on
		}
	}
}

// inEditWindow says whether s, a v shown after a same-length hand edit at
// editAt that is not a prefix of the group's v (n bytes), is one of the old
// bytes the docs allow until its server sees the edit: shown within
// editWindow of the edit, or, whatever the clock says (a loaded machine
// delays a reply or a log line by seconds), shown from the copy its server
// then said it dropped. For a framed client the server says so to it: its
// connection was ended with "v was reset". For a classic client, which is
// only sent the true v with its next reply, its server logged the WARN of
// a same-length edit, and the copy it dropped held at least the bytes the
// client was shown. A server that went on serving old bytes after that
// fails the next step's check, which has no window.
func (r *run) inEditWindow(s endedConn, editAt time.Time, n int) bool {
	switch {
	case s.at.Before(editAt.Add(editWindow(n))):
		return true
	case s.kind != classic:
		return strings.Contains(s.told, "v was reset")
	case s.server >= len(r.editBefore):
		return false
	}
	line := nthLine(r.c.servers[s.server].stderr.String(), "to the same length", r.editBefore[s.server])
	_, after, ok := strings.Cut(line, "had_bytes=")
	if !ok {
		return false
	}
	had, err := strconv.Atoi(strings.Fields(after)[0])
	return err == nil && len(s.last) <= had
}

// editWindow is how long after a same-length hand edit clients may be
// shown the old bytes: until the refresher of each server has compared
// every piece of v (redisstore: 32 KiB every 500 ms), and a second more.
func editWindow(n int) time.Duration {
	return time.Duration(n/(32<<10)+1)*500*time.Millisecond + time.Second
}

// sameLengthWarnings counts, per server, the WARN lines that say v was
// changed in Redis to the same length.
func (r *run) sameLengthWarnings() []int {
	var n []int
	for _, s := range r.c.servers {
		n = append(n, strings.Count(s.stderr.String(), "to the same length"))
	}
	return n
}

// editSeen waits until every server has said, at WARN, that v was
// changed by hand (a same-length edit at editAt), and records how long
// that took; a server that does not say so within the edit window breaks
// the promise that the final v and classic clients never differ from
// Redis's v without a WARN.
func (r *run) editSeen(ctx context.Context, before []int, editAt time.Time, res *Result) {
	for i, s := range r.c.servers {
		limit := editWindow(0) + 2*time.Second
		var line string
		if !procout.WaitWritten(time.Until(editAt.Add(limit)), s.done, func(out string) bool {
			line = nthLine(out, "to the same length", before[i])
			return line != ""
		}, s.stderr) {
			r.fail("strsvr %d logged no WARN within %s of a same-length edit of v", i, limit)
			continue
		}
		// The log line's own time says when the server saw it.
		if f := strings.Fields(line); len(f) > 0 {
			if at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time=")); err == nil && at.Sub(editAt) > res.EditSeen {
				res.EditSeen = at.Sub(editAt)
			}
		}
	}
}

// nthLine returns the line of out holding what after the first n such
// lines, or "".
func nthLine(out, what string, n int) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, what) {
			if n == 0 {
				return line
			}
			n--
		}
	}
	return ""
}

// finals stops every strsvr with SIGTERM: each must exit 143 and print the
// group's v.
func (r *run) finals(truth []byte, res *Result) {
	for _, s := range r.c.servers {
		code, final, err := s.stopWithFinal()
		switch {
		case err != nil:
			r.fail("at the end: %v", err)
		case code != 143:
			r.fail("at the end: strsvr %d exited %d after SIGTERM, want 143", s.i, code)
		case !bytes.Equal(final, truth):
			r.fail("at the end: strsvr %d printed a final v of %d bytes, the group's v is %d (first differ at %d)", s.i, len(final), len(truth), firstDiff(final, truth))
		default:
			res.Finals++
		}
	}
	// The stopper stops by itself once the clients are gone (exit 0), or
	// at SIGTERM; either way it prints the group's v.
	s := r.c.currentStopper()
	if s == nil {
		return // it could not be started again: failed already
	}
	code, final, err := s.stopWithFinal()
	switch {
	case err != nil:
		r.fail("at the end: the stopper: %v", err)
	case code != 0 && code != 143:
		r.fail("at the end: the stopper exited %d, want 0 (group empty) or 143 (SIGTERM)", code)
	case !bytes.Equal(final, truth):
		r.fail("at the end: the stopper printed a final v of %d bytes, the group's v is %d (first differ at %d)", len(final), len(truth), firstDiff(final, truth))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
