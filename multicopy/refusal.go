package multicopy

import (
	"fmt"
	"net"
	"strings"

	"github.com/tcplab/tcplab/internal/server"
)

// refusalHold is what Fetch does with the start of an answer that may be
// a full server's refusal ("busy: ...", see server.RefuseLine): it holds
// the chunks back until they cannot be one, then passes them to pass in
// their original sizes; a whole answer that is a refusal becomes the
// client's one error line instead of printed data.
type refusalHold struct {
	hold server.BusyHold
	pass func(chunk []byte)
	off  bool // the request itself begins like a refusal: never hold
}

func newRefusalHold(request string, pass func(chunk []byte)) *refusalHold {
	return &refusalHold{pass: pass, off: strings.HasPrefix(request, server.BusyPrefix)}
}

func (r *refusalHold) add(chunk []byte) {
	if r.pass == nil {
		r.pass = func([]byte) {}
	}
	if r.off {
		r.pass(chunk)
		return
	}
	for _, c := range r.hold.Add(chunk) {
		r.pass(c)
	}
}

// end is called when the answer is over (or broke off): it returns the
// refusal as an error, or passes on what was still held and returns nil.
func (r *refusalHold) end(from net.Addr) error {
	if r.off {
		return nil
	}
	line, refused, rest := r.hold.End()
	if refused {
		return &RefusedError{Addr: from, Line: line}
	}
	for _, c := range rest {
		r.pass(c)
	}
	return nil
}

// RefusedError is Fetch's error when the answer was a full server's
// refusal line: no transfer took place.
type RefusedError struct {
	Addr net.Addr // the server
	Line string   // its refusal, "busy: ...; try again later"
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("server at %s refused the connection: %s", e.Addr, e.Line)
}
