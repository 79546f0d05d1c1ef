package main

import (
	"bytes"
	"context"
	"net"
	"runtime/debug"
	"strings"
	"testing"
)

func TestEscapeControls(t *testing.T) {
	cases := []struct{ in, want string }{
		{"abc", "abc"},               // the tutorial's text: unchanged
		{"a b\tc\n", "a b\tc\n"},     // tab and newline stay
		{`back\slash`, `back\slash`}, // not escaped: printable text is exact
		{"héllo, 世界", "héllo, 世界"},   // any script
		{"\x1b[2J\x1b]0;pwned\x07", `\x1b[2J\x1b]0;pwned\x07`},
		{"over\rwrite", `over\rwrite`},
		{"del\x7f", `del\x7f`},
		{"csi\u009b31m", `csi\u009b31m`}, // C1 CSI as UTF-8
		{"raw\x9b31m", `raw\x9b31m`},     // C1 CSI as a lone byte
		{"cut\xe4\xb8", `cut\xe4\xb8`},   // not UTF-8
		{"\x00", `\x00`},
	}
	for _, c := range cases {
		if got := escapeControls([]byte(c.in)); got != c.want {
			t.Errorf("escapeControls(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// strclnt shows v safely: on a terminal a peer's escape sequences are
// printed as text; through a pipe the bytes pass unchanged, for scripts.
func TestStrClntEscapesControlsOnATerminalOnly(t *testing.T) {
	const hostile = "x\x1b]0;pwned\x07\x1b[2J\ra" // ends with the letter sent, as a classic reply must
	serve := func(t *testing.T) string {
		p := startPeer(t, func(c net.Conn, p *peer) {
			c.Read(make([]byte, 1))
			c.Write([]byte(hostile))
		})
		return p.port
	}

	tty, out, _ := openTerminal(t)
	var errOut bytes.Buffer
	code := run(context.Background(), []string{"strclnt", "--classic", "127.0.0.1", serve(t)}, strings.NewReader("a\n"), tty, &errOut)
	got := out()
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if strings.ContainsRune(got, 0x1b) || strings.ContainsRune(got, 0x07) || !strings.Contains(got, `x\x1b]0;pwned\x07\x1b[2J\ra`) {
		t.Fatalf("terminal got %q", got)
	}

	code, stdout, errStr := runCmd(t, "a\n", "strclnt", "--classic", "127.0.0.1", serve(t))
	if code != 0 || stdout != "enter a letter:"+hostile+"\nenter a letter:" {
		t.Fatalf("pipe: exit %d, %q, %q", code, stdout, errStr)
	}
}

func TestVersionFromBuildInfo(t *testing.T) {
	cases := []struct {
		bi   debug.BuildInfo
		want string
	}{
		{debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "v1.4.0"},
		{debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "bf8ed7a1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7"},
			{Key: "vcs.time", Value: "2026-12-01T12:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		}}, "rev bf8ed7a1c2d3+dirty (2026-12-01T12:00:00Z)"},
		{debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "(devel, no version control information)"},
	}
	for _, c := range cases {
		if got := buildVersion(&c.bi); got != c.want {
			t.Errorf("buildVersion = %q, want %q", got, c.want)
		}
	}
}

func TestHostArgTakesBracketsOff(t *testing.T) {
	for in, want := range map[string]string{"[::1]": "::1", "::1": "::1", "localhost": "localhost", "[]": "[]", "10.0.0.1": "10.0.0.1"} {
		if got := hostArg(in); got != want {
			t.Errorf("hostArg(%q) = %q, want %q", in, got, want)
		}
	}
}

// "[::1]" and "::1" are the same host for every client (tmc, wps,
// strclnt), and "[::1]:PORT" in --hosts. Before, "tmc '[::1]' 2000 abc"
// failed with "missing port in address".
func TestIPv6LoopbackBareAndBracketed(t *testing.T) {
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		ln.Close()
	}
	for _, host := range []string{"::1", "[::1]"} {
		tms := startCmd(t, captured, captured, "tms", "--no-wait", "--copies", "2", "0")
		code, out, errOut := runCmd(t, "", "tmc", "--quiet", "--copies", "2", host, tms.port(t), "v6")
		if code != 0 || !strings.HasPrefix(out, "summary: 4 bytes") {
			t.Errorf("tmc %s: exit %d, %q %q", host, code, out, errOut)
		}

		_, svrPort := startSVR(t, "--native")
		if code, out, errOut := runCmd(t, "", "wps", host, svrPort, "w"); code != 0 || !strings.Contains(out, "load average") {
			t.Errorf("wps %s: exit %d, %q %q", host, code, out, errOut)
		}

		str := startCmd(t, captured, captured, "strsvr", "--keep", "0")
		if code, out, errOut := runCmd(t, "q\n", "strclnt", host, str.port(t)); code != 0 || out != "enter a letter:q\nenter a letter:" {
			t.Errorf("strclnt %s: exit %d, %q %q", host, code, out, errOut)
		}
	}
	_, svrPort := startSVR(t, "--native")
	code, out, errOut := runCmd(t, "", "wps", "--hosts", "[::1]:"+svrPort, "w")
	if code != 0 || !strings.HasPrefix(out, "== [::1]:"+svrPort+" ==\n") {
		t.Errorf("wps --hosts [::1]:%s: exit %d, %q %q", svrPort, code, out, errOut)
	}
}

// A character split between two writes (two reads of an answer that
// arrives as it comes, as wps prints it) is still one character on a
// terminal: each write was escaped alone, and "café" split after its
// 0xc3 was shown as `caf\xc3\xa9`.
func TestEscapingWriterKeepsCharactersSplitAcrossWrites(t *testing.T) {
	var b strings.Builder
	w := terminalWriter(&b)
	for _, part := range []string{"caf\xc3", "\xa9 ", "世"[:1], "世"[1:2], "世"[2:] + "\x1b\n"} {
		if n, err := w.Write([]byte(part)); n != len(part) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", part, n, err)
		}
	}
	if got, want := b.String(), "café 世\\x1b\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// An answer that ends inside a character: its bytes are shown, escaped,
	// when the answer ends.
	b.Reset()
	w.Write([]byte("end\xe4\xb8"))
	if err := flushTerminal(w); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), `end\xe4\xb8`; got != want {
		t.Fatalf("after flush got %q, want %q", got, want)
	}
}

// wps on a terminal shows an answer that ends inside a character (its
// last bytes held for the rest of the character) in full.
func TestWPSShowsAnAnswerEndingMidCharacter(t *testing.T) {
	p := startPeer(t, func(c net.Conn, p *peer) {
		c.Read(make([]byte, 64))
		c.Write([]byte("load caf\xc3"))
		c.Close()
	})
	tty, out, _ := openTerminal(t)
	var errOut bytes.Buffer
	code := run(context.Background(), []string{"wps", "127.0.0.1", p.port, "w"}, strings.NewReader(""), tty, &errOut)
	if got := out(); code != 0 || got != `load caf\xc3` {
		t.Fatalf("exit %d, terminal got %q, stderr %q", code, got, errOut.String())
	}
}
