package status

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/netlab"
)

// A request is at most 65 bytes, written at once by wps.py, nc and printf:
// one TCP segment, which the network delivers whole or not at all. Loss
// delays it but cannot cut it, so the quiet-gap rule (rule 4) needs no
// help from the socket here, unlike tms's message of many segments (see
// stream.EndWait). Checked on a real link at 20% loss each way.
func TestLabRequestIsWholeUnderLoss(t *testing.T) {
	l := netlab.ForTest(t)
	for _, h := range []*netlab.Host{l.A, l.B} {
		if err := h.SetLoss(0.2); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := l.B.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	allow := mustAllow(t, "w", "ps")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A name not on the list (so rule 2 cannot end it early) of 60 bytes.
	long := []byte(fmt.Sprintf("%-60s", "not-a-command"))
	for i := range 6 {
		raw := []byte("ps")
		if i%2 == 1 {
			raw = long
		}
		got := make(chan string, 1)
		go func() {
			ln.SetDeadline(time.Now().Add(30 * time.Second))
			c, err := ln.Accept()
			if err != nil {
				got <- "accept: " + err.Error()
				return
			}
			defer c.Close()
			req, err := readRequest(ctx, c, allow, 30*time.Second, DefaultQuietGap, time.Time{})
			if err != nil {
				got <- "read: " + err.Error()
				return
			}
			got <- string(req)
		}()
		c, err := l.A.Dial(ctx, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(raw); err != nil {
			t.Fatal(err)
		}
		if g := <-got; g != string(raw) {
			t.Errorf("run %d: the server read %q, want %q", i, g, raw)
		}
		c.Close()
	}
}
