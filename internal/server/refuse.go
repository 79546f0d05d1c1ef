package server

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/tcplab/tcplab/internal/tcpsock"
)

// RefuseTimeout is the time a refused connection is given, from when its
// refusal begins: the Refuse hook and the read of what the client still
// sends share it. A hook may give its answer a write deadline of its own
// from when it writes it: sharedstring's refusal, which waits half of
// RefuseTimeout for a hello, gives its answer the other half from then,
// so that a refusal that ran late still answers. Such a late refusal
// holds its connection up to RefuseTimeout/2 past RefuseTimeout, plus
// whatever the machine's load delays it by; the read after the hook
// still ends at the first deadline. One second covers a round trip on any
// link a person uses, and is short enough that refusals cannot be stacked
// up into a resource: at most maxRefusing of them are held at once.
const RefuseTimeout = time.Second

// maxRefusing bounds the refusals in progress. Over it, a refused
// connection is reset at once: a flood of connections costs the server a
// reset each, and the flood's own clients are the ones that see no reason.
const maxRefusing = 64

// refuseDrain bounds what is read from a refused client after the refusal:
// enough for any request a client sends before reading, not a sink for a
// stream.
const refuseDrain = 64 << 10

// BusyPrefix begins the one-line refusal that RefuseLine writes; clients of
// the line protocols (tmc, wps, strclnt in classic mode) recognise a whole
// answer that is such a line as a refusal.
const BusyPrefix = "busy: "

// MaxBusyLine bounds a refusal line, newline included: a client takes an
// answer for a refusal only if it is this short.
const MaxBusyLine = 256

// RefuseLine is a Refuse hook for a protocol whose answer is text: it
// writes "busy: REASON; try again later\n". The tutorial's Python clients
// print it as they would any answer.
func RefuseLine(conn net.Conn, reason string) {
	io.WriteString(conn, BusyLine(reason))
}

// BusyLine is the line RefuseLine writes.
func BusyLine(reason string) string {
	line := BusyPrefix + reason + "; try again later"
	if len(line) > MaxBusyLine-1 {
		line = line[:MaxBusyLine-1]
	}
	return line + "\n"
}

// IsBusyLine reports whether answer, the whole of what a server sent, is a
// refusal line as RefuseLine writes it, and returns the line without its
// newline.
func IsBusyLine(answer []byte) (string, bool) {
	if len(answer) > MaxBusyLine || len(answer) < len(BusyPrefix)+1 ||
		string(answer[:len(BusyPrefix)]) != BusyPrefix || answer[len(answer)-1] != '\n' {
		return "", false
	}
	line := answer[:len(answer)-1]
	for _, b := range line {
		if b < ' ' || b > '~' {
			return "", false
		}
	}
	return string(line), true
}

// refuse turns conn away with reason: through the Refuse hook in its own
// goroutine, or with a reset at once when there is no hook or too many
// refusals are already in progress.
func (s *Server) refuse(conn net.Conn, reason string) {
	s.logger().Debug("connection refused", "client", conn.RemoteAddr().String(), "reason", reason)
	s.refusedTotal.Add(1)
	s.mu.Lock()
	s.noteRefusal(reason)
	ok := s.Refuse != nil && !s.closing && len(s.refusing) < maxRefusing
	if ok {
		s.refusing[conn] = struct{}{}
		s.handlers.Add(1)
	}
	s.mu.Unlock()
	if !ok {
		tcpsock.Reset(conn)
		conn.Close()
		return
	}
	go func() {
		defer s.handlers.Done()
		defer func() {
			s.mu.Lock()
			delete(s.refusing, conn)
			s.mu.Unlock()
		}()
		defer conn.Close()
		defer s.recoverHandler(conn)
		deadline := time.Now().Add(RefuseTimeout)
		conn.SetDeadline(deadline)
		s.Refuse(conn, reason)
		// An orderly end: the refusal, then FIN. Reading what the client
		// sent (a request, or nothing until its own close) before closing
		// keeps the kernel from answering unread bytes with a reset,
		// which can destroy the refusal before the client reads it.
		if tc, ok := conn.(interface{ CloseWrite() error }); ok {
			tc.CloseWrite()
		}
		conn.SetDeadline(deadline)
		if n, _ := io.Copy(io.Discard, io.LimitReader(conn, refuseDrain)); n == refuseDrain {
			tcpsock.Reset(conn) // a stream, not a request: the end is a reset
		}
	}()
}

// refusalLogEvery bounds how often refusals are logged: a full server says
// so at once, then at most this often, with the count, so that a flood of
// connections cannot flood the log.
const refusalLogEvery = 10 * time.Second

// noteRefusal counts a refusal and logs one line for the refusals since
// the last line, at most every refusalLogEvery. s.mu is held.
func (s *Server) noteRefusal(reason string) {
	s.refused++
	now := time.Now()
	if now.Sub(s.refusalLogged) < refusalLogEvery {
		return
	}
	s.logger().Warn("refusing connections", "reason", reason, "refused", s.refused)
	s.refused = 0
	s.refusalLogged = now
}

// addrKey is the source that MaxConnsPerAddr counts for a peer (Source).
// A peer that is not IP (a Unix socket, a pipe in a test) has no key and
// no per-address cap.
func addrKey(a net.Addr) netip.Prefix {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}
	}
	return Source(ta.AddrPort().Addr())
}

// Source is what every per-address rule of tcplab's servers counts as one
// client address: an IPv4 address (IPv4 in IPv6 unmapped), or the /64 an
// IPv6 address is in, since a host is routinely given a whole /64 and
// could otherwise take a fresh share from each of its addresses. The
// connection caps, svr's request and handshake rate limits and the
// eviction of silent connections all count by it. The zero Prefix for an
// invalid address.
func Source(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}

// BusyHold holds back the start of an answer for as long as it may still
// be a refusal line, so that a client can show a refusal as one clear line
// instead of printing it as data. Chunks are passed on unchanged, in order
// and with their sizes, as soon as the answer cannot be a refusal. An
// answer that does not begin with BusyPrefix is never held. The zero value
// is ready; a client whose own request begins with BusyPrefix (whose
// answer could begin with it too) should not use one.
type BusyHold struct {
	held    [][]byte
	n       int
	decided bool // the answer is not a refusal: pass everything on
}

// Add takes the next chunk of the answer and returns the chunks to pass on
// now (none while the answer may still be a refusal).
func (h *BusyHold) Add(chunk []byte) [][]byte {
	if h.decided {
		return [][]byte{chunk}
	}
	h.held = append(h.held, bytes.Clone(chunk))
	h.n += len(chunk)
	if h.mayBeBusy() {
		return nil
	}
	h.decided = true
	out := h.held
	h.held = nil
	return out
}

// End is called once the answer is over. It returns the refusal line when
// the whole answer was one, and otherwise the chunks still held, to pass on.
func (h *BusyHold) End() (line string, refused bool, rest [][]byte) {
	if h.decided || len(h.held) == 0 {
		return "", false, nil
	}
	if line, ok := IsBusyLine(bytes.Join(h.held, nil)); ok {
		return line, true, nil
	}
	rest = h.held
	h.held = nil
	h.decided = true
	return "", false, rest
}

// mayBeBusy reports whether the held bytes can still become a refusal line.
func (h *BusyHold) mayBeBusy() bool {
	if h.n > MaxBusyLine {
		return false
	}
	b := bytes.Join(h.held, nil)
	if len(b) < len(BusyPrefix) {
		return BusyPrefix[:len(b)] == string(b)
	}
	if string(b[:len(BusyPrefix)]) != BusyPrefix {
		return false
	}
	i := bytes.IndexByte(b, '\n')
	return i < 0 || i == len(b)-1
}
