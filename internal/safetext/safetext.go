// Package safetext is tcplab's one rule for text that comes from outside
// the process (a peer's bytes, login records, process names, another
// server's answers, Redis values) on its way to a terminal or into a line
// of text: every character a terminal could act on, or that could forge
// a line or reorder what is shown, is written as a visible escape;
// everything else, printable text in any script, passes unchanged, so
// the tutorial's printable output stays byte for byte.
//
// What is escaped (Unsafe):
//
//   - the C0 controls, U+0000 to U+001F (ESC begins every escape
//     sequence: screen clears, window titles, OSC 52 clipboard writes),
//     except newline and tab in multi-line text (Escape, Writer);
//   - DEL, U+007F;
//   - the C1 controls U+0080 to U+009F, as characters (U+009B is a
//     one-character CSI on some terminals) and as lone bytes;
//   - the bidirectional controls that make a terminal show text in
//     another order than it was sent (U+202E, RIGHT-TO-LEFT OVERRIDE,
//     turns "exe.txt" into "txt.exe"): U+061C, U+200E, U+200F,
//     U+202A to U+202E and U+2066 to U+2069; and U+2028 and U+2029, line
//     and paragraph separators, which some readers take for line ends;
//   - bytes that are not UTF-8.
//
// The escapes are Go's: "\x1b", "\r", "\x7f", "\x9b" for a lone byte,
// "\u009b" and "\u202e" for characters. A backslash is not escaped, so
// printable text is exact; the price is that a peer can send the four
// characters `\x1b`, which show as the escape of ESC would. That is
// harmless: it is what the peer sent.
//
// A character cut in two by the end of a read is not invalid: Writer
// holds the start of it until the rest comes (or Flush), so an answer
// streamed in chunks shows exactly what Escape shows of it whole.
package safetext

import (
	"io"
	"strings"
	"unicode/utf8"
)

// Unsafe reports whether r must not reach a terminal as itself (see the
// package comment). Newline and tab are unsafe here: multi-line text keeps
// them (Escape), a one-line field does not (Line).
func Unsafe(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f,
		r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069,
		r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// Escape returns p with every unsafe character escaped, keeping newlines
// and tabs: for multi-line text, such as a command's output.
func Escape(p []byte) string { return string(appendEscaped(nil, p, true)) }

// EscapeString is Escape for a string.
func EscapeString(s string) string { return Escape([]byte(s)) }

// Line returns s escaped for one line of text (a log field, an error
// line, a field of a table): as Escape, and newlines and tabs escaped too
// ("\n", "\t"), so that s can neither end the line nor forge another.
func Line(s string) string { return string(appendEscaped(nil, []byte(s), false)) }

// OneLine is s as the one line a user is promised for an error: its
// words joined by single spaces (no line breaks, no runs of blanks), then
// escaped as Line does.
func OneLine(s string) string { return Line(strings.Join(strings.Fields(s), " ")) }

// appendEscaped appends p to dst with unsafe characters escaped; multiLine
// keeps newlines and tabs.
func appendEscaped(dst, p []byte, multiLine bool) []byte {
	for len(p) > 0 {
		r, size := utf8.DecodeRune(p)
		switch {
		case r == utf8.RuneError && size <= 1:
			dst = appendHex(dst, `\x`, uint32(p[0]), 2)
		case !Unsafe(r):
			dst = append(dst, p[:size]...)
		case r == '\n' && multiLine, r == '\t' && multiLine:
			dst = append(dst, byte(r))
		case r == '\n':
			dst = append(dst, `\n`...)
		case r == '\t':
			dst = append(dst, `\t`...)
		case r == '\r':
			dst = append(dst, `\r`...)
		case r < 0x80:
			dst = appendHex(dst, `\x`, uint32(r), 2)
		default:
			dst = appendHex(dst, `\u`, uint32(r), 4)
		}
		p = p[size:]
	}
	return dst
}

// JSON returns JSON text (as encoding/json writes it: valid UTF-8, no raw
// control characters inside strings) with every unsafe character that
// encoding/json leaves raw (DEL, C1, the bidirectional controls) written
// as a JSON escape, \u007f or \u202e: the same JSON value, safe to show
// on a terminal. Newlines and tabs between the values stay.
func JSON(p []byte) []byte {
	var dst []byte
	for len(p) > 0 {
		r, size := utf8.DecodeRune(p)
		switch {
		case r == utf8.RuneError && size <= 1:
			dst = append(dst, `\ufffd`...) // encoding/json's own spelling of a bad byte
		case r == '\n' || r == '\t' || !Unsafe(r):
			dst = append(dst, p[:size]...)
		default:
			dst = appendHex(dst, `\u`, uint32(r), 4)
		}
		p = p[size:]
	}
	return dst
}

func appendHex(dst []byte, prefix string, v uint32, digits int) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, prefix...)
	for i := digits - 1; i >= 0; i-- {
		dst = append(dst, hex[(v>>(4*i))&0xf])
	}
	return dst
}

// Writer escapes what is written through it, as Escape, and writes it to
// the writer beneath. A UTF-8 character split between two writes (two
// reads of a streamed answer) is held back until its last byte comes, so
// it shows as itself, not as escaped bytes; Flush writes, escaped, what
// is held back when the text ends mid-character.
type Writer struct {
	w       io.Writer
	pending []byte // the start of a character cut by the end of a write
	buf     []byte
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write escapes p (with what was held back) and writes it. It reports
// len(p) on success: the bytes taken, not the bytes written beneath.
func (e *Writer) Write(p []byte) (int, error) {
	in := append(e.pending, p...)
	cut := len(in) - incompleteTail(in)
	e.buf = appendEscaped(e.buf[:0], in[:cut], true)
	e.pending = append(e.pending[:0:0], in[cut:]...)
	if _, err := e.w.Write(e.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes what is held back of a character cut short, escaped: the
// text ended there.
func (e *Writer) Flush() error {
	if len(e.pending) == 0 {
		return nil
	}
	e.buf = appendEscaped(e.buf[:0], e.pending, true)
	e.pending = nil
	_, err := e.w.Write(e.buf)
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
