package fleet

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"

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
	// begins like a refusal but is not one, so it comes out whole, before
	// the answer ends (the handler never closes: the test ends the client
	// once it has the answer).
	const answer = "busy: not a refusal, for it goes on\nsecond line\n"
	first := &waitWriter{want: answer, seen: make(chan struct{})}
	firstCtx, stopFirst := context.WithCancel(context.Background())
	defer stopFirst()
	firstDone := make(chan error, 1)
	go func() {
		_, err := Ask(firstCtx, host, port, "w", first, Options{Timeout: -1, MaxAnswer: -1})
		firstDone <- err
	}()
	<-held
	var out bytes.Buffer
	_, err = Ask(context.Background(), host, port, "w", &out, Options{Timeout: -1, MaxAnswer: -1})
	want := "server at " + ln.Addr().String() + " refused the connection: busy: max number of clients reached (1); try again later"
	if err == nil || err.Error() != want || out.Len() != 0 {
		t.Fatalf("Ask at a full server: %v, wrote %q; want %q", err, out.String(), want)
	}
	select {
	case <-first.seen:
	case err := <-firstDone:
		t.Fatalf("first client ended (%v) with %q, want %q", err, first.String(), answer)
	}
	stopFirst()
	<-firstDone
	if got := first.String(); got != answer {
		t.Fatalf("first answer: %q", got)
	}
}

// waitWriter keeps what is written to it and closes seen once that is
// want.
type waitWriter struct {
	mu   sync.Mutex
	b    bytes.Buffer
	want string
	seen chan struct{}
}

func (w *waitWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if w.b.String() == w.want {
		close(w.seen)
	}
	return len(p), nil
}

func (w *waitWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
