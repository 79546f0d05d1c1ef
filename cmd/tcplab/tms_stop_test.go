package main

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Finding 4 of issue 18: plain tms (one client, as tms.py) could not be
// stopped in the middle of a transfer: two Ctrl-Cs a second apart were
// ignored, with nothing logged, until the transfer ended. And a client
// that left while tms waited for Enter was served anyway: "transfer done",
// exit 0, the prompt still waiting. Each case failed before the fix
// (TCPLAB_TEST_BINARY=a build of the code before runs them against it).

// slowReader connects to tms, sends msg and reads the answer slowly, so
// that a transfer of many copies lasts as long as the test needs. It
// returns the connection and a channel that yields how the reading ended.
func slowReader(t *testing.T, port, msg string) (net.Conn, <-chan error) {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	first := make(chan struct{})
	go func() {
		buf := make([]byte, 1024)
		for i := 0; ; i++ {
			_, err := c.Read(buf)
			if i == 0 {
				close(first)
			}
			if err != nil {
				ended <- err
				return
			}
			time.Sleep(10 * time.Millisecond) // a slow reader: the pace is the point
		}
	}()
	select {
	case <-first:
	case <-time.After(eventWait):
		t.Fatal("no answer from tms")
	}
	return c, ended
}

// readEnd waits for the reader to end and says whether it was a reset.
func readEnd(t *testing.T, ended <-chan error) error {
	t.Helper()
	select {
	case err := <-ended:
		return err
	case <-time.After(eventWait):
		t.Fatalf("the client was still reading %s later", eventWait)
		return nil
	}
}

func TestTMSStopsWhenAsked(t *testing.T) {
	t.Run("two SIGINTs mid-transfer: the second resets at once", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "tms", "--no-wait", "--grace", "1h", "--copies", "1000000000", "0")
		_, ended := slowReader(t, srv.port(t), "abc\n")
		srv.signal(t, syscall.SIGINT)
		srv.waitOut(t, `msg="shutting down"`)
		srv.signal(t, syscall.SIGINT)
		expectEnd(t, srv, exitInterrupted, `(?m)msg="second signal; closed remaining connections"`)
		if err := readEnd(t, ended); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the client's read ended with %v, want a reset", err)
		}
	})
	t.Run("one SIGTERM mid-transfer: reset when --grace is over", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "tms", "--no-wait", "--grace", "300ms", "--copies", "1000000000", "0")
		_, ended := slowReader(t, srv.port(t), "abc\n")
		srv.signal(t, syscall.SIGTERM)
		expectEnd(t, srv, exitTerminated, `(?m)msg="grace period over; closed remaining connections"`)
		if err := readEnd(t, ended); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the client's read ended with %v, want a reset", err)
		}
	})
	t.Run("SIGINT mid-transfer that ends within --grace", func(t *testing.T) {
		// 40 MB: more than the kernel's buffers on loopback hold (about
		// 10 MB), so the transfer is still in flight when the signal
		// comes; the client reads nothing more until tms has taken it.
		srv := startCmd(t, captured, captured, "tms", "--no-wait", "--grace", "1h", "--copies", "10000000", "0")
		c, err := net.Dial("tcp", "127.0.0.1:"+srv.port(t))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("abc\n"))
		var one [1]byte
		if _, err := io.ReadFull(c, one[:]); err != nil {
			t.Fatal(err)
		}
		srv.signal(t, syscall.SIGINT)
		srv.waitOut(t, `msg="shutting down"`)
		n, err := io.Copy(io.Discard, c)
		if err != nil || n != 40_000_000-1 {
			t.Errorf("read %d more bytes, %v: want the rest of the answer and its end", n, err)
		}
		expectEnd(t, srv, exitInterrupted, `(?m)msg="transfer done"`)
	})
	t.Run("the client leaves while tms waits for Enter", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "tms", "0")
		c, err := net.Dial("tcp", "127.0.0.1:"+srv.port(t))
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("abc")) // tmc.py: no terminator, no half-close
		srv.waitOut(t, "press Enter")
		c.Close() // it left, as a tmc.py killed at its prompt
		// No Enter is typed: tms notices by itself.
		expectEnd(t, srv, exitFailed, `^tcplab tms: the client left before the go-ahead: 127\.0\.0\.1:\d+ closed the connection$`)
		if strings.Contains(srv.stderr.String(), "transfer done") {
			t.Errorf("a client that left was logged as served: %q", srv.stderr.String())
		}
	})
	t.Run("a client that half-closed leaves at the go-ahead", func(t *testing.T) {
		// tcplab tmc half-closes after its string, so its leaving shows
		// only when the answer reaches a closed socket.
		srv := startCmd(t, captured, captured, "tms", "0")
		c, err := net.Dial("tcp", "127.0.0.1:"+srv.port(t))
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("abc"))
		c.(*net.TCPConn).CloseWrite()
		srv.waitOut(t, "press Enter")
		c.Close()
		srv.stdin.Write([]byte("\n"))
		expectEnd(t, srv, exitFailed, `^tcplab tms: .*(the client left|connection reset by peer|broken pipe)`)
		if strings.Contains(srv.stderr.String(), "transfer done") {
			t.Errorf("a client that left was logged as served: %q", srv.stderr.String())
		}
	})
}
