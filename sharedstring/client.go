package sharedstring

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/internal/tcpsock"
	"github.com/tcplab/tcplab/stream"
)

// Mode chooses how a Client talks to the server.
type Mode int

const (
	// Auto probes for a tcplab server and uses framed mode if one answers,
	// classic otherwise (the tutorial's Python strsvr).
	Auto Mode = iota
	// Classic never probes: the tutorial's protocol, byte for byte.
	Classic
	// Framed skips the probe and requires a tcplab server.
	Framed
)

// Client defaults.
const (
	DefaultProbeTimeout = 300 * time.Millisecond
	DefaultReplyTimeout = 30 * time.Second
	// DefaultQuiet is the least a classic client waits for more bytes of
	// a reply that already looks whole; on a real link it waits longer,
	// in proportion to the link (see Client.Send).
	DefaultQuiet = 20 * time.Millisecond
)

// Options configures Dial. The zero value is Auto mode with the defaults.
type Options struct {
	Mode         Mode
	Watch        bool          // ask for 'w' frames (framed mode only)
	DialTimeout  time.Duration // zero: no limit beyond the kernel's
	ProbeTimeout time.Duration // zero: DefaultProbeTimeout
	ReplyTimeout time.Duration // zero: DefaultReplyTimeout
	Quiet        time.Duration // zero: DefaultQuiet
	MaxValue     int           // zero: DefaultMaxValue
}

// Validate names the first field of o that is out of range. The reply
// and probe timeouts cannot be none: a client always ends.
func (o Options) Validate() error {
	switch {
	case o.Mode == Classic && o.Watch:
		return server.Invalid("{Watch} needs framed mode, not {Mode} Classic")
	case o.ReplyTimeout < 0:
		return server.Invalid("{ReplyTimeout} must be positive, not %s", o.ReplyTimeout)
	case o.ProbeTimeout < 0:
		return server.Invalid("{ProbeTimeout} must be positive, not %s", o.ProbeTimeout)
	case o.MaxValue < 0:
		return server.Invalid("{MaxValue} must be at least 1, not %d", o.MaxValue)
	}
	return nil
}

// Client is one strclnt connection. Its methods are for one goroutine,
// except that Close may be called from any goroutine to end a blocked Next.
type Client struct {
	conn   net.Conn
	br     *bufio.Reader
	framed bool
	opts   Options
	v      []byte // framed: our copy of v; classic: the last reply
	tmp    []byte

	needHello bool // framed: the server's 'h' frame is still to be read
	shown     bool // classic: a reply has been taken as whole
	// doubtful (classic): the last reply was taken as whole after the
	// full-segment wait, the one place a stall can cut it without a sign
	// in its content; lastLetter is the letter it answered.
	doubtful   bool
	lastLetter byte
	pending    string // what Send is waiting on replies for: "the letter(s)"
}

// Dial connects to the server at host:port and, in Auto mode, finds out
// whether it is a tcplab server (see the package comment), then says hello
// if so.
func Dial(ctx context.Context, host, port string, opts Options) (*Client, error) {
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = DefaultProbeTimeout
	}
	if opts.ReplyTimeout <= 0 {
		opts.ReplyTimeout = DefaultReplyTimeout
	}
	if opts.Quiet <= 0 {
		opts.Quiet = DefaultQuiet
	}
	if opts.MaxValue <= 0 {
		opts.MaxValue = DefaultMaxValue
	}
	conn, err := endpoint.Dial(ctx, host, port, opts.DialTimeout)
	if err != nil {
		return nil, err
	}
	c := &Client{conn: conn, opts: opts}
	switch opts.Mode {
	case Framed:
		c.framed = true
	case Auto:
		c.framed = Probe(ctx, conn.RemoteAddr(), opts.ProbeTimeout)
	}
	if opts.Watch && !c.framed {
		conn.Close()
		return nil, fmt.Errorf("--watch needs a tcplab strsvr at %s (framed mode), and none answered the discovery probe", conn.RemoteAddr())
	}
	if c.framed {
		if err := c.hello(); err != nil {
			conn.Close()
			return nil, err
		}
		if err := c.readEarlyHello(); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return c, nil
}

// readEarlyHello reads the server's answer to the hello if it comes within
// the probe timeout: a server that refuses the connection (it is full, or
// has its fill of watchers) says so at once, and the user must hear it
// then, not after typing a letter. A server that answers nobody yet
// (--clients N still gathering) is left to answer with the first reply.
func (c *Client) readEarlyHello() error {
	c.conn.SetReadDeadline(time.Now().Add(c.opts.ProbeTimeout))
	_, err := c.br.Peek(1)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	if err != nil {
		return c.readError(err)
	}
	c.conn.SetReadDeadline(time.Now().Add(c.opts.ReplyTimeout))
	return c.readHello()
}

// Framed reports whether the connection is in framed mode.
func (c *Client) Framed() bool { return c.framed }

// Close closes the connection: to the server, the client leaves.
func (c *Client) Close() error { return c.conn.Close() }

// hello sends the framed-mode hello. The server's 'h' frame is read with
// the first reply, not here: a server started with --clients N answers
// nobody until N clients are there, and the prompt must not wait for that.
func (c *Client) hello() error {
	flags := byte(0)
	if c.opts.Watch {
		flags |= FlagWatch
	}
	c.conn.SetWriteDeadline(time.Now().Add(c.opts.ReplyTimeout))
	if _, err := c.conn.Write(Hello(flags)); err != nil {
		return fmt.Errorf("send hello: %w", endpoint.Cause(err))
	}
	c.br = bufio.NewReaderSize(c.conn, 64<<10)
	c.needHello = true
	return nil
}

// Probe asks, over UDP to addr's IP and port, whether a tcplab strsvr
// serves there. It answers false on any doubt: no answer within timeout,
// a port unreachable (immediate on loopback), or a wrong answer.
// Exported for another client of the protocol; Dial probes by itself.
func Probe(ctx context.Context, addr net.Addr, timeout time.Duration) bool {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return false
	}
	pc, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: ta.IP, Port: ta.Port, Zone: ta.Zone})
	if err != nil {
		return false
	}
	defer pc.Close()
	var nonce [8]byte
	rand.Read(nonce[:])
	want := probe(nonce, true)
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	// Two tries: a datagram can be lost; the second goes at half time.
	buf := make([]byte, 64)
	for try := range 2 {
		if _, err := pc.Write(probe(nonce, false)); err != nil {
			return false
		}
		end := deadline
		if try == 0 {
			end = time.Now().Add(time.Until(deadline) / 2)
		}
		pc.SetReadDeadline(end)
		for {
			n, err := pc.Read(buf)
			if err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					return false
				}
				break // timeout: try again or give up
			}
			if bytes.Equal(buf[:n], want) {
				return true
			}
		}
	}
	return false
}

// Send sends letters and returns v as it was right after the last of them
// was appended. The slice stays valid; it must not be modified.
//
// In framed mode the letters go in one write and the replies are frames:
// exact. In classic mode no reply says where it ends, so the letters go
// one at a time, each waiting for its reply, and a reply counts as whole
// when it extends the previous one, is at least one byte longer, ends with
// the letter sent, and no more bytes come for a while measured on the
// link (see quietFor; at least Options.Quiet). A stall longer than that
// still cuts a reply; its rest then arrives before the next reply or the
// server's close, and Send or Leave fails saying the reply was longer than
// shown. The tutorial's client assumed the whole reply would come in one
// recv(1024).
func (c *Client) Send(letters []byte) ([]byte, error) {
	if len(letters) == 0 {
		return c.v, nil
	}
	c.pending = "the letter"
	if len(letters) > 1 {
		c.pending = "the letters"
	}
	if !c.framed {
		for _, b := range letters {
			if err := c.classicLetter(b); err != nil {
				return nil, err
			}
		}
		return c.v, nil
	}
	if err := c.Write(letters); err != nil {
		return nil, err
	}
	var last []byte
	for replies := 0; replies < len(letters); {
		c.conn.SetReadDeadline(time.Now().Add(c.opts.ReplyTimeout))
		kind, v, err := c.next()
		if err != nil {
			return nil, err
		}
		if kind == KindReply {
			replies++
			last = v
		}
	}
	return last, nil
}

// Write sends letters without waiting for the replies (framed mode, for a
// watcher that reads them with Next).
func (c *Client) Write(letters []byte) error {
	c.conn.SetWriteDeadline(time.Now().Add(c.opts.ReplyTimeout))
	if _, err := c.conn.Write(letters); err != nil {
		return fmt.Errorf("send: %w", endpoint.Cause(err))
	}
	return nil
}

// Next waits, without a time limit, for the next frame (framed mode) and
// returns its kind (KindReply or KindUpdate) and the v it reports.
func (c *Client) Next() (kind byte, v []byte, err error) {
	if !c.framed {
		return 0, nil, errors.New("Next needs framed mode")
	}
	c.conn.SetReadDeadline(time.Time{})
	return c.next()
}

// readHello reads the server's first frame: 'h', or 'e' with the reason
// it refuses the connection.
func (c *Client) readHello() error {
	kind, n, v, err := ReadFrame(c.br, nil, c.opts.MaxValue)
	if err == nil && kind == KindError {
		return fmt.Errorf("server at %s refused the connection: %s", c.conn.RemoteAddr(), printable(v))
	}
	if err != nil || kind != KindHello || n != 0 || len(v) != 0 {
		if err != nil && !errors.Is(err, ErrProtocol) {
			return c.readError(err)
		}
		return fmt.Errorf("server at %s did not accept framed mode (not a tcplab strsvr?)", c.conn.RemoteAddr())
	}
	c.needHello = false
	return nil
}

func (c *Client) next() (byte, []byte, error) {
	if c.needHello {
		if err := c.readHello(); err != nil {
			return 0, nil, err
		}
	}
	kind, n, v, err := ReadFrame(c.br, c.v, c.opts.MaxValue)
	if err != nil {
		c.v = v
		return 0, nil, c.readError(err)
	}
	switch kind {
	case KindHello:
		c.v = v
		return 0, nil, fmt.Errorf("%w: a second hello frame", ErrProtocol)
	case KindError:
		// The server ends the connection and says why (letters it could
		// not store, a v that was reset).
		return 0, nil, fmt.Errorf("server at %s ended the connection: %s", c.conn.RemoteAddr(), printable(v[len(c.v):]))
	}
	c.v = v
	return kind, c.v[:n:n], nil
}

// printable is a reason sent by the server, made safe for a terminal:
// anything but printable ASCII becomes '?'.
func printable(b []byte) string {
	r := make([]byte, len(b))
	for i, x := range b {
		if x < ' ' || x > '~' {
			x = '?'
		}
		r[i] = x
	}
	return string(r)
}

func (c *Client) readError(err error) error {
	switch {
	case isEOF(err):
		return errors.New("server closed the connection")
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The letters went out: the server may have appended them and
		// its reply be late, not lost. Giving up must not read as "your
		// letter was not added".
		if c.pending == "" {
			return fmt.Errorf("no reply within %s", c.opts.ReplyTimeout)
		}
		return fmt.Errorf("no reply within %s (%s may still have been added)", c.opts.ReplyTimeout, c.pending)
	}
	return endpoint.Cause(err)
}

// classicLetter sends one letter and reads its reply (see Send).
func (c *Client) classicLetter(b byte) error {
	if c.tmp == nil {
		c.tmp = make([]byte, 64<<10)
	}
	// Bytes that come before the letter is sent are the rest of the
	// reply shown last: say so, never take them as part of this one.
	if err := c.checkNothingPending(); err != nil {
		return err
	}
	c.conn.SetWriteDeadline(time.Now().Add(c.opts.ReplyTimeout))
	if _, err := c.conn.Write([]byte{b}); err != nil {
		return fmt.Errorf("send: %w", endpoint.Cause(err))
	}
	prev := c.v
	// A fresh buffer: replies handed out earlier stay valid.
	r := make([]byte, 0, len(prev)+64)
	whole := func() bool {
		return len(r) > len(prev) && r[len(r)-1] == b
	}
	sent := time.Now()
	deadline := sent.Add(c.opts.ReplyTimeout)
	var pace replyPace
	pace.start(sent)
	fullWait := false // the wait now running is the full-segment one
	for {
		if whole() {
			var q time.Duration
			q, fullWait = c.quietFor(&pace)
			c.conn.SetReadDeadline(earliest(time.Now().Add(q), deadline))
		} else {
			fullWait = false
			c.conn.SetReadDeadline(deadline)
		}
		n, err := c.conn.Read(c.tmp)
		if n > 0 {
			pace.add(n, time.Now())
		}
		if len(r)+n > c.opts.MaxValue {
			return fmt.Errorf("reply longer than %d bytes", c.opts.MaxValue)
		}
		r = append(r, c.tmp[:n]...)
		if len(r) >= len(prev) && !bytes.HasPrefix(r, prev) {
			if len(prev) > 0 {
				// The likely cause on a real link: the last reply was
				// cut by a stall longer than the wait, and its rest came
				// first. Or the server does not speak the protocol.
				return errors.New("the server's reply was longer than shown, or the classic stream is out of step: the next reply does not begin with it")
			}
			return errors.New("reply does not extend the previous one: the classic stream is out of step")
		}
		if err != nil {
			// A whole reply is the reply, also when the server closes
			// right after it: v is anyone's typing and may itself read
			// "busy: ...", so only a reply that is not whole (that does
			// not end with the letter) can be a refusal.
			if (errors.Is(err, os.ErrDeadlineExceeded) || isEOF(err)) && whole() {
				// Only a wait that ran out can have cut the reply: the
				// server's close comes after all it sent.
				fullWait = fullWait && !isEOF(err)
				break
			}
			if len(prev) == 0 {
				// The first answer on the connection may be a full
				// server's refusal line instead of a v.
				if line, ok := server.IsBusyLine(r); ok && isEOF(err) {
					return fmt.Errorf("server at %s refused the connection: %s", c.conn.RemoteAddr(), line)
				}
			}
			return c.readError(err)
		}
	}
	if c.doubtful && mayHoldRest(prev, r, c.lastLetter) {
		return errors.New("the server's reply may have been longer than shown: the last one was taken as whole after a stall, and v repeats itself, so this one may hold its rest; framed mode (--framed, with a tcplab strsvr) can tell")
	}
	c.v = r
	c.shown = true
	c.doubtful = fullWait
	c.lastLetter = b
	return nil
}

// mayHoldRest reports whether r, read as the reply to the letter after
// prev (a reply taken as whole, which answered the letter last), may
// instead be the rest of a cut prev followed by the next reply: r = t + n
// where t is not empty and ends with last (prev + t is the server's real
// reply, which ended with the letter it answered) and n, the real next
// reply, begins with prev + t and is longer. When v repeats itself such a
// split exists and content cannot tell it from one reply r (another
// client may have typed the extra letters). When it does not, r can only
// be one reply, and prev was whole after all.
//
// With z[i] the length of the longest common prefix of s and s[i:], a
// split after tl bytes needs prev at r[tl:] (z of prev+r at len(prev)+tl
// at least len(prev)) and r[:tl] again right after it (z of r at
// len(prev)+tl at least tl): linear in len(r).
func mayHoldRest(prev, r []byte, last byte) bool {
	k := len(prev)
	if len(r) < k+3 {
		return false // the shortest split: one byte of rest, one letter more
	}
	zp := zArray(append(append(make([]byte, 0, k+len(r)), prev...), r...))
	zr := zArray(r)
	for tl := 1; k+2*tl < len(r); tl++ {
		if r[tl-1] == last && zp[k+tl] >= k && zr[k+tl] >= tl {
			return true
		}
	}
	return false
}

// zArray is the Z-function of s: z[i] is the length of the longest common
// prefix of s and s[i:] (z[0] is len(s)).
func zArray(s []byte) []int {
	z := make([]int, len(s))
	if len(s) == 0 {
		return z
	}
	z[0] = len(s)
	for i, l, r := 1, 0, 0; i < len(s); i++ {
		if i < r {
			z[i] = min(r-i, z[i-l])
		}
		for i+z[i] < len(s) && s[z[i]] == s[i+z[i]] {
			z[i]++
		}
		if i+z[i] > r {
			l, r = i, i+z[i]
		}
	}
	return z
}

// replyPace is how the bytes of one classic reply have come so far.
type replyPace struct {
	sent, last time.Time
	bytes      int
	maxGap     time.Duration // the longest wait between two reads, after the first
	reads      int
}

func (p *replyPace) start(sent time.Time) { *p = replyPace{sent: sent, last: sent} }

func (p *replyPace) add(n int, at time.Time) {
	if p.reads > 0 {
		p.maxGap = max(p.maxGap, at.Sub(p.last))
	}
	p.reads++
	p.bytes += n
	p.last = at
}

// quietFor is how long a classic reply that looks whole (it extends the
// last one and ends with the letter) is given for more bytes to come
// before it is taken as whole. The tutorial's protocol marks no end, so
// this is a guess, made from what the socket and the reply so far tell:
//
//   - data queued behind a gap (a segment lost, its successors in): more
//     is certainly coming, so no end before the reply timeout;
//   - a reply that ends on a full-size segment: the server writes a reply
//     in one call, which TCP cuts into full segments and a shorter last
//     one, so the sender was most likely cut off mid-reply (a stall, a
//     blackout, a lost segment with nothing after it); waited for up to
//     fullSegmentWait (3 s), or four retransmission timeouts if longer;
//   - otherwise (a short last segment: how a reply ends) twice the round
//     trip and three times the longest pause between the reply's
//     segments so far, so that a slow link's next segment is waited for;
//     at least Options.Quiet.
//
// Without TCP statistics (not a TCP connection) it is Options.Quiet. A
// reply cut anyway (a stall longer than the wait) is found afterwards:
// its rest arrives before the next reply or before the server's close
// (Leave), and the client says so instead of going on.
//
// full says the wait is the full-segment one: a reply taken as whole when
// it runs out may still have been cut (see mayHoldRest).
func (c *Client) quietFor(p *replyPace) (q time.Duration, full bool) {
	st, err := tcpsock.ReadStats(c.conn)
	if err != nil {
		return c.opts.Quiet, false
	}
	if st.OutOfOrderQueued {
		return c.opts.ReplyTimeout, false
	}
	q = max(c.opts.Quiet, 2*st.RTT, 3*p.maxGap)
	// The server cuts at its MSS, which on a path the same both ways is
	// the one this side sends with. Not RcvMSS: the kernel's estimate of
	// it is the largest segment seen so far, so on loopback (MSS 65,483)
	// every reply longer than the ones before would look full.
	if mss := st.SndMSS; mss > 0 && p.bytes%mss == 0 {
		q = max(q, fullSegmentWait, 4*st.RTO)
		full = true
	}
	return min(q, c.opts.ReplyTimeout), full
}

// fullSegmentWait is the least a classic client waits for more of a reply
// whose bytes so far fill whole segments (see quietFor).
const fullSegmentWait = 3 * time.Second

// checkNothingPending fails if bytes have arrived since the last reply was
// taken as whole: they are the rest of it.
func (c *Client) checkNothingPending() error {
	st, err := tcpsock.ReadStats(c.conn)
	if err != nil || !c.shown || (st.Readable == 0 && !st.OutOfOrderQueued) {
		return nil
	}
	c.conn.SetReadDeadline(time.Now().Add(c.opts.Quiet))
	n, _ := c.conn.Read(c.tmp)
	if n > 0 {
		return c.longerThanShown(n)
	}
	return nil // end of file, or nothing yet: the send or the read says
}

func (c *Client) longerThanShown(n int) error {
	return fmt.Errorf("the server's reply was longer than shown: %d more bytes of it came after it was taken as whole", n)
}

// Leave ends the connection as the tutorial's client does (to the server,
// the client leaves). In classic mode it first checks that the last reply
// taken as whole was whole: it half-closes, so the server ends the
// connection after its last reply, and bytes that come before that end
// are the rest of a reply shown cut; Leave then says so. It waits for the
// server's end for up to the reply timeout, bounded to a few seconds; a
// server that does not close by then is left as it is. Leave closes the
// connection in every case.
func (c *Client) Leave() error {
	defer c.conn.Close()
	if c.framed || !c.shown {
		return nil
	}
	if err := stream.CloseWrite(c.conn); err != nil {
		return nil // the server is gone: nothing more can come
	}
	wait := 2 * time.Second
	if st, err := tcpsock.ReadStats(c.conn); err == nil {
		wait = max(wait, 4*st.RTO)
	}
	c.conn.SetReadDeadline(time.Now().Add(min(wait, c.opts.ReplyTimeout)))
	extra := 0
	for {
		n, err := c.conn.Read(c.tmp)
		extra += n
		if err != nil {
			break
		}
	}
	if extra > 0 {
		return c.longerThanShown(extra)
	}
	return nil
}

// earliest is the earlier of two times.
func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
