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
	l := netlab.ForTest(t)
	ln, err := l.B.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	srv := &sharedstring.Server{Store: store.NewMemoryFrom(initial), Keep: true}
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
	return c
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
