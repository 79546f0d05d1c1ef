package multicopy

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/server"
)

// A full server reads at most 64 KiB of a refused client's string, sends
// its busy line and resets. A client whose string is longer (tms takes up
// to 1,000,000 bytes) then fails to send or half-close; the busy line is
// already in its receive buffer all the same, and Fetch must hand it on so
// that tmc can say "refused" instead of "half-close: ... transport
// endpoint is not connected". Before, tmc with a 70,000-byte string at a
// full tms said the latter in 24 of 40 runs.
func TestFetchHandsOnARefusalAfterAFailedSend(t *testing.T) {
	release := make(chan struct{})
	s := &server.Server{MaxConns: 1, Refuse: server.RefuseLine, Handler: server.HandlerFunc(func(ctx context.Context, c net.Conn) {
		select {
		case <-release:
		case <-ctx.Done():
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan struct{}, 1)
	s.ConnState = func(_ net.Conn, state server.ConnState) {
		if state == server.StateNew {
			select {
			case held <- struct{}{}:
			default:
			}
		}
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	defer func() { close(release); s.Close(); <-served }()
	hold, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the held connection was never served")
	}

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var got bytes.Buffer
	// 8 MB cannot fit in the socket buffers: the send fails for sure.
	_, err = Fetch(context.Background(), conn, bytes.Repeat([]byte("a"), 8<<20), func(c []byte) { got.Write(c) }, FetchOptions{IdleTimeout: 10 * time.Second})
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Line != strings.TrimSuffix(server.BusyLine("max number of clients reached (1)"), "\n") || got.Len() != 0 {
		t.Fatalf("Fetch failed with %v and handed on %q; want a RefusedError with the busy line and nothing handed on", err, got.String())
	}
}
