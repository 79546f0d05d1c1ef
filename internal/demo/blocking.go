package demo

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/tcplab/tcplab/multicopy"
)

// lessonBlocking is the tutorial's point (a) about tms and tmc: the client sits
// blocked in recv() until the server, waiting for a key press, sends.
// The demo presses the key itself, after a pause, and times everything.
var lessonBlocking = Lesson{
	Name:    "blocking",
	Title:   "the client blocks in a read until the server sends",
	Section: "2, 2.2",
	Run:     runBlocking,
}

// blockingObservations is what the blocking lesson measured. Times are
// offsets from the moment the client connected.
type blockingObservations struct {
	// Sent is when the client had sent its message and began to read.
	Sent time.Duration
	// ServerGotMessage is when the server had read the message and began
	// waiting for the go-ahead (tms.py's raw_input()).
	ServerGotMessage time.Duration
	// GoAhead is when the go-ahead was given.
	GoAhead time.Duration
	// FirstRead is when the client's first read returned, and EOF when it
	// read end of file.
	FirstRead, EOF time.Duration
	// Bytes is what the client received in all.
	Bytes int64
}

// Summary implements Observations.
func (o *blockingObservations) Summary() string {
	return fmt.Sprintf("the client's read waited %s and returned %s after the go-ahead",
		ms(o.FirstRead-o.Sent), ms(o.FirstRead-o.GoAhead))
}

// goAheadPause stands in for the person at the server's keyboard.
const goAheadPause = 500 * time.Millisecond

func runBlocking(ctx context.Context, w io.Writer, _ Options) (Observations, error) {
	ctx, cancel := context.WithTimeout(ctx, lessonTimeout)
	defer cancel()
	p := &page{w: w}
	obs := &blockingObservations{}

	p.tutorial("tms.py waits for a key press before it sends; meanwhile tmc's recv() blocks (section 2).")
	var (
		mu    sync.Mutex
		start time.Time
	)
	since := func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return time.Since(start)
	}
	srv := &multicopy.Server{GoAhead: func(ctx context.Context, msg []byte) error {
		got := since()
		select {
		case <-time.After(goAheadPause):
		case <-ctx.Done():
			return ctx.Err()
		}
		mu.Lock()
		obs.ServerGotMessage = got
		obs.GoAhead = time.Since(start)
		mu.Unlock()
		return nil
	}}
	addr, stop, err := startMulticopy(ctx, srv)
	if err != nil {
		return nil, err
	}
	defer stop()

	p.do("tmc sends \"abc\" to tms on %s; tms gets its go-ahead %s later (we press the key).", addr, ms(goAheadPause))
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tmc: %w", err)
	}
	defer conn.Close()
	mu.Lock()
	start = time.Now()
	mu.Unlock()
	var first time.Duration
	res, err := multicopy.Fetch(ctx, &sentConn{Conn: conn, sent: func() { obs.Sent = since() }}, []byte("abc"), func([]byte) {
		if first == 0 {
			first = since()
		}
	}, multicopy.FetchOptions{IdleTimeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("tmc: %w", err)
	}
	obs.EOF = since()
	obs.FirstRead = first
	obs.Bytes = res.Stats.Total()
	mu.Lock()
	defer mu.Unlock()
	if obs.GoAhead == 0 {
		return nil, fmt.Errorf("the server never took its go-ahead")
	}

	p.saw("%8s  client connected", ms(0))
	p.saw("%8s  client sent \"abc\" and called Read: blocked", ms(obs.Sent))
	p.saw("%8s  server has the message (50 ms of quiet ends it), waits for the key", ms(obs.ServerGotMessage))
	p.saw("%8s  go-ahead given; the server sends", ms(obs.GoAhead))
	p.saw("%8s  client's Read returned the first chunk", ms(obs.FirstRead))
	p.saw("%8s  client read end of file: %s in all", ms(obs.EOF), byteCount(obs.Bytes))
	p.note("a goroutine blocked in Read costs a parked goroutine, not a thread: the runtime's poller")
	p.note("wakes it when data comes. By hand: tcplab tms 2000 waits for Enter, as tms.py does.")
	return obs, p.err()
}

// sentConn calls sent after the first write, so the client's timeline
// marks the moment it starts to read.
type sentConn struct {
	net.Conn
	sent func()
	done bool
}

func (c *sentConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if !c.done {
		c.done = true
		c.sent()
	}
	return n, err
}
