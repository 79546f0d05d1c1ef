package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/tcplab/tcplab/internal/endpoint"
)

// fileOf returns the *os.File beneath w, if any.
func fileOf(w io.Writer) *os.File {
	switch w := w.(type) {
	case *os.File:
		return w
	case *clientStdout:
		return w.file()
	}
	return nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f := fileOf(w)
	return f != nil && term.IsTerminal(int(f.Fd()))
}

// terminalSafe returns the writer through which text from the network
// (strclnt's v, tmc's first reads, wps's answers) reaches w. On a terminal,
// control characters are escaped, so no peer can move the cursor, retitle
// the window or worse by sending escape sequences; when w is a pipe or a
// file, the bytes pass unchanged, for scripts and for diffing against the
// tutorial. Printable text is the same either way.
func terminalSafe(w io.Writer) io.Writer {
	if !isTerminal(w) {
		return w
	}
	return terminalWriter(w)
}

// terminalWriter is the escaping writer terminalSafe returns on a
// terminal. Text that may end mid-character (an answer printed as it
// arrives) must be followed by flushTerminal.
func terminalWriter(w io.Writer) io.Writer {
	return &escapingWriter{w: w}
}

// flushTerminal writes what w holds back of a character cut short, if w
// is terminalSafe's escaping writer.
func flushTerminal(w io.Writer) error {
	if e, ok := w.(*escapingWriter); ok {
		return e.flush()
	}
	return nil
}

// escapingWriter writes p with escapeControls. A UTF-8 character split
// between two writes (two reads of a streamed answer) is held back until
// its last byte comes, so it shows as itself, not as escaped bytes.
type escapingWriter struct {
	w       io.Writer
	pending []byte // the start of a character cut by the end of a write
}

func (e *escapingWriter) Write(p []byte) (int, error) {
	buf := append(e.pending, p...)
	cut := len(buf) - incompleteTail(buf)
	e.pending = append([]byte(nil), buf[cut:]...)
	if _, err := io.WriteString(e.w, escapeControls(buf[:cut])); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (e *escapingWriter) flush() error {
	if len(e.pending) == 0 {
		return nil
	}
	_, err := io.WriteString(e.w, escapeControls(e.pending))
	e.pending = nil
	return err
}

// incompleteTail is the length of the start of a UTF-8 character at the
// end of p whose remaining bytes have not come yet (0 if none).
func incompleteTail(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:]) {
				return len(p) - i
			}
			return 0
		}
	}
	return 0
}

// escapeControls returns p with every byte a terminal could act on written
// as a Go escape: C0 controls but newline and tab (ESC is \x1b, CR \r),
// DEL, the C1 controls U+0080 to U+009F (U+009B is a one-character CSI on
// some terminals), and bytes that are not UTF-8. Everything else, any
// printable text in any script, is unchanged. A backslash is not escaped:
// the tutorial's printable text must come out exactly as sent.
func escapeControls(p []byte) string {
	var b strings.Builder
	b.Grow(len(p))
	for len(p) > 0 {
		r, size := utf8.DecodeRune(p)
		switch {
		case r == utf8.RuneError && size <= 1:
			writeHex(&b, p[0])
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			writeHex(&b, byte(r))
		case r >= 0x80 && r <= 0x9f:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&0xf])
		default:
			b.Write(p[:size])
		}
		p = p[size:]
	}
	return b.String()
}

func writeHex(b *strings.Builder, c byte) {
	b.WriteString(`\x`)
	b.WriteByte("0123456789abcdef"[c>>4])
	b.WriteByte("0123456789abcdef"[c&0xf])
}

// hostArg is HOST as typed, with the brackets of an IPv6 literal taken off:
// "[::1]" and "::1" are the same host, as ssh and curl accept both.
func hostArg(s string) string {
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		return s[1 : len(s)-1]
	}
	return s
}

// checkHost checks a client's HOST argument (after hostArg): a name or an
// address, with no port (that is PORT's) and not empty (which would
// quietly dial this machine).
func checkHost(s string) error {
	switch {
	case s == "":
		return usagef("HOST must not be empty")
	case strings.ContainsAny(s, "[]") || strings.Count(s, ":") == 1:
		if _, _, err := net.SplitHostPort(s); err == nil {
			return usagef("HOST %q includes a port: give the port as PORT", s)
		}
		return usagef("HOST %q is not a name or an address", s)
	}
	return nil
}

// checkDialPort is a client's PORT argument: a number from 1 to 65535 (0
// asks for "any port" when listening, and means nothing to connect to).
func checkDialPort(s string) error {
	if p, err := endpoint.ParsePort(s); err != nil || p == 0 {
		return usagef("invalid port %q: a client connects to a port from 1 to 65535", s)
	}
	return nil
}

// checkListenAddr checks an ADDR to listen on, as --metrics takes it:
// HOST:PORT or :PORT, with a port from 0 to 65535 (0: any free port).
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT or :PORT", addr)
	}
	if _, err := endpoint.ParsePort(port); err != nil {
		return fmt.Errorf("%q: %v", addr, err)
	}
	return nil
}
