// Package redisstore keeps strsvr's shared string v in Redis, so that several
// strsvr processes, on one machine or many, serve one and the same v.
//
// Open takes a URL as Redis clients write it, plus the name of the key:
//
//	redis://[[user]:password@]HOST[:PORT][/DB]?key=NAME[&lease=10s]
//	rediss://...   (the same over TLS)
//
// What lives in Redis, for key NAME:
//
//	NAME           the string v itself (a plain Redis string: GET NAME shows it)
//	NAME:epoch     "EPOCH LENGTH SUM": an id that changes whenever v is begun
//	               afresh, and the length and checksum of v (see value.go)
//	NAME:servers   sorted set: one member per strsvr process, scored by the
//	               time its lease expires (Redis's own clock, in ms)
//	NAME:clients   hash: per strsvr process, "version:count" of its clients
//	NAME:group     the group's mark, "UNTIL GEN": present while
//	               NAME:servers and NAME:clients are whole; UNTIL is, after
//	               a loss of them, the Redis time (ms) until which an empty
//	               group is not trusted; GEN counts lease writes
//	NAME:changes   pub/sub channel: a message after every change of v or of a
//	               client count
//
// Every operation is one Lua script, so it is atomic in Redis and costs one
// round trip. An append is APPEND followed, inside the same script, by a read
// of v: no other server's append can come between the two, which is the
// tutorial's "reply with v right after the append" across the whole group.
//
// Appends from many clients of one process are batched: while one script is
// on the wire, the next clients' bytes queue up and go in the next script as
// one APPEND, each client getting v as it was right after its own bytes. A
// process keeps a copy of v and asks Redis only for the bytes it has not seen
// (GETRANGE from the length it knows), so the cost per letter in Redis does
// not grow with v. The copy is tied to NAME:epoch and checked against the
// checksum kept there: if v is deleted, flushed, lost in a restart or rolled
// back by a failover, the copy is dropped rather than trusted, the store
// logs it at WARN, and its answers carry a new generation
// (store.Generational), so a server can tell its clients v was reset.
//
// Nothing is retried blindly: an append that fails or times out is reported
// as an error (its byte may or may not be in v, and it is never acknowledged),
// because sending it again could store it twice. When Redis is lost the store
// says so once on its logger, fails operations at once instead of queueing
// them, and probes Redis with growing pauses until it answers again.
package redisstore

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/store"
)

// ErrUnavailable is wrapped by the errors of operations refused while Redis
// cannot be reached; the store keeps retrying in the background. A caller
// tells it with errors.Is.
var ErrUnavailable = errors.New("unavailable")

const (
	// defaultKey is the key of v when the URL names none.
	defaultKey = "tcplab:v"

	// defaultLease is how long a strsvr process's clients stay counted in
	// the group after its last heartbeat: a process that dies without saying
	// goodbye drops out of the count after at most this long.
	defaultLease = 10 * time.Second

	// opTimeout bounds one operation against Redis (a script round trip).
	opTimeout = 5 * time.Second

	// appendWorkers is how many append scripts one process keeps on the
	// wire at once. More than one hides a round trip; batching does the rest.
	appendWorkers = 4
	// maxBatch and maxBatchBytes cap one append script.
	maxBatch      = 512
	maxBatchBytes = 1 << 20

	// Reconnect probes wait minBackoff after a failure, doubling up to
	// maxBackoff.
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// Config is what Open reads from the URL. ParseURL is exported so a command
// can check a --store flag before connecting.
type Config struct {
	Options *redis.Options // go-redis options from the URL (retries turned off)
	Key     string         // key of v; "tcplab:v" when the URL names none
	Lease   time.Duration  // group lease; 10s when the URL names none
	Shown   string         // the URL without its password, for messages
}

// ParseURL parses redis://[[user]:password@]HOST[:PORT][/DB]?key=NAME&lease=D
// (rediss:// for TLS). Besides key and lease, the query may hold go-redis's
// own options (dial_timeout, pool_size, ...); max_retries is ignored because
// appends must never be retried blindly.
func ParseURL(raw string) (*Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid store URL: %v", cleanURLError(err))
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("invalid store URL %s: scheme must be redis:// or rediss://", u.Redacted())
	}
	shown := u.Redacted() // for messages: no password
	q := u.Query()
	cfg := &Config{Key: defaultKey, Lease: defaultLease, Shown: shown}
	if q.Has("key") {
		cfg.Key = q.Get("key")
		if cfg.Key == "" {
			return nil, fmt.Errorf("invalid store URL %s: empty key", shown)
		}
	}
	if q.Has("lease") {
		d, err := time.ParseDuration(q.Get("lease"))
		if err != nil || d < 300*time.Millisecond || d > time.Hour {
			return nil, fmt.Errorf("invalid store URL %s: lease must be a duration from 300ms to 1h, like 10s", shown)
		}
		cfg.Lease = d
	}
	q.Del("key")
	q.Del("lease")
	u.RawQuery = q.Encode()
	opt, err := redis.ParseURL(u.String())
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "redis: ")
		if strings.ContainsFunc(msg, unicode.IsControl) {
			// go-redis quotes the URL's decoded parts as they are: a
			// "%0A" in the path would break the one-line error.
			msg = strconv.Quote(msg)
		}
		return nil, fmt.Errorf("invalid store URL %s: %s", shown, msg)
	}
	// Retries belong to the store: go-redis would resend a script whose
	// reply was lost, which for an append could store the byte twice.
	opt.MaxRetries = -1
	opt.DialerRetries = 1
	opt.ContextTimeoutEnabled = true
	opt.DisableIdentity = true // CLIENT SETINFO: one round trip less per connection
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if opt.DialTimeout == 0 {
		opt.DialTimeout = 3 * time.Second
	}
	if opt.PoolSize == 0 {
		// Appends are batched, so a few connections carry any number of
		// clients; the rest serve Value, Clients and heartbeats.
		opt.PoolSize = 2 * appendWorkers
	}
	cfg.Options = opt
	return cfg, nil
}

// cleanURLError drops the URL (which may hold a password) from url.Parse's
// error.
func cleanURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Option adjusts Open.
type Option func(*Store)

// WithLogger sends the store's lifecycle messages (Redis lost, back again)
// to l. The default discards them.
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) { s.log = l }
}

// Store is a store.Store on Redis, shared by every process that opens the
// same key. It is safe for concurrent use.
//
// Its state is in named parts, each with its own lock (or none, where one
// goroutine owns it): see the doc comment of each type.
type Store struct {
	client *redis.Client
	addr   string // Redis's host:port, for messages
	names  names
	lease  time.Duration
	id     string // this process's member in the group
	log    *slog.Logger

	// ctx ends at Close; every goroutine and operation of the store
	// watches it, and wg waits for the goroutines.
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	dialer  dialer       // connects go-redis's pools
	health  health       // whether Redis can be reached
	feed    feed         // the change feed: the subscription and the watchers
	members membership   // this process's clients in the group
	leased  atomic.Bool  // our lease was written (and not left): see "After a loss"
	lostAt  atomic.Int64 // when the group's keys were last found lost (ns), to warn once
	gen     atomic.Int64 // the highest generation of the group's keys seen: see "After a loss"
	count   countCache   // the group's client count as last read
	local   localCopy    // this process's copy of v and its identity in Redis
	queue   chan *appendReq
	flight  inflight // appends not yet answered, for Flush

	// waitHook, if set (by tests), is called each time Clients waits for
	// the group to regroup before it trusts an empty count.
	waitHook func(wait time.Duration)
}

// names are the Redis names of one v (see the package comment).
type names struct {
	key     string   // v
	value   []string // v, epoch: the keys of the append and read scripts
	group   []string // servers, clients, mark: the keys of the lease scripts
	channel string   // the pub/sub channel of changes
}

func namesOf(key string) names {
	return names{
		key:     key,
		value:   []string{key, key + ":epoch"},
		group:   []string{key + ":servers", key + ":clients", key + ":group"},
		channel: key + ":changes",
	}
}

var _ store.Store = (*Store)(nil)

var quietRedis sync.Once

// Open connects to the Redis server named by rawURL and returns the store
// for its key. It fails with one clear line if Redis cannot be reached,
// refuses the password, or holds something other than a string at the key.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Store, error) {
	cfg, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return OpenConfig(ctx, cfg, opts...)
}

// OpenConfig is Open with the URL parsed already (ParseURL), for a caller
// that checks it first or sets what the URL must not carry, such as the
// password (Options.Password). cfg is the store's from then on.
func OpenConfig(ctx context.Context, cfg *Config, opts ...Option) (*Store, error) {
	// go-redis logs pool events on standard error by itself; the store
	// reports what matters once, on its own logger.
	quietRedis.Do(func() { redis.SetLogger(silentLogger{}) })

	s := &Store{
		addr:   cfg.Options.Addr,
		names:  namesOf(cfg.Key),
		lease:  cfg.Lease,
		id:     serverID(),
		log:    slog.New(slog.DiscardHandler),
		health: newHealth(),
		queue:  make(chan *appendReq, 4*maxBatch),
	}
	for _, o := range opts {
		o(s)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.dialer = dialer{tls: cfg.Options.TLSConfig, timeout: cfg.Options.DialTimeout, closed: s.ctx}
	cfg.Options.Dialer = s.dialer.dial
	s.client = redis.NewClient(cfg.Options)
	if err := s.check(ctx); err != nil {
		s.cancel()
		s.client.Close()
		return nil, err
	}
	for range appendWorkers {
		s.wg.Add(1)
		go s.appender()
	}
	s.wg.Add(3)
	go s.keeper()
	go s.listen()
	go s.refresher()
	return s, nil
}

// check makes sure Redis answers and that the key holds a string (or
// nothing yet), and warns when Redis would lose acknowledged bytes on a
// restart.
func (s *Store) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.client.Options().DialTimeout+opTimeout)
	defer cancel()
	if err := s.client.Ping(ctx).Err(); err != nil {
		return s.wrap("", err)
	}
	typ, err := s.client.Type(ctx, s.names.key).Result()
	if err != nil {
		return s.wrap("", err)
	}
	if typ != "string" && typ != "none" {
		return fmt.Errorf("redis %s: key %q holds a %s, not a string: choose another key=", s.addr, s.names.key, typ)
	}
	if err := s.checkACL(ctx); err != nil {
		return err
	}
	// CONFIG may be disabled (managed Redis); then there is nothing to say.
	if cfg, err := s.client.ConfigGet(ctx, "appendonly").Result(); err == nil && cfg["appendonly"] == "no" {
		s.log.Warn("redis has no append-only file: bytes acknowledged to clients are lost if Redis restarts (run it with --appendonly yes)", "redis", s.addr)
	}
	return nil
}

// aclScript returns the first command (with its key or channel) that the
// store's scripts run and the Redis ACL user may not, or "" if it may run
// them all. redis.acl_check_cmd (Redis 7) asks without running anything;
// an older Redis has no ACL selectors to check, and says "".
var aclScript = redis.NewScript(`
if not redis.acl_check_cmd then return '' end
-- The keys come as ARGV: EVALSHA itself refuses KEYS the user may not
-- touch, with a line that does not say which.
local v, epoch, servers, clients, ch, mark = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local need = {
  {'TIME'},
  {'STRLEN', v}, {'GET', v}, {'GETRANGE', v, '0', '-1'}, {'APPEND', v, 'x'},
  {'GET', epoch}, {'SET', epoch, 'x'},
  {'ZRANGEBYSCORE', servers, '-inf', '+inf'}, {'ZRANGE', servers, '0', '-1'},
  {'ZSCORE', servers, 'x'}, {'ZADD', servers, '0', 'x'}, {'ZREM', servers, 'x'},
  {'ZCARD', servers},
  {'HGET', clients, 'x'}, {'HSET', clients, 'x', 'x'}, {'HDEL', clients, 'x'},
  {'HLEN', clients},
  {'GET', mark}, {'SET', mark, 'x'},
  {'PUBLISH', ch, 'x'},
}
for _, c in ipairs(need) do
  if not redis.acl_check_cmd(unpack(c)) then
    if c[2] then return c[1] .. ' ' .. c[2] end
    return c[1]
  end
end
return ''
`)

// checkACL refuses a Redis ACL user that may not run what the store does:
// the store would otherwise start, and then fail every client.
func (s *Store) checkACL(ctx context.Context) error {
	denied, err := aclScript.Run(ctx, s.client, nil, s.names.value[0], s.names.value[1], s.names.group[0], s.names.group[1], s.names.channel, s.names.group[2]).Text()
	if err != nil {
		return s.wrap("", err)
	}
	if denied != "" {
		return fmt.Errorf("redis %s: the ACL user may not run %s, which strsvr needs (it runs EVALSHA scripts of TIME, STRLEN, GET, GETRANGE, APPEND, SET, ZRANGEBYSCORE, ZRANGE, ZSCORE, ZADD, ZREM, ZCARD, HGET, HSET, HDEL, HLEN and PUBLISH on the keys %s* and the channel %s, and SUBSCRIBEs to it)", s.addr, denied, s.names.key, s.names.channel)
	}
	return nil
}

// serverID names this process in the group: host and pid for a person
// reading the sorted set, random bytes so two Opens never collide.
func serverID() string {
	host, _ := os.Hostname()
	var r [6]byte
	rand.Read(r[:])
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(r[:]))
}

// wrap turns a go-redis error into one line that names Redis and, for a
// lost connection, the cause alone: "redis 127.0.0.1:6379: connect
// 127.0.0.1:6379: connection refused".
func (s *Store) wrap(op string, err error) error {
	if op != "" {
		op = " " + op
	}
	var oe *net.OpError
	if df := (*dialFailed)(nil); errors.As(err, &df) {
		err = df.err // the dial's own error, under what go-redis added
	}
	switch {
	case errors.Is(err, store.ErrClosed), errors.Is(err, ErrUnavailable):
		return err
	case errors.As(err, &oe) && oe.Op == "dial":
		return fmt.Errorf("redis%s: %w", op, endpoint.DialError(s.addr, err, s.client.Options().DialTimeout))
	case endpoint.IsTimeout(err):
		return fmt.Errorf("redis %s%s: timed out: %w", s.addr, op, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return fmt.Errorf("redis %s%s: connection lost: %w", s.addr, op, endpoint.Cause(err))
	}
	return fmt.Errorf("redis %s%s: %w", s.addr, op, endpoint.Cause(err))
}

// Close leaves the group (so this process's clients stop counting at once),
// stops every goroutine of the store and closes its connections. Pending
// operations fail with store.ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.usable() == nil {
			ctx, cancel := context.WithTimeout(s.ctx, time.Second)
			if err := s.pushLease(ctx, s.members.leave(), -1); err != nil {
				s.log.Warn("could not leave the group; its lease will expire", "redis", s.addr, "err", err)
			}
			cancel()
		}
		s.shutdown()
	})
	return nil
}

// shutdown stops the goroutines and closes the connections, without a word
// to the group: what a killed process does.
func (s *Store) shutdown() {
	s.cancel()
	if ps := s.feed.stop(); ps != nil {
		ps.Close()
	}
	s.wg.Wait()
	// No go-redis goroutine is left: its pool's own prober starts only
	// after failed dials, and our dialer hands it none (see dial).
	s.client.Close()
	s.feed.watchers.Close()
}

// dialer connects go-redis's pools to Redis (TCP, then TLS for rediss://)
// and gives up at once when closed ends. attempts counts the dials (for
// tests); it is an atomic because go-redis dials from its own goroutines.
type dialer struct {
	tls      *tls.Config
	timeout  time.Duration
	closed   context.Context // the store's: ends at Close
	attempts atomic.Int64    // dials tried, for tests
}

func (d *dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.attempts.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(d.closed, cancel)()
	nd := net.Dialer{Timeout: d.timeout, KeepAlive: 15 * time.Second}
	c, err := nd.DialContext(ctx, network, addr)
	if err == nil && d.tls != nil {
		tc := tls.Client(c, d.tls)
		if err = tc.HandshakeContext(ctx); err != nil {
			c.Close()
		} else {
			c = tc
		}
	}
	if err != nil {
		// Not an error to go-redis: its pool stops dialing after as many
		// failed dials as it has connections, fails every later dial at
		// once with the last error, and probes from a goroutine of its
		// own once a second; after an outage the store would then reach
		// Redis up to a second after it answered, and its watchers catch
		// up that much later. The store probes Redis itself (keeper), so
		// a failed dial is handed over as a connection that fails its
		// first write with the dial's error: the command fails with it,
		// the connection is dropped, and the next try dials again.
		return failedConn{&dialFailed{err}}, nil
	}
	return c, nil
}

// dialFailed is the error of a failedConn: the dial's, which wrap shows
// as a dial error whatever go-redis wraps around it.
type dialFailed struct{ err error }

func (e *dialFailed) Error() string { return e.err.Error() }
func (e *dialFailed) Unwrap() error { return e.err }

// failedConn is a dial that failed, as a connection whose reads and
// writes fail with the dial's error (see dial).
type failedConn struct{ err error }

func (c failedConn) Read([]byte) (int, error)         { return 0, c.err }
func (c failedConn) Write([]byte) (int, error)        { return 0, c.err }
func (c failedConn) Close() error                     { return nil }
func (c failedConn) LocalAddr() net.Addr              { return failedAddr{} }
func (c failedConn) RemoteAddr() net.Addr             { return failedAddr{} }
func (c failedConn) SetDeadline(time.Time) error      { return nil }
func (c failedConn) SetReadDeadline(time.Time) error  { return nil }
func (c failedConn) SetWriteDeadline(time.Time) error { return nil }

type failedAddr struct{}

func (failedAddr) Network() string { return "tcp" }
func (failedAddr) String() string  { return "(not connected)" }

// silentLogger drops go-redis's own log lines.
type silentLogger struct{}

func (silentLogger) Printf(context.Context, string, ...any) {}
