package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// lessonSendall shows what a write guarantees: one send(2) may take only part of
// the data, the tutorial's loop (and Python's sendall) takes it all, and Go's
// Write is that loop; the only short write Go shows is one cut off by an
// error, here a write deadline against a reader that does not read.
var lessonSendall = Lesson{
	Name:    "sendall",
	Title:   "send() may take part of the data; Go's Write is sendall",
	Section: "3.1, 4",
	Run:     runSendall,
}

// sendallObservations is what the sendall lesson measured.
type sendallObservations struct {
	// Size is how many bytes each write offered.
	Size int
	// SendBuffer is the writer's SO_SNDBUF as the kernel reports it.
	SendBuffer int
	// OneSend is what a single send(2) accepted of Size bytes, on a socket
	// whose peer was not reading yet (the socket is nonblocking, as every
	// socket under Go's runtime is).
	OneSend int
	// LoopSends are the byte counts of each send(2) in the tutorial's
	// "while len(w) > 0" loop over Size bytes, with the peer reading.
	LoopSends []int
	// WriteN and WriteErr are what one conn.Write of Size bytes returned,
	// with the peer reading: all of it, nil.
	WriteN   int
	WriteErr error
	// ShortN and ShortErr are what conn.Write returned with a write
	// deadline and a peer that never reads: fewer bytes, and
	// os.ErrDeadlineExceeded.
	ShortN   int
	ShortErr error
}

// Summary implements Observations.
func (o *sendallObservations) Summary() string {
	return fmt.Sprintf("one send() took %s of %s; the loop took %d send() calls; Write took all; with a deadline, Write stopped at %s: %s",
		byteCount(int64(o.OneSend)), byteCount(int64(o.Size)), len(o.LoopSends), byteCount(int64(o.ShortN)), errText(o.ShortErr))
}

// sendallSize is large enough to overflow loopback's socket buffers (a few
// MiB at most by default), small enough to copy in a few milliseconds.
const sendallSize = 16 << 20

func runSendall(ctx context.Context, w io.Writer, _ Options) (Observations, error) {
	ctx, cancel := context.WithTimeout(ctx, lessonTimeout)
	defer cancel()
	p := &page{w: w}
	obs := &sendallObservations{Size: sendallSize}
	data := make([]byte, sendallSize)

	p.tutorial("send() returns once part of the data is in the OS buffer; the count may be short, so loop")
	p.tutorial("(\"while len(w) > 0\"), or call sendall(), which loops for you (section 4).")

	// 1. Write with a deadline, the peer never reading: Go's only short write.
	client, server, err := tcpPair(ctx)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	defer server.Close()
	raw, err := client.SyscallConn()
	if err != nil {
		return nil, err
	}
	var sockErr error
	if err := raw.Control(func(fd uintptr) {
		obs.SendBuffer, sockErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	}); err != nil || sockErr != nil {
		return nil, fmt.Errorf("SO_SNDBUF: %w", errors.Join(err, sockErr))
	}
	client.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	obs.ShortN, obs.ShortErr = client.Write(data)
	p.do("conn.Write(%s) with a 200 ms write deadline to a peer that never reads (send buffer %s).",
		byteCount(sendallSize), byteCount(int64(obs.SendBuffer)))
	p.saw("Write returned %s and %q: short, and with an error saying why.",
		byteCount(int64(obs.ShortN)), errText(obs.ShortErr))
	client.Close()
	server.Close()

	// 2. The tutorial's loop by hand: the first send(2) before the peer
	// reads, the rest while it reads.
	client, server, err = tcpPair(ctx)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	defer server.Close()
	drained := make(chan error, 1)
	reading := false
	startReader := func() {
		reading = true
		go func() {
			_, err := io.Copy(io.Discard, server)
			drained <- err
		}()
	}
	if obs.LoopSends, err = sendLoop(client, data, startReader); err != nil {
		if reading {
			server.Close()
			<-drained
		}
		return nil, fmt.Errorf("send loop: %w", err)
	}
	obs.OneSend = obs.LoopSends[0]
	p.do("the tutorial's loop on the raw socket: send(2) the rest until nothing is left; the peer")
	p.do("starts reading after the first send.")
	p.saw("the first send() accepted %s of %s and returned: the short count the tutorial warns of.",
		byteCount(int64(obs.OneSend)), byteCount(sendallSize))
	p.saw("the loop took %d send() calls in all.", len(obs.LoopSends))

	// 3. One Write, the peer reading.
	client.SetWriteDeadline(time.Now().Add(10 * time.Second))
	obs.WriteN, obs.WriteErr = client.Write(data)
	p.do("one conn.Write(%s), the peer reading.", byteCount(sendallSize))
	p.saw("Write returned %s, %s: it ran the loop itself.", byteCount(int64(obs.WriteN)), errText(obs.WriteErr))
	client.CloseWrite()
	select {
	case err := <-drained:
		if err != nil {
			return nil, fmt.Errorf("reader: %w", err)
		}
	case <-ctx.Done():
		server.Close()
		<-drained
		return nil, ctx.Err()
	}

	p.note("Write is sendall: it returns n < len(p) only with an error. What Go leaves to you is how long to wait;")
	p.note("tcplab's stream.WriteAll keeps a deadline that moves on while the reader makes progress.")
	return obs, p.err()
}

// sendLoop is the tutorial's loop, one send(2) per turn, on the raw socket:
//
//	while(len(w) > 0):
//	    ns = s.send(w)
//	    w = w[ns:]
//
// When the socket buffer is full it waits on Go's poller (the raw
// callback returns false on EAGAIN) instead of spinning. afterFirst runs
// once the first send has returned. It returns the count each send accepted.
func sendLoop(c *net.TCPConn, w []byte, afterFirst func()) ([]int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var counts []int
	for len(w) > 0 {
		var ns int
		var serr error
		err := raw.Write(func(fd uintptr) bool {
			ns, serr = unix.Write(int(fd), w)
			return serr != unix.EAGAIN // EAGAIN: wait until writable, then call again
		})
		if err == nil {
			err = serr
		}
		if err != nil {
			return counts, err
		}
		counts = append(counts, ns)
		w = w[ns:]
		if len(counts) == 1 {
			afterFirst()
		}
	}
	return counts, nil
}
