package multicopy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// raceConn is one end of a pipe whose first read deadline is set only
// after ctx has ended and Fetch's stop (the past deadline) has landed:
// the order a Ctrl-C can take between idleReader's check of ctx and its
// fresh deadline. CI's TestEndingsTMC/SIGINT_with_a_silent_peer hung for
// 15 s on it.
type raceConn struct {
	net.Conn
	cancel  context.CancelFunc
	stopped chan struct{} // closed when the past deadline was set
	once    sync.Once
}

func (c *raceConn) SetDeadline(t time.Time) error {
	err := c.Conn.SetDeadline(t)
	if t.Before(time.Now()) {
		c.once.Do(func() { close(c.stopped) })
	}
	return err
}

func (c *raceConn) SetReadDeadline(t time.Time) error {
	if t.After(time.Now()) {
		c.cancel()
		<-c.stopped // the stop has moved the deadline to the past
	}
	return c.Conn.SetReadDeadline(t)
}

func TestFetchStopsWhenCanceledAsItRenewsTheDeadline(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	go io.Copy(io.Discard, server) // takes the message; never answers
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn := &raceConn{Conn: client, cancel: cancel, stopped: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := Fetch(ctx, conn, []byte("abc"), func([]byte) {}, FetchOptions{IdleTimeout: time.Hour})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Fetch: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second): // the bug waits out the hour
		t.Fatal("Fetch still reading 10s after its context ended")
	}
	client.Close()
}
