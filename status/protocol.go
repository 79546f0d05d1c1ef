// Package status is the remote status service of the tutorial's section 5.2
// (svr.py and its client wps.py): a client names a command, w or ps, and the
// server sends back that command's output, so anyone can check a machine's
// load without an account on it.
//
// The tutorial's svr.py hands whatever two bytes arrive to os.popen, that is
// to a shell; its own footnote names the danger. This package keeps the
// service and closes the hole: the client's bytes are only ever compared
// with the names on an AllowList, and what runs is the fixed argument vector
// of the matching entry, never a shell and never a byte from the client.
//
// # Wire format
//
// One request per connection, byte by byte:
//
//	client → server   the command name in ASCII, e.g. 'p' 's' (0x70 0x73) or
//	                  'w' (0x77), 1 to 64 bytes, with NO terminator: that
//	                  is what wps.py sends (s.send(sys.argv[3])). The client
//	                  does not half-close; it waits for the answer.
//	                  Optionally one trailing '\n' (0x0a) or "\r\n"
//	                  (0x0d 0x0a), so that nc and printf 'ps\n' work too.
//	server → client   the command's output, lines each ending in '\n', then
//	                  the server closes the connection (FIN). The client
//	                  reads until end of file (wps.py's readlines()).
//	                  For a name not on the allow-list, exactly one line,
//	                  unknown command "xy"; allowed: ps, w
//	                  with the name quoted as Go's %q does (so NUL bytes
//	                  and quotes come back escaped), then the close.
//
// With no terminator the server must decide when the name is complete. It
// takes the first of:
//
//  1. a '\n' arrives: the name is the bytes before it, less one '\r';
//  2. the bytes so far are exactly a name on the allow-list (no built-in
//     name is a prefix of another, so this is never premature for an
//     allowed name; the tutorial's recv(2) acts on the first chunk too);
//  3. the client half-closes (end of file);
//  4. a quiet gap (QuietGap, 100 ms by default) passes after the last byte
//     with nothing more arriving;
//  5. more than MaxRequest (64) bytes arrive: refused as too long;
//  6. the read deadline (5 s by default) passes with nothing at all: the
//     connection is closed without an answer.
//
// A client tells tcplab svr from other servers of this protocol (which may
// hand a request's first two bytes to a shell) by the answer to
// fleet.Probe, whose first two bytes are "ps"; the fleet view sends nothing
// but w and ps to a server it has not so recognised.
//
// stream.ReadMessage applies these rules (rule 6 is its Timeout, and a
// name still arriving at the timeout is taken as it is: Partial). The
// client, wps, is package status/fleet; the native renderer of w and ps is
// internal/procps.
//
// Differences from the tutorial, on purpose: the output is sent whole
// (svr.py writes rl[:-1], dropping the command's last line, which for ps is
// a real process); w and ps run with a fixed argument list chosen for
// someone checking load (see AllowList); the server serves many clients at
// once instead of one at a time.
package status

import (
	"bytes"
	"fmt"
)

// MaxRequest is the longest command name (terminator excluded) the server
// reads. Every built-in name is far shorter; the bound keeps a client from
// making the server buffer anything. Exported as part of the wire format a
// client keeps to.
const MaxRequest = 64

// request is a parsed request: the name the client sent and, if that name
// is on the allow-list, its entry.
type request struct {
	// Name is the requested name with any trailing "\n" or "\r\n" removed.
	// It is raw client bytes: use it only quoted (Refusal does).
	Name []byte
	// Command is the allow-list entry for Name, or nil if Name is not on
	// the list. It is the only thing a Runner accepts.
	Command *Command
	// TooLong is set when the request was over MaxRequest bytes.
	TooLong bool
}

// parseRequest interprets raw, the complete bytes of a request, against
// allow. It never fails: a name that is not allowed yields a request with a
// nil Command, whose Refusal is the line to send. raw is not retained.
func parseRequest(raw []byte, allow *AllowList) request {
	name := raw
	if i := bytes.IndexByte(name, '\n'); i >= 0 {
		name = name[:i]
		name = bytes.TrimSuffix(name, []byte{'\r'})
	}
	if len(name) > MaxRequest {
		return request{Name: bytes.Clone(name[:MaxRequest]), TooLong: true}
	}
	name = bytes.Clone(name)
	return request{Name: name, Command: allow.Lookup(name)}
}

// Refusal is the one line sent for a request that is not allowed, ending
// in '\n'. It is empty for an allowed request.
func (r request) Refusal(allow *AllowList) string {
	switch {
	case r.Command != nil:
		return ""
	case r.TooLong:
		return fmt.Sprintf("request too long (over %d bytes); allowed: %s\n", MaxRequest, allow)
	default:
		return fmt.Sprintf("unknown command %q; allowed: %s\n", r.Name, allow)
	}
}
