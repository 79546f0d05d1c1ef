package fleet

import (
	"fmt"
	"io"
	"strings"

	"github.com/tcplab/tcplab/internal/server"
)

// refusalWriter passes an answer on to w, except an answer that is, whole,
// a full server's refusal line ("busy: ...", see server.RefuseLine): that
// one Ask returns as its error, so wps prints one clear line and exits 1
// instead of printing the refusal as if it were w's output.
type refusalWriter struct {
	w    io.Writer
	hold server.BusyHold
	off  bool // the request begins like a refusal: never hold
}

func newRefusalWriter(w io.Writer, request string) *refusalWriter {
	return &refusalWriter{w: w, off: strings.HasPrefix(request, server.BusyPrefix)}
}

func (r *refusalWriter) Write(p []byte) (int, error) {
	if r.off {
		return r.w.Write(p)
	}
	for _, c := range r.hold.Add(p) {
		if _, err := r.w.Write(c); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// end is called when the answer is over: it returns the refusal as an
// error, or writes what was still held.
func (r *refusalWriter) end(addr string) error {
	if r.off {
		return nil
	}
	line, refused, rest := r.hold.End()
	if refused {
		return refusedError(fmt.Sprintf("server at %s refused the connection: %s", addr, line))
	}
	for _, c := range rest {
		if _, err := r.w.Write(c); err != nil {
			return err
		}
	}
	return nil
}

// refusedError is Ask's error for a server's refusal line: the server is
// busy, whatever it is.
type refusedError string

func (e refusedError) Error() string { return string(e) }
