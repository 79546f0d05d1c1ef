package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/internal/safetext"
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

// terminalSafe returns the writer through which text from outside
// (strclnt's v, tmc's first reads, wps's answers) reaches w. On a
// terminal it is escaped by tcplab's one rule (internal/safetext), so no
// peer can move the cursor, retitle the window, write the clipboard or
// reorder the text by sending control characters; when w is a pipe or a
// file, the bytes pass unchanged, for scripts and for diffing against
// the tutorial. Printable text is the same either way. Text that may end
// mid-character (an answer printed as it arrives) must be followed by
// flushTerminal.
func terminalSafe(w io.Writer) io.Writer {
	if !isTerminal(w) {
		return w
	}
	return safetext.NewWriter(w)
}

// flushTerminal writes what w holds back of a character cut short, if w
// is terminalSafe's escaping writer.
func flushTerminal(w io.Writer) error {
	if e, ok := w.(*safetext.Writer); ok {
		return e.Flush()
	}
	return nil
}

// terminalJSON writes JSON text (encoding/json's) to w: on a terminal
// with the characters encoding/json leaves raw (DEL, C1, bidirectional
// controls) written as JSON escapes (safetext.JSON), the same value;
// through a pipe as it is.
func terminalJSON(w io.Writer, js []byte) error {
	if isTerminal(w) {
		js = safetext.JSON(js)
	}
	_, err := w.Write(js)
	return err
}

// encodeJSONLine writes v as JSON on one line to w, by terminalJSON.
func encodeJSONLine(w io.Writer, v any) error {
	js, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return terminalJSON(w, append(js, '\n'))
}

// encodeJSON writes v as indented JSON to w, by terminalJSON.
func encodeJSON(w io.Writer, v any) error {
	js, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return terminalJSON(w, append(js, '\n'))
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
