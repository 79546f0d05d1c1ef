package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"time"

	"github.com/lesismal/nbio"
	nbiolog "github.com/lesismal/nbio/logging"

	"github.com/tcplab/tcplab/multicopy"
)

// lessonLibraries is section 7: the tutorial points past raw sockets to
// libraries, Twisted above all. The same multicopy client (tmc) written
// three ways against the same tms: a raw net.Conn loop, io.Copy, and an
// event-loop library in Twisted's style (github.com/lesismal/nbio:
// callbacks on open, on data, on close, run by the library's poller).
var lessonLibraries = Lesson{
	Name:    "libraries",
	Title:   "one client three ways: a Read loop, io.Copy, an event loop (Twisted's way)",
	Section: "7",
	Run:     runLibraries,
}

// librariesObservations is what the lesson measured, per client.
type librariesObservations struct {
	Expected int64
	Clients  []libraryClient
}

// libraryClient is one way of writing tmc.
type libraryClient struct {
	Name string
	// Received is the bytes it got; Exact says each copy was the message
	// (multicopy.Verifier).
	Received int64
	Exact    bool
	// Calls is what our code saw: Read calls in the raw loop, io.Copy
	// calls, data callbacks of the event loop. Reads is the Read calls
	// made on the socket on our behalf, where we can count them.
	Calls, Reads int
	Elapsed      time.Duration
}

// Summary implements Observations.
func (o *librariesObservations) Summary() string {
	s := fmt.Sprintf("%s each way:", byteCount(o.Expected))
	for _, c := range o.Clients {
		exact := "exact"
		if !c.Exact {
			exact = "NOT exact"
		}
		s += fmt.Sprintf(" %s %s in %s;", c.Name, exact, count(c.Calls, c.unit()))
	}
	return s[:len(s)-1]
}

func (c libraryClient) unit() string {
	switch c.Name {
	case "io.Copy":
		return "call"
	case "nbio":
		return "callback"
	}
	return "read"
}

// librariesMessage ends in a newline, which tells tms the message is
// whole (each client could half-close instead, but nbio's Conn cannot).
const librariesMessage = "abc\n"

// librariesCopies makes 400 kB: enough to come in several reads even on
// loopback.
const librariesCopies = 100_000

func runLibraries(ctx context.Context, w io.Writer, _ Options) (Observations, error) {
	ctx, cancel := context.WithTimeout(ctx, lessonTimeout)
	defer cancel()
	p := &page{w: w}
	obs := &librariesObservations{Expected: int64(len(librariesMessage)) * librariesCopies}
	p.tutorial("Python has libraries for FTP, HTML and more; a popular higher-level one is Twisted (section 7).")
	addr, stop, err := startMulticopy(ctx, &multicopy.Server{Copies: librariesCopies})
	if err != nil {
		return nil, err
	}
	defer stop()
	p.do("the same client three times against tms on %s: send %q, read %s of copies to the end.",
		addr, librariesMessage, byteCount(obs.Expected))
	p.do("  1. a Read loop:  for { n, err := conn.Read(buf); ...; if err == io.EOF { break } }   (tmc.py's loop)")
	p.do("  2. io.Copy:      n, err := io.Copy(dst, conn)   (err is nil at the end: EOF is how it stops)")
	p.do("  3. an event loop (nbio, Twisted's way): engine.OnOpen(...), engine.OnData(func(c, data) {...}),")
	p.do("     engine.OnClose(...): the library's poller reads the socket and calls us.")
	for _, run := range []func(context.Context, string) (libraryClient, error){readLoopClient, ioCopyClient, eventLoopClient} {
		c, err := run(ctx, addr)
		if err != nil {
			return nil, err
		}
		obs.Clients = append(obs.Clients, c)
	}
	hides := map[string]string{
		"Read loop": "hides nothing: the buffer, the loop and the end of file are ours",
		"io.Copy":   "hides the buffer, the loop and io.EOF",
		"nbio":      "hides the reads, the poller (epoll) and the goroutine; we write callbacks",
	}
	for _, c := range obs.Clients {
		exact := "every copy exact"
		if !c.Exact {
			exact = "NOT whole copies"
		}
		how := fmt.Sprintf("%s in our code", count(c.Calls, c.unit()))
		if c.Name == "io.Copy" {
			how = fmt.Sprintf("1 call, which made %s", count(c.Reads, "read"))
		}
		if c.Name == "nbio" {
			how += ", called from nbio's poller goroutine"
		}
		p.saw("%-10s %s, %s, in %s: %s.", c.Name+":", byteCount(c.Received), exact, ms(c.Elapsed), how)
		p.saw("           It %s.", hides[c.Name])
	}
	p.note("Go's standard library is most of what the tutorial lists: net/http, net/smtp, net/mail,")
	p.note("html/template, encoding/*; FTP is not (github.com/jlaffaye/ftp). Twisted's reactor is Go's")
	p.note("runtime: goroutines blocked in Read are parked on its epoll, so the plain loop already scales")
	p.note("(tcplab demo poll); an event-loop library such as nbio or gnet saves memory per connection.")
	return obs, p.err()
}

// readLoopClient is tmc.py's client: a loop on Read until io.EOF.
func readLoopClient(ctx context.Context, addr string) (libraryClient, error) {
	c := libraryClient{Name: "Read loop"}
	start := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return c, fmt.Errorf("read loop: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(librariesMessage)); err != nil {
		return c, fmt.Errorf("read loop: %w", err)
	}
	v := newLibrariesVerifier()
	buf := make([]byte, 64<<10)
	for {
		n, err := conn.Read(buf)
		c.Calls++
		v.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return c, fmt.Errorf("read loop: %w", err)
		}
	}
	c.Reads, c.Received, c.Elapsed = c.Calls, v.Total(), time.Since(start)
	c.Exact = v.Err() == nil
	return c, nil
}

// countingReader counts the Read calls made on r.
type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

// ioCopyClient lets io.Copy do the loop.
func ioCopyClient(ctx context.Context, addr string) (libraryClient, error) {
	c := libraryClient{Name: "io.Copy", Calls: 1}
	start := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return c, fmt.Errorf("io.Copy: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(librariesMessage)); err != nil {
		return c, fmt.Errorf("io.Copy: %w", err)
	}
	v := newLibrariesVerifier()
	src := &countingReader{r: conn} // only to count what io.Copy hides
	if _, err := io.Copy(v, src); err != nil {
		return c, fmt.Errorf("io.Copy: %w", err)
	}
	c.Reads, c.Received, c.Elapsed = src.reads, v.Total(), time.Since(start)
	c.Exact = v.Err() == nil
	return c, nil
}

var quietNbio sync.Once

// eventLoopClient is the client as callbacks on nbio's event loop, the
// shape of a Twisted Protocol: connectionMade, dataReceived,
// connectionLost.
func eventLoopClient(ctx context.Context, addr string) (libraryClient, error) {
	c := libraryClient{Name: "nbio"}
	start := time.Now()
	quietNbio.Do(func() { nbiolog.SetLevel(nbiolog.LevelNone) }) // it logs its start to stdout
	engine := tmcEngine()
	v := newLibrariesVerifier()
	var mu sync.Mutex
	closed := make(chan error, 1)
	engine.OnData(func(_ *nbio.Conn, data []byte) { // dataReceived
		mu.Lock()
		c.Calls++
		v.Write(data)
		mu.Unlock()
	})
	engine.OnClose(func(_ *nbio.Conn, err error) { closed <- err }) // connectionLost
	// The callbacks run on nbio's goroutines until engine.Stop, which is
	// deferred: an early return copies c under the lock.
	snapshot := func() libraryClient {
		mu.Lock()
		defer mu.Unlock()
		return c
	}
	if err := engine.Start(); err != nil {
		return c, fmt.Errorf("nbio: %w", err)
	}
	defer engine.Stop()
	conn, err := nbio.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return c, fmt.Errorf("nbio: %w", err)
	}
	if _, err := engine.AddConn(conn); err != nil {
		conn.Close()
		return c, fmt.Errorf("nbio: %w", err)
	}
	if _, err := conn.Write([]byte(librariesMessage)); err != nil {
		conn.Close()
		return snapshot(), fmt.Errorf("nbio: %w", err)
	}
	select {
	case err := <-closed:
		if err != nil && !errors.Is(err, io.EOF) {
			return snapshot(), fmt.Errorf("nbio: %w", err)
		}
	case <-ctx.Done():
		conn.Close()
		return snapshot(), ctx.Err()
	case <-time.After(10 * time.Second):
		conn.Close()
		return snapshot(), errors.New("nbio: no end of the answer in 10 s")
	}
	mu.Lock()
	defer mu.Unlock()
	c.Reads, c.Received, c.Elapsed = c.Calls, v.Total(), time.Since(start)
	c.Exact = v.Err() == nil
	return c, nil
}

// newLibrariesVerifier checks an answer copy by copy, and that all the
// copies came.
func newLibrariesVerifier() *multicopy.Verifier {
	v := multicopy.NewVerifier([]byte(librariesMessage))
	v.ExpectCopies(librariesCopies)
	return v
}

// tmcEngine is the event loop the nbio client runs on: one poller.
//
// nbio closes a connection whose peer has sent its FIN as soon as it has
// made MaxConnReadTimesPerEventLoop reads (3 of 64 KiB by default) in one
// wake-up, dropping what it had not read: an answer that was all queued
// with its FIN lost its end (324,608 bytes of 400,000, 4 runs in 50).
// Reading until a short read empties the socket (the FIN comes after the
// last byte) keeps it all: section 5.3's tail end, in a library.
func tmcEngine() *nbio.Engine {
	return nbio.NewEngine(nbio.Config{Name: "tmc", NPoller: 1, MaxConnReadTimesPerEventLoop: math.MaxInt32})
}
