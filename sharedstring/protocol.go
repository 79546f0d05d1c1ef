// Package sharedstring is the tutorial's third pair (section 6, strsvr.py
// and strclnt.py): clients send letters, the server appends every byte any
// client sends to one shared string v and answers each byte with v as it is
// right after that append.
//
// The tutorial's server accepts exactly two clients, then spins round-robin
// over nonblocking sockets at 100% CPU. This one serves any number of
// clients, each in its own goroutine blocked in the kernel until it has
// something to do, so an idle server uses no CPU; the store (package store)
// orders the appends.
//
// Server is the protocol as a server.Handler, and a server.Finisher whose
// Done says when the tutorial's server would print v and exit; Server.Run
// is strsvr's whole life, discovery and final v included. Client.Session
// is strclnt's.
//
// # Classic wire format (the tutorial's, unchanged)
//
// Client to server: bytes. Every byte is a letter, NUL and 0xFF included;
// none is special. Closing the connection is leaving.
//
// Server to client: for every byte received, in order, the whole of v right
// after that byte was appended, with nothing before or after it. A client
// that sends "abc" in one write gets three replies, back to back. Nothing
// marks where one reply ends, which is why the tutorial's client assumes a
// reply comes in one recv(1024); a classic client can only guess the end
// (Client does so with care: see Client.Send).
//
// # Framed mode (tcplab on both ends)
//
// A tcplab client and a tcplab server agree on framed replies, in which v
// always arrives whole, without changing a byte of the classic protocol.
// The client cannot simply greet the server in-band: the tutorial's server
// would append the greeting to v. So it first asks out of band.
//
// Discovery, over UDP on the server's port number (to the exact address the
// TCP connection reached), one datagram each way:
//
//	probe   (client → server, 24 bytes)  0xFF "tcplab-strsvr?" '1' nonce[8]
//	answer  (server → client, 24 bytes)  0xFF "tcplab-strsvr!" '1' nonce[8]
//
// The answer echoes the probe's random nonce and is no larger than the
// probe, so the server cannot be used to amplify traffic. No answer within
// the probe timeout (or an ICMP port unreachable, which on loopback arrives
// at once) means a classic server: the client then speaks classic.
//
// Hello, the first 16 bytes on the TCP connection, sent only after an
// answer:
//
//	0xFF "tcplab-strsvr" '1' flags     flags: 0x00, or 0x01 = watch
//
// The server treats the first bytes of a connection as a hello only if they
// match it exactly. A first byte other than 0xFF (which never occurs in
// UTF-8 text) is a letter at once; a classic client whose first byte is 0xFF
// waits at most HelloWait before its bytes are taken as letters. Bytes after
// the hello are letters, as in classic mode.
//
// Server to client in framed mode, frames only:
//
//	offset 0   1 byte             kind: 'h' hello accepted (first frame),
//	                              'r' the reply to one of your bytes,
//	                              'w' v changed (watch connections only),
//	                              'e' the server ends the connection
//	                              (always the last frame)
//	offset 1   uint64 big-endian  n, the length of the v this frame reports
//	offset 9   uint32 big-endian  d, the length of the data that follows
//	offset 13  d bytes            data
//
// v only grows, so the server sends each client only what it has not sent
// it yet: the client appends the data to its copy of v, and the v the frame
// reports is the first n bytes of that copy (n may be less than the copy's
// length when a watch update already carried later bytes). The client
// refuses a frame whose n exceeds its copy, and a copy larger than its
// limit, so every length it reads is bounded. The 'h' frame has n = d = 0.
// A client gets exactly one 'r' frame per byte it sent, in order.
//
// An 'e' frame comes instead of the 'h' frame when the server will not
// serve the connection (a watcher over the server's cap of watchers), and
// after it when the server cannot go on: letters it could not store (a full
// disk, a store that failed, v at its size limit: none of those letters is
// in v and none gets an 'r' frame), or a v that the store lost and began
// again, of which the client's copy is no prefix. n is 0, the data is a
// one-line reason in text, at most MaxErrorLen bytes, and the server then
// closes the connection.
package sharedstring

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// The framed protocol's constants (the wire format is in the package doc).
// With Hello, ReadFrame and Probe they are exported for another
// implementation of the protocol; tcplab's own client and server are this
// package's Client and Server.
const (
	magic = "\xfftcplab-strsvr" // 14 bytes
	// ProtocolVersion is the version byte of probe, answer and hello.
	ProtocolVersion = '1'
	// HelloLen is the length of the framed-mode hello.
	HelloLen = len(magic) + 2
	// ProbeLen is the length of a discovery probe and of its answer.
	ProbeLen = len(magic) + 2 + 8
	// FrameHeaderLen is the length of a frame header: kind, n, d.
	FrameHeaderLen = 13

	// FlagWatch in the hello asks for 'w' frames whenever v changes.
	FlagWatch = 0x01

	// Frame kinds.
	KindHello  = 'h'
	KindReply  = 'r'
	KindUpdate = 'w'
	KindError  = 'e'

	// MaxErrorLen bounds the reason an 'e' frame carries.
	MaxErrorLen = 256
)

// HelloWait bounds how long the server waits for the rest of a hello after
// a first byte of 0xFF. Exported as part of the framed protocol: another
// client must send its whole hello within it.
const HelloWait = time.Second

// DefaultMaxValue bounds v (server) and a client's copy of it: 256 MiB.
const DefaultMaxValue = 256 << 20

// Hello returns the framed-mode hello with the given flags.
func Hello(flags byte) []byte {
	return append([]byte(magic), ProtocolVersion, flags)
}

// helloMatch reports whether b (the first bytes of a connection) is a whole
// hello (full, with its flags) or could still become one (partial).
func helloMatch(b []byte) (full bool, flags byte, partial bool) {
	want := Hello(0)
	n := min(len(b), HelloLen-1)
	if !bytes.Equal(b[:n], want[:n]) {
		return false, 0, false
	}
	if len(b) < HelloLen {
		return false, 0, true
	}
	f := b[HelloLen-1]
	if f&^FlagWatch != 0 {
		return false, 0, false
	}
	return true, f, false
}

// probe returns the discovery probe (answer false) or answer (true).
func probe(nonce [8]byte, answer bool) []byte {
	b := make([]byte, 0, ProbeLen)
	b = append(b, magic...)
	if answer {
		b = append(b, '!')
	} else {
		b = append(b, '?')
	}
	b = append(b, ProtocolVersion)
	return append(b, nonce[:]...)
}

// answerProbe returns the answer to datagram p, or nil if p is not a probe.
func answerProbe(p []byte) []byte {
	if len(p) != ProbeLen || string(p[:len(magic)]) != magic || p[len(magic)] != '?' || p[len(magic)+1] != ProtocolVersion {
		return nil
	}
	var nonce [8]byte
	copy(nonce[:], p[len(magic)+2:])
	return probe(nonce, true)
}

// errorFrame returns an 'e' frame carrying msg, cut to MaxErrorLen.
func errorFrame(msg string) []byte {
	if len(msg) > MaxErrorLen {
		msg = msg[:MaxErrorLen]
	}
	return append(appendFrameHeader(nil, KindError, 0, uint32(len(msg))), msg...)
}

// appendFrameHeader appends a frame header to dst.
func appendFrameHeader(dst []byte, kind byte, n uint64, d uint32) []byte {
	dst = append(dst, kind)
	dst = binary.BigEndian.AppendUint64(dst, n)
	return binary.BigEndian.AppendUint32(dst, d)
}

// ErrProtocol marks a frame that breaks the framed protocol.
var ErrProtocol = errors.New("framed protocol error")

// ReadFrame reads one frame from br, appends its data to have (the client's
// copy of v) and returns the frame's kind, the length n of the v it reports
// (v is have[:n]) and the grown copy. It refuses, with an error wrapping
// ErrProtocol, an unknown kind, a copy that would exceed maxValue and an n
// beyond the copy, before reading any data it would refuse. Exported for
// another client of the framed protocol; Client reads with it.
func ReadFrame(br *bufio.Reader, have []byte, maxValue int) (kind byte, n int, v []byte, err error) {
	var hdr [FrameHeaderLen]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return 0, 0, have, err
	}
	kind = hdr[0]
	n64 := binary.BigEndian.Uint64(hdr[1:9])
	d := int64(binary.BigEndian.Uint32(hdr[9:13]))
	switch {
	case kind != KindHello && kind != KindReply && kind != KindUpdate && kind != KindError:
		return 0, 0, have, fmt.Errorf("%w: unknown frame kind 0x%02x", ErrProtocol, kind)
	case kind == KindError && (n64 != 0 || d > MaxErrorLen):
		return 0, 0, have, fmt.Errorf("%w: an 'e' frame with n = %d and %d bytes of reason", ErrProtocol, n64, d)
	case int64(len(have))+d > int64(maxValue):
		return 0, 0, have, fmt.Errorf("%w: v would exceed %d bytes", ErrProtocol, maxValue)
	case n64 > uint64(int64(len(have))+d):
		return 0, 0, have, fmt.Errorf("%w: frame reports %d bytes of v, only %d known", ErrProtocol, n64, int64(len(have))+d)
	}
	start := len(have)
	have = grow(have, int(d))
	if _, err := io.ReadFull(br, have[start:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, 0, have[:start], err
	}
	return kind, int(n64), have, nil
}

// grow extends b by d bytes, growing its capacity at least geometrically.
func grow(b []byte, d int) []byte {
	if len(b)+d <= cap(b) {
		return b[:len(b)+d]
	}
	nb := make([]byte, len(b)+d, max(2*cap(b), len(b)+d))
	copy(nb, b)
	return nb
}
