package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/safetext"
)

// strclnt shows v safely: on a terminal a peer's escape sequences are
// printed as text; through a pipe the bytes pass unchanged, for scripts.
func TestStrClntEscapesControlsOnATerminalOnly(t *testing.T) {
	const hostile = "x\x1b]0;pwned\x07\x1b[2J\r\u202ea" // ends with the letter sent, as a classic reply must
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
	if strings.ContainsAny(got, rawControls) || !strings.Contains(got, `x\x1b]0;pwned\x07\x1b[2J\r\u202ea`) {
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

// hostileText is a peer's answer that tries everything on a terminal: a
// window title, a screen clear, an OSC 52 clipboard write, a carriage
// return, DEL, the one-character CSI U+009B, and a right-to-left override.
const hostileText = "x\x1b]0;pwned\x07\x1b[2J\x1b]52;c;cHduZWQ=\x07\rdel\x7f csi\u009b31m rlo\u202etxt.exe"

// rawControls are the characters none of which may reach a terminal from
// hostileText.
const rawControls = "\x1b\x07\x7f\u009b\u202e"

// wps --json on a terminal: encoding/json escapes C0 but passes DEL, C1
// and U+202E raw. Before, all three reached the terminal; now they are
// JSON escapes, and the output is still JSON with the same value.
func TestWPSJSONEscapesControlsOnATerminal(t *testing.T) {
	p := startPeer(t, func(c net.Conn, p *peer) {
		c.Read(make([]byte, 64))
		c.Write([]byte(hostileText))
		c.Close()
	})
	tty, out, _ := openTerminal(t)
	var errOut bytes.Buffer
	code := run(context.Background(), []string{"wps", "--json", "127.0.0.1", p.port, "w"}, strings.NewReader(""), tty, &errOut)
	got := out()
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if strings.ContainsAny(got, rawControls) {
		t.Fatalf("terminal got a raw control: %q", got)
	}
	var a struct{ Output string }
	if err := json.Unmarshal([]byte(strings.ReplaceAll(got, "\r\n", "\n")), &a); err != nil || a.Output != hostileText {
		t.Fatalf("not the answer as JSON (%v): %q", err, got)
	}
}

// strsvr's final v is printed on the operator's terminal: a client's
// escape sequences in v reached it raw before (window title, screen
// clear, OSC 52). Through a pipe v is printed as it is, as strsvr.py
// prints it.
func TestStrsvrFinalValueEscapedOnATerminal(t *testing.T) {
	tty, out, _ := openTerminal(t)
	p := startInProcess(t, tty, "strsvr", "--no-discovery", "0")
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte(hostileText))
	// The server answers with v after each append: read until the whole
	// of it has come back, then leave, which ends the server.
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.HasSuffix(got, []byte(hostileText)) {
		c.SetReadDeadline(time.Now().Add(eventWait))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read v: %v (so far %q)", err, got)
		}
		got = append(got, buf[:n]...)
	}
	c.Close()
	select {
	case <-p.exited:
	case <-time.After(eventWait):
		t.Fatalf("strsvr did not end with its last client: %s", p.Stderr.String())
	}
	if code := <-p.code; code != 0 {
		t.Fatalf("exit %d: %s", code, p.Stderr.String())
	}
	p.code = nil
	shown := out()
	if strings.ContainsAny(shown, rawControls) || !strings.Contains(shown, "the final value of v is x\\x1b]0;pwned\\x07") {
		t.Fatalf("terminal got %q", shown)
	}
}

// The one line of an error may quote a peer (a server's words, a
// certificate's names): it is one line and shows no control raw.
func TestOneLineEscapes(t *testing.T) {
	if got, want := safetext.OneLine("read from h:1: bad\x1b[2J\nname\u202e"), `read from h:1: bad\x1b[2J name\u202e`; got != want {
		t.Fatalf("oneLine = %q, want %q", got, want)
	}
}

// strclnt --json on a terminal: v is other clients' bytes, and its DEL,
// C1 and U+202E were raw in the JSON (encoding/json leaves them).
func TestStrClntJSONEscapesControlsOnATerminal(t *testing.T) {
	const hostile = "del\x7f csi\u009b rlo\u202ea" // ends with the letter sent, as a classic reply must
	p := startPeer(t, func(c net.Conn, p *peer) {
		c.Read(make([]byte, 1))
		c.Write([]byte(hostile))
	})
	tty, out, _ := openTerminal(t)
	var errOut bytes.Buffer
	code := run(context.Background(), []string{"strclnt", "--json", "--classic", "127.0.0.1", p.port}, strings.NewReader("a\n"), tty, &errOut)
	got := out()
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var rep struct{ V string }
	if strings.ContainsAny(got, rawControls) || json.Unmarshal([]byte(got), &rep) != nil || rep.V != hostile {
		t.Fatalf("terminal got %q", got)
	}
}
