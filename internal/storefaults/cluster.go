package storefaults

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tcplab/tcplab/internal/procout"
	"github.com/tcplab/tcplab/internal/redisproc"
)

// cluster is what the nemesis acts on: a master redis-server with an
// append-only file synced at every write, a replica of it fed through a
// proxy (the replication link, which a failover cuts first), and the
// strsvr processes, each reaching "the master" through a proxy of its own
// (a partition cuts one; a failover points them all at the replica).
type cluster struct {
	cfg     *Config
	master  *redisproc.Server
	replica *redisproc.Server
	link    *redisproc.Proxy   // the replica's way to the master
	fronts  []*redisproc.Proxy // the servers', then the stopper's
	servers []*strsvr
	n       int // redis-servers started, for their directories

	// The stopper: one more strsvr, without --keep, that stops when it
	// finds the group empty; started again when it has (stopperMu).
	stopperMu sync.Mutex
	stopper   *strsvr
}

// currentStopper returns the stopper running now, or nil between a stop
// and its restart.
func (c *cluster) currentStopper() *strsvr {
	c.stopperMu.Lock()
	defer c.stopperMu.Unlock()
	return c.stopper
}

// startStopper starts the stopper on its own proxy (the last front).
func (c *cluster) startStopper(ctx context.Context) (*strsvr, error) {
	f := c.fronts[len(c.fronts)-1]
	s, err := startStrsvr(ctx, c.cfg.Binary, f.URL("v", "lease=3s"), c.cfg.Servers, false)
	c.stopperMu.Lock()
	c.stopper = s
	c.stopperMu.Unlock()
	return s, err
}

// redisArgs are every redis-server's: nothing acknowledged is lost to a
// kill (appendfsync always), a replica syncs at once, DEBUG SLEEP works.
var redisArgs = []string{"--appendfsync", "always", "--repl-diskless-sync-delay", "0", "--enable-debug-command", "yes"}

func (c *cluster) newRedis(args ...string) (*redisproc.Server, error) {
	port, err := c.cfg.Port()
	if err != nil {
		return nil, err
	}
	c.n++
	return redisproc.Start(filepath.Join(c.cfg.Dir, fmt.Sprint("redis", c.n)), port, append(redisArgs, args...)...)
}

// start brings the cluster up: Redis, its replica, the proxies and the
// strsvr processes.
func (c *cluster) start(ctx context.Context) error {
	var err error
	if c.master, err = c.newRedis(); err != nil {
		return err
	}
	if err := c.newReplica(); err != nil {
		return err
	}
	for i := range c.cfg.Servers {
		p, err := redisproc.StartProxy(c.master.Addr())
		if err != nil {
			return err
		}
		c.fronts = append(c.fronts, p)
		s, err := startStrsvr(ctx, c.cfg.Binary, p.URL("v", "lease=3s"), i, true)
		if err != nil {
			return err
		}
		c.servers = append(c.servers, s)
	}
	p, err := redisproc.StartProxy(c.master.Addr())
	if err != nil {
		return err
	}
	c.fronts = append(c.fronts, p)
	_, err = c.startStopper(ctx)
	return err
}

// newReplica starts a replica of the master, fed through a new link.
func (c *cluster) newReplica() error {
	link, err := redisproc.StartProxy(c.master.Addr())
	if err != nil {
		return err
	}
	c.link = link
	c.replica, err = c.newRedis("--replicaof", "127.0.0.1", strconv.Itoa(link.Port()))
	return err
}

// client is a direct connection to the master, for the nemesis and for
// reading the group's v.
func (c *cluster) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: c.master.Addr(), ReadTimeout: 20 * time.Second, MaxRetries: -1})
}

// truth reads the group's v: what the master holds, once it answers.
func (c *cluster) truth(ctx context.Context) ([]byte, error) {
	rc := c.client()
	defer rc.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := rc.Get(ctx, "v").Bytes()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		if err == nil {
			return v, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("read the group's v: %w", err)
		}
		time.Sleep(50 * time.Millisecond) // Redis restarting: ask again
	}
}

// replicated waits until the replica has every write the master has.
func (c *cluster) replicated(ctx context.Context) error {
	rc := c.client()
	defer rc.Close()
	conn := rc.Conn()
	defer conn.Close()
	if err := conn.Incr(ctx, "probe").Err(); err != nil {
		return err
	}
	n, err := conn.Wait(ctx, 1, 15*time.Second).Result()
	if err == nil && n < 1 {
		err = errors.New("no replica acknowledged within 15s")
	}
	return err
}

// killWithoutPersistence turns the master's append-only file off, kills
// it (SIGKILL) and removes its files: started again, it is empty, as a
// Redis without persistence is after a crash.
func (c *cluster) killWithoutPersistence(ctx context.Context) error {
	rc := c.client()
	err := rc.ConfigSet(ctx, "appendonly", "no").Err()
	rc.Close()
	if err != nil {
		return err
	}
	c.master.Kill()
	return os.RemoveAll(filepath.Join(c.master.Dir, "appendonlydir"))
}

// cutReplica waits until the replica has every write so far, then cuts
// its link: what the master takes from now on, the replica misses.
func (c *cluster) cutReplica(ctx context.Context) error {
	if err := c.replicated(ctx); err != nil {
		return fmt.Errorf("before the failover: %w", err)
	}
	c.link.Point("")
	return nil
}

// promote fails over to the replica cut off by cutReplica: promotes it,
// points every strsvr at it, kills the old master and gives the new one a
// replica.
func (c *cluster) promote(ctx context.Context) error {
	rc := redis.NewClient(&redis.Options{Addr: c.replica.Addr()})
	err := rc.ReplicaOf(ctx, "NO", "ONE").Err()
	rc.Close()
	if err != nil {
		return err
	}
	// Started again (a later kill), it must come back a master.
	if i := slices.Index(c.replica.Args, "--replicaof"); i >= 0 {
		c.replica.Args = slices.Delete(slices.Clone(c.replica.Args), i, i+3)
	}
	old := c.master
	c.master = c.replica
	for _, f := range c.fronts {
		f.Point(c.master.Addr())
	}
	old.Kill()
	c.link.Close()
	return c.newReplica()
}

// stop stops everything; strsvr processes that are still running get
// SIGTERM first (see stopServers).
func (c *cluster) stop() {
	for _, s := range c.servers {
		s.kill()
	}
	if s := c.currentStopper(); s != nil {
		s.kill()
	}
	for _, f := range c.fronts {
		f.Close()
	}
	if c.link != nil {
		c.link.Close()
	}
	for _, r := range []*redisproc.Server{c.master, c.replica} {
		if r != nil {
			r.Kill()
		}
	}
}

// strsvr is one strsvr process of the group.
type strsvr struct {
	i      int
	cmd    *exec.Cmd
	port   string
	stderr *procout.Buffer
	stdout *procout.Buffer
	done   chan struct{}
	code   int
	exitAt time.Time // when it exited (read after done)
}

func startStrsvr(ctx context.Context, bin, url string, i int, keep bool) (*strsvr, error) {
	s := &strsvr{i: i, stderr: new(procout.Buffer), stdout: new(procout.Buffer), done: make(chan struct{})}
	args := []string{"strsvr", "--store", url, "--write-timeout", "30s", "0"}
	if keep {
		args = slices.Insert(args, 1, "--keep")
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		s.cmd.Wait()
		s.code = s.cmd.ProcessState.ExitCode()
		s.exitAt = time.Now()
		close(s.done)
	}()
	if !procout.WaitWritten(15*time.Second, s.done, func(out string) bool { s.port = procout.ListeningPortIn(out); return s.port != "" }, s.stderr) {
		s.kill()
		return nil, fmt.Errorf("strsvr %d did not start: %s", i, s.stderr.String())
	}
	return s, nil
}

func (s *strsvr) kill() {
	select {
	case <-s.done:
	default:
		s.cmd.Process.Kill()
		<-s.done
	}
}

// stopWithFinal stops the server with SIGTERM, as an operator does, and
// returns its exit status and the final v it printed.
func (s *strsvr) stopWithFinal() (code int, final []byte, err error) {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.kill()
		return -1, nil, fmt.Errorf("strsvr %d did not stop within 30s of SIGTERM", s.i)
	}
	out := s.stdout.String()
	v, ok := strings.CutPrefix(out, "the final value of v is ")
	if !ok || !strings.HasSuffix(v, "\n") {
		return s.code, nil, fmt.Errorf("strsvr %d printed %q, not the final value of v", s.i, out)
	}
	return s.code, []byte(strings.TrimSuffix(v, "\n")), nil
}

// logTail is the end of a server's log, for a failure report.
func (s *strsvr) logTail(n int) string {
	sc := bufio.NewScanner(strings.NewReader(s.stderr.String()))
	sc.Buffer(nil, 1<<20)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// counter is a count that many goroutines bump.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) add(what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[what]++
}

func (c *counter) get() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.n {
		out[k] = v
	}
	return out
}
