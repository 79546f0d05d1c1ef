package storefaults

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/tcplab/tcplab/internal/procout"
	"github.com/tcplab/tcplab/sharedstring"
)

// The clients of the run, and what each was shown. Every client keeps
// only the last v it was shown on its connection: on one connection the
// v's shown only grow (framed frames only add bytes; the classic client
// takes a reply only if it extends the one before), so the last is a
// prefix of the group's v if and only if every one before it is.

// kind is what a client is.
type kind int

const (
	typist  kind = iota // framed strclnt typing letters (sharedstring.Client)
	classic             // the tutorial's protocol, typing letters
	watcher             // framed, watching (sharedstring.Client, Watch)
	binary              // the strclnt --watch binary, its stdout read line by line
	visitor             // framed, on the stopper: types a few letters and leaves
)

func (k kind) String() string {
	return [...]string{"typist", "classic", "watcher", "strclnt --watch", "visitor"}[k]
}

// shown is a client's record of what it was shown, on its current
// connection.
type shown struct {
	mu    sync.Mutex
	last  []byte    // the last v shown
	era   int       // the era it was shown in (see run.era)
	at    time.Time // when
	first time.Time // when the first v was shown on this connection: it was counted in the group then
	count int64     // v's shown on this connection
	told  string    // the 'e' frame's reason, once the server ended the connection
	gone  error     // why the connection ended otherwise
	up    bool      // connected: a watcher not yet connected is not silent on anything
	since time.Time // when it connected
	conn  int       // connections made so far
	wake  chan struct{}
}

// connected notes that the connection is made.
func (s *shown) connected() {
	s.mu.Lock()
	s.up, s.since = true, time.Now()
	s.mu.Unlock()
}

func newShown() *shown { return &shown{wake: make(chan struct{})} }

func (s *shown) record(v []byte, era int) {
	s.mu.Lock()
	s.last = bytes.Clone(v)
	s.era, s.at = era, time.Now()
	if s.count == 0 {
		s.first = s.at
	}
	s.count++
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
}

// ended records how the connection ended: told by the server (an 'e'
// frame, which strclnt prints as "ended the connection: ...") or gone.
func (s *shown) ended(err error) {
	s.mu.Lock()
	if msg := err.Error(); strings.Contains(msg, "ended the connection: ") {
		s.told = msg
	} else {
		s.gone = err
	}
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
}

// fresh forgets the last connection's record for a new connection.
func (s *shown) fresh() {
	s.mu.Lock()
	s.last, s.era, s.count, s.told, s.gone, s.up, s.first = nil, 0, 0, "", nil, false, time.Time{}
	s.conn++
	s.mu.Unlock()
}

type snapshot struct {
	last  []byte
	era   int
	at    time.Time
	count int64
	told  string
	gone  error
	up    bool
	since time.Time
	first time.Time
	conn  int
	wake  <-chan struct{}
}

func (s *shown) get() snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return snapshot{s.last, s.era, s.at, s.count, s.told, s.gone, s.up, s.since, s.first, s.conn, s.wake}
}

// client is one client of the run, reconnecting after its connection ends
// until the run stops it.
type client struct {
	name   string
	kind   kind
	server *strsvr
	rec    *shown
	r      *run
	rng    *rand.Rand
}

// loop runs the client until ctx ends.
func (c *client) loop(ctx context.Context) {
	for ctx.Err() == nil {
		c.rec.fresh()
		var err error
		switch c.kind {
		case typist, classic:
			err = c.type_(ctx)
		case watcher:
			err = c.watch(ctx)
		case binary:
			err = c.watchBinary(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		c.rec.ended(err)
		c.r.closed(c)
		c.r.count.add(c.kind.String() + " connections ended")
		if c.rec.get().told != "" {
			c.r.told.Add(1)
		}
		// Reconnect once the server takes clients again (it refuses
		// them while Redis is away).
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(50+c.rng.IntN(200)) * time.Millisecond):
		}
	}
}

func (c *client) dial(ctx context.Context, opts sharedstring.Options) (*sharedstring.Client, error) {
	opts.DialTimeout = 5 * time.Second
	// A letter is answered or refused within the 5 s a store gives a
	// script; a classic client waits out this long a reply shorter than
	// the one before (v lost with Redis), which it cannot take for one.
	opts.ReplyTimeout = 7 * time.Second
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return sharedstring.Dial(dctx, "127.0.0.1", c.server.port, opts)
}

// type_ types letters while the run lets it (typing), each answered with
// v, which it records.
func (c *client) type_(ctx context.Context) error {
	mode := sharedstring.Framed
	if c.kind == classic {
		mode = sharedstring.Classic
	}
	cl, err := c.dial(ctx, sharedstring.Options{Mode: mode})
	if err != nil {
		return err
	}
	defer cl.Close()
	stop := context.AfterFunc(ctx, func() { cl.Close() })
	defer stop()
	for {
		if err := c.r.mayType(ctx); err != nil {
			return err
		}
		n := 1
		if c.kind == typist {
			n = 1 + c.rng.IntN(3)
		}
		letters := make([]byte, n)
		for i := range letters {
			letters[i] = 'a' + byte(c.rng.IntN(26))
		}
		era := c.r.currentEra()
		v, err := cl.Send(letters)
		c.r.typed()
		if err != nil {
			return err
		}
		if !bytes.HasSuffix(v, letters[len(letters)-1:]) {
			c.r.fail("%s was answered %d bytes not ending with its letter %q", c.name, len(v), letters[len(letters)-1])
		}
		c.rec.record(v, era)
		c.r.letters.Add(int64(n))
		c.r.shownCount.Add(1)
		// A person's pace, and v kept to a size whose every copy the
		// checker can hold.
		time.Sleep(time.Duration(5+c.rng.IntN(25)) * time.Millisecond)
	}
}

// watch is a watcher: it records every v the server sends.
func (c *client) watch(ctx context.Context) error {
	cl, err := c.dial(ctx, sharedstring.Options{Mode: sharedstring.Framed, Watch: true})
	if err != nil {
		return err
	}
	c.rec.connected()
	defer cl.Close()
	stop := context.AfterFunc(ctx, func() { cl.Close() })
	defer stop()
	for {
		_, v, err := cl.Next()
		if err != nil {
			return err
		}
		c.rec.record(v, c.r.currentEra())
		c.r.shownCount.Add(1)
	}
}

// watchBinary runs strclnt --watch and records each line it prints. It
// must end only told: exit 1 with one line, the server's reason.
func (c *client) watchBinary(ctx context.Context) error {
	cmd := exec.Command(c.r.cfg.Binary, "strclnt", "--watch", "--framed", "127.0.0.1", c.server.port)
	stdin, err := cmd.StdinPipe() // held open: the end of input would not end it anyway
	if err != nil {
		return err
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr procout.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	c.rec.connected() // or about to be: strclnt says so if it cannot
	stop := context.AfterFunc(ctx, func() { cmd.Process.Kill() })
	defer stop()
	br := bufio.NewReaderSize(stdout, 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			io.Copy(io.Discard, br)
			break
		}
		c.rec.record(bytes.TrimSuffix(line, []byte("\n")), c.r.currentEra())
		c.r.shownCount.Add(1)
	}
	werr := cmd.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	msg := strings.TrimSpace(stderr.String())
	code := cmd.ProcessState.ExitCode()
	switch {
	case code == 1 && strings.Count(msg, "\n") == 0 && strings.Contains(msg, "ended the connection: "):
		return fmt.Errorf("%s", msg)
	case code == 1 && strings.Count(msg, "\n") == 0 && strings.HasPrefix(msg, "tcplab strclnt: "):
		return fmt.Errorf("strclnt exited 1: %s", msg) // not told (a refused dial, a lost connection)
	}
	c.r.fail("%s exited %d (%v) with %q: not one line and status 1", c.name, code, werr, msg)
	return fmt.Errorf("strclnt exited %d", code)
}

// visit is the visitor's loop: it connects to the stopper (the strsvr
// without --keep), types one to three letters and leaves, again and
// again, so that the stopper's own count keeps falling to 0 and it asks
// whether the whole group is empty. While the stopper is down (it stopped,
// and is being started again) it waits.
func (c *client) visit(ctx context.Context) {
	for ctx.Err() == nil {
		s := c.r.c.currentStopper()
		if s != nil {
			c.visitOnce(ctx, s)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(20+c.rng.IntN(80)) * time.Millisecond):
		}
	}
}

func (c *client) visitOnce(ctx context.Context, s *strsvr) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cl, err := sharedstring.Dial(dctx, "127.0.0.1", s.port, sharedstring.Options{Mode: sharedstring.Framed, DialTimeout: 5 * time.Second, ReplyTimeout: 7 * time.Second})
	if err != nil {
		return // stopped, or refusing clients while Redis is away
	}
	defer cl.Close()
	stop := context.AfterFunc(ctx, func() { cl.Close() })
	defer stop()
	for range 1 + c.rng.IntN(3) {
		if err := c.r.mayType(ctx); err != nil {
			return
		}
		letter := []byte{'a' + byte(c.rng.IntN(26))}
		v, err := cl.Send(letter)
		c.r.typed()
		if err != nil {
			return
		}
		if !bytes.HasSuffix(v, letter) {
			c.r.fail("%s was answered %d bytes not ending with its letter %q", c.name, len(v), letter)
		}
		c.r.letters.Add(1)
		c.r.shownCount.Add(1)
	}
}
