package fleet

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/server"
)

// Ask at a full server returns the refusal as its error and writes
// nothing; an answer that only begins like one is written whole.
func TestAskReportsARefusal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan struct{})
	srv := &server.Server{MaxConns: 1, Refuse: server.RefuseLine, Handler: server.HandlerFunc(func(ctx context.Context, c net.Conn) {
		if _, err := c.Read(make([]byte, 16)); err != nil {
			return
		}
		c.Write([]byte("busy: not a refusal, for it goes on\nsecond line\n"))
		close(held)
		<-ctx.Done()
	})}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		if err := <-done; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	}()
	host, port, _ := net.SplitHostPort(ln.Addr().String())

	// The first client is served, and holds the only slot; what it gets
	// begins like a refusal but is not one, so it comes out whole.
	var first bytes.Buffer
	firstDone := make(chan error, 1)
	go func() {
		_, err := Ask(context.Background(), host, port, "w", 300*time.Millisecond, &first, 0)
		firstDone <- err
	}()
	<-held
	var out bytes.Buffer
	_, err = Ask(context.Background(), host, port, "w", 5*time.Second, &out, 0)
	want := "server at " + ln.Addr().String() + " refused the connection: busy: max number of clients reached (1); try again later"
	if err == nil || err.Error() != want || out.Len() != 0 {
		t.Fatalf("Ask at a full server: %v, wrote %q; want %q", err, out.String(), want)
	}
	<-firstDone // timed out: the handler never closes
	if got := first.String(); got != "busy: not a refusal, for it goes on\nsecond line\n" {
		t.Fatalf("first answer: %q", got)
	}
}
