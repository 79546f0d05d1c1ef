package safetext

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	cases := []struct{ in, want string }{
		{"abc", "abc"},                 // the tutorial's text: unchanged
		{"a b\tc\n", "a b\tc\n"},       // tab and newline stay in multi-line text
		{`back\slash`, `back\slash`},   // not escaped: printable text is exact
		{"héllo, 世界 😀", "héllo, 世界 😀"}, // any script
		{"\x1b[2J\x1b]0;pwned\x07", `\x1b[2J\x1b]0;pwned\x07`},
		{"\x1b]52;c;cHduZWQ=\x07", `\x1b]52;c;cHduZWQ=\x07`}, // OSC 52: the clipboard
		{"over\rwrite", `over\rwrite`},
		{"del\x7f", `del\x7f`},
		{"csi\u009b31m", `csi\u009b31m`}, // C1 CSI as UTF-8
		{"raw\x9b31m", `raw\x9b31m`},     // C1 CSI as a lone byte
		{"cut\xe4\xb8", `cut\xe4\xb8`},   // not UTF-8
		{"\x00", `\x00`},
		{"file\u202etxt.exe", `file\u202etxt.exe`}, // RIGHT-TO-LEFT OVERRIDE
		{"\u2066x\u2069\u200e\u200f\u061c", `\u2066x\u2069\u200e\u200f\u061c`},
		{"a\u2028b", `a\u2028b`},
		{"\u00a0nbsp\u00e9", "\u00a0nbsp\u00e9"}, // U+00A0 and after: printable
	}
	for _, c := range cases {
		if got := Escape([]byte(c.in)); got != c.want {
			t.Errorf("Escape(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := EscapeString(c.in); got != c.want {
			t.Errorf("EscapeString(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got, want := Line("a\tb\nforged row\x1b"), `a\tb\nforged row\x1b`; got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}
}

func TestJSONKeepsTheValue(t *testing.T) {
	v := map[string]string{"output": "del\x7f csi\u009b rlo\u202e esc\x1b nl\n bad\xff é"}
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	safe := JSON(raw)
	if bytes.ContainsAny(safe, "\x7f\u009b\u202e\x1b") {
		t.Fatalf("JSON left a control raw: %q", safe)
	}
	var back map[string]string
	if err := json.Unmarshal(safe, &back); err != nil {
		t.Fatalf("JSON made invalid JSON: %v\n%s", err, safe)
	}
	var want map[string]string
	json.Unmarshal(raw, &want)
	if back["output"] != want["output"] {
		t.Fatalf("value changed: %q, want %q", back["output"], want["output"])
	}
}

// A character split between two writes is still one character: each
// write escaped alone showed "café" split after its 0xc3 as `caf\xc3\xa9`.
func TestWriterKeepsCharactersSplitAcrossWrites(t *testing.T) {
	var b strings.Builder
	w := NewWriter(&b)
	for _, part := range []string{"caf\xc3", "\xa9 ", "世"[:1], "世"[1:2], "世"[2:] + "\x1b\n"} {
		if n, err := w.Write([]byte(part)); n != len(part) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", part, n, err)
		}
	}
	if got, want := b.String(), "café 世\\x1b\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	b.Reset()
	w.Write([]byte("end\xe4\xb8"))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), `end\xe4\xb8`; got != want {
		t.Fatalf("after Flush got %q, want %q", got, want)
	}
}

// safeOutput checks the promise for one escaped text: valid UTF-8, and
// no unsafe character left but those multi-line text keeps.
func safeOutput(t *testing.T, what, out string, keep func(rune) bool) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Fatalf("%s: not UTF-8: %q", what, out)
	}
	for _, r := range out {
		if Unsafe(r) && !keep(r) {
			t.Fatalf("%s: %U left in %q", what, r, out)
		}
	}
}

func multiLine(r rune) bool { return r == '\n' || r == '\t' }
func none(rune) bool        { return false }

// The invariants, for any input and any way of cutting it into writes:
// the output is safe; text with nothing unsafe in it is unchanged; the
// Writer shows what Escape shows of the whole, however the text was cut;
// Line has no line end; JSON keeps a JSON value's meaning.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"abc", "\x1b[2J", "caf\xc3\xa9", "\u202e", "\xe4\xb8", "\xf0\x9f\x98\x80", "\u009b", "a\nb\tc\r"} {
		f.Add([]byte(s), uint64(0x1234))
	}
	f.Fuzz(func(t *testing.T, p []byte, cuts uint64) {
		whole := Escape(p)
		safeOutput(t, "Escape", whole, multiLine)
		clean := utf8.Valid(p)
		for _, r := range string(p) {
			clean = clean && (!Unsafe(r) || multiLine(r))
		}
		if clean && whole != string(p) {
			t.Fatalf("safe text changed: %q became %q", p, whole)
		}

		var b strings.Builder
		w := NewWriter(&b)
		rest := p
		for len(rest) > 0 {
			n := min(int(1+cuts%4), len(rest)) // writes of 1 to 4 bytes
			cuts = cuts>>2 | cuts<<62
			w.Write(rest[:n])
			w.Write(nil)
			rest = rest[n:]
		}
		w.Flush()
		if b.String() != whole {
			t.Fatalf("streamed %q shows %q, whole %q", p, b.String(), whole)
		}

		safeOutput(t, "Line", Line(string(p)), none)

		raw, _ := json.Marshal(string(p))
		safe := JSON(raw)
		safeOutput(t, "JSON", string(safe), none)
		var a, c string
		json.Unmarshal(raw, &a)
		if err := json.Unmarshal(safe, &c); err != nil || a != c {
			t.Fatalf("JSON(%s) = %s: %v, value %q want %q", raw, safe, err, c, a)
		}
	})
}
