package sharedstring_test

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/netlab"
	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/sharedstring"
	"github.com/tcplab/tcplab/store"
)

// labClassic serves a strsvr whose v starts as initial in side B of a new
// lab link (TCP only: no discovery, as behind a firewall that blocks UDP),
// sets the fault up, and returns a client dialled from side A in mode.
func labClassic(t *testing.T, initial []byte, mode sharedstring.Mode, fault func(l *netlab.Link) error) *sharedstring.Client {
	t.Helper()
	c, _, _ := labClassicOn(t, store.NewMemoryFrom(initial), mode, fault)
	return c
}

// labClassicOn is labClassic with the server's store given, and the link
// and the store returned: a test can fault the link later, and follow v.
func labClassicOn(t *testing.T, st store.Store, mode sharedstring.Mode, fault func(l *netlab.Link) error) (*sharedstring.Client, *netlab.Link, store.Store) {
	t.Helper()
	l := netlab.ForTest(t)
	ln, err := l.B.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	srv := &sharedstring.Server{Store: st, Keep: true}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		srv.Run(ctx, &server.Server{}, ln, nil)
	}()
	t.Cleanup(func() {
		cancel()
		<-ended
		srv.Store.Close()
	})
	if err := fault(l); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	var c *sharedstring.Client
	err = l.A.Do(func() error {
		var err error
		c, err = sharedstring.Dial(context.Background(), l.B.Addr.String(), port, sharedstring.Options{Mode: mode})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Framed() {
		t.Fatal("framed mode, with no discovery answering")
	}
	t.Cleanup(func() { c.Close() })
	return c, l, st
}

// A classic reply longer than one segment, over a slow or lossy
// downlink, is never passed off as whole when cut. v is all 'a' and the
// letter is 'a', so every cut of a reply looks like a reply: only the
// timing and the socket can tell. Before the fix (a fixed 20 ms quiet
// gap) the 200 kbit/s case got a cut v on the first letter, every run
// (a 1448-byte segment takes 58 ms there).
func TestLabClassicReplyIsNeverCut(t *testing.T) {
	faults := map[string]func(l *netlab.Link) error{
		"200kbit-downlink": func(l *netlab.Link) error { return l.B.SetRate(200_000, time.Second) },
		"loss20": func(l *netlab.Link) error {
			if err := l.A.SetLoss(0.2); err != nil {
				return err
			}
			return l.B.SetLoss(0.2)
		},
	}
	for _, mode := range []sharedstring.Mode{sharedstring.Classic, sharedstring.Auto} {
		for name, fault := range faults {
			if mode == sharedstring.Auto {
				// The default mode, where the discovery probe finds no
				// answer: a TCP-only firewall makes every client classic.
				name = "default-mode/" + name
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				classicNeverCut(t, strings.HasSuffix(name, "loss20"), labClassic(t, bytes.Repeat([]byte("a"), 20_000), mode, fault))
			})
		}
	}
}

// classicNeverCut sends the letter 'a' three times on c, whose v is
// 20,000 'a', and leaves: every reply must be exact, or (on a lossy link)
// the client must fail honestly, never with a reply shown cut.
func classicNeverCut(t *testing.T, lossy bool, c *sharedstring.Client) {
	const initial = 20_000
	var got [][]byte
	var err error
	for range 3 {
		var v []byte
		if v, err = c.Send([]byte("a")); err != nil {
			break
		}
		got = append(got, v)
	}
	if err == nil {
		err = c.Leave()
	}
	if err != nil {
		// At 20% loss each way a reply can take longer than the reply
		// timeout: an honest failure, said so. Over the slow link
		// nothing is lost: there it must be exact.
		if lossy && !strings.Contains(err.Error(), "was longer than shown") {
			t.Logf("honest failure: %v", err)
			return
		}
		t.Fatalf("after %d replies: %v", len(got), err)
	}
	for i, v := range got {
		if want := initial + i + 1; len(v) != want || bytes.Count(v, []byte("a")) != want {
			t.Errorf("reply %d: %d bytes, want %d", i+1, len(v), want)
		}
	}
}

// Issue 18, the nemesis's long budget: after a two-way blackout that
// swallowed a reply, a classic session went on at one letter in 8 s or
// more, each reply waited for as though the link still took seconds, and
// twenty letters outlasted the checker's 90 s. The client's smoothed RTT
// came from the blackout (the reply that got through at last echoed the
// timestamp of the letter sent before it, seconds earlier), and a client
// that sends one byte a letter takes a sample a letter: it stayed seconds
// long for tens of letters. The wait for more of a reply must follow the
// link as it is now, so once the link is back each letter is answered at
// the link's pace (milliseconds here), not the blackout's.
func TestLabClassicSessionAfterBlackoutKeepsPace(t *testing.T) {
	const letters = 10
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := store.NewMemoryFrom(bytes.Repeat([]byte("a"), 20_000))
	changes, err := st.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, l, _ := labClassicOn(t, st, sharedstring.Classic, func(*netlab.Link) error { return nil })
	if _, err := c.Send([]byte("a")); err != nil {
		t.Fatal(err)
	}
	for len(changes) > 0 { // the first letter's change
		<-changes
	}
	// The reply to the next letter is lost: the server's side goes dark
	// before the letter is sent, the client's as soon as the server has
	// it, so that no retransmission of it reaches the server either.
	if err := l.B.SetDark(true); err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		_, err := c.Send([]byte("a"))
		sent <- err
	}()
	for {
		v, err := st.Value(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) == 20_002 {
			break
		}
		select {
		case <-changes:
		case err := <-sent:
			t.Fatalf("the letter was answered through a dark link: %v", err)
		}
	}
	if err := l.Partition(true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // the blackout is the point
	if err := l.Partition(false); err != nil {
		t.Fatal(err)
	}
	if err := l.B.SetDark(false); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("the reply across the blackout: %v", err)
	}
	start := time.Now()
	var took []time.Duration
	for range letters {
		t0 := time.Now()
		v, err := c.Send([]byte("a"))
		if err != nil {
			t.Fatal(err)
		}
		took = append(took, time.Since(t0).Round(time.Millisecond))
		if want := 20_002 + len(took); len(v) != want {
			t.Fatalf("v is %d bytes, want %d", len(v), want)
		}
	}
	// A clean veth answers a letter in milliseconds; the bound (200 ms
	// a letter) is wide for a loaded machine, and far below what the
	// letters took before the fix (8.4 s for the ten: 1.4 s for the
	// first, 0.4 s for the tenth).
	if total := time.Since(start); total > letters*200*time.Millisecond {
		t.Errorf("%d letters on a link that was back took %s (each: %v): the wait for the end of each reply follows the blackout, not the link", letters, total.Round(time.Millisecond), took)
	} else {
		t.Logf("%d letters after the blackout in %s (each: %v)", letters, total.Round(time.Millisecond), took)
	}
	if err := c.Leave(); err != nil {
		t.Fatal(err)
	}
}
