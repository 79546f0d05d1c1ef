package status

import (
	"bytes"
	"cmp"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func mustAllow(t testing.TB, names ...string) *AllowList {
	t.Helper()
	al, err := NewAllowList(names, false)
	if err != nil {
		t.Fatal(err)
	}
	return al
}

func TestParseRequest(t *testing.T) {
	al := mustAllow(t, "w", "ps")
	for _, tc := range []struct {
		raw     string
		command string // "" for a refusal
		refusal string
	}{
		{"ps", "ps", ""},
		{"w", "w", ""},
		{"ps\n", "ps", ""},
		{"ps\r\n", "ps", ""},
		{"w\nrm -rf /", "w", ""}, // what follows the name is never looked at
		{"xy", "", `unknown command "xy"; allowed: ps, w` + "\n"},
		{"rm", "", `unknown command "rm"; allowed: ps, w` + "\n"},
		{"w;id", "", `unknown command "w;id"; allowed: ps, w` + "\n"},
		{"ps -ef", "", `unknown command "ps -ef"; allowed: ps, w` + "\n"},
		{"$(id)", "", `unknown command "$(id)"; allowed: ps, w` + "\n"},
		{"`id`", "", "unknown command \"`id`\"; allowed: ps, w\n"},
		{"p\x00s", "", `unknown command "p\x00s"; allowed: ps, w` + "\n"},
		{"ps\r", "", `unknown command "ps\r"; allowed: ps, w` + "\n"},
		{"PS", "", `unknown command "PS"; allowed: ps, w` + "\n"},
		{" ps", "", `unknown command " ps"; allowed: ps, w` + "\n"},
		{"uptime", "", `unknown command "uptime"; allowed: ps, w` + "\n"}, // built in, not allowed here
		{"", "", `unknown command ""; allowed: ps, w` + "\n"},
		{strings.Repeat("a", 65), "", "request too long (over 64 bytes); allowed: ps, w\n"},
	} {
		req := parseRequest([]byte(tc.raw), al)
		got := ""
		if req.Command != nil {
			got = req.Command.Name()
		}
		if got != tc.command {
			t.Errorf("parseRequest(%q) command %q, want %q", tc.raw, got, tc.command)
		}
		if r := req.Refusal(al); r != tc.refusal {
			t.Errorf("parseRequest(%q) refusal %q, want %q", tc.raw, r, tc.refusal)
		}
	}
}

// Rule 2 of the wire format answers as soon as the bytes are an allowed
// name; that is sound only if no name is a prefix of another.
func TestBuiltinNamesPrefixFree(t *testing.T) {
	names := BuiltinNames()
	for _, a := range names {
		for _, b := range names {
			if a != b && strings.HasPrefix(b, a) {
				t.Errorf("built-in %q is a prefix of %q", a, b)
			}
		}
	}
}

func TestNewAllowList(t *testing.T) {
	al := mustAllow(t, "w", "ps", "w", " json ")
	if got := al.String(); got != "json, ps, w" {
		t.Errorf("allow-list %q", got)
	}
	if _, err := NewAllowList([]string{"w", "sh"}, false); err == nil || !strings.Contains(err.Error(), `unknown command "sh"`) {
		t.Errorf("sh accepted: %v", err)
	}
	var zero *AllowList
	if zero.Lookup([]byte("w")) != nil || zero.String() != "" {
		t.Error("nil allow-list allows something")
	}
	nat, err := NewAllowList([]string{"ps"}, true)
	if err != nil || nat.Lookup([]byte("ps")).path != "" {
		t.Errorf("native allow-list runs a program: %v", err)
	}
}

// FuzzParseRequest feeds arbitrary bytes to the parser: it must never panic,
// select only an allowed entry and only for exactly its name, and refuse in
// one line.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"ps", "w", "w\n", "ps\r\n", "w;id", "$(id)", "`id`", "\x00", "ps -ef", strings.Repeat("x", 100), "json", "\r\n"} {
		f.Add([]byte(s))
	}
	al := mustAllow(f, "w", "ps", "json", "uptime")
	f.Fuzz(func(t *testing.T, raw []byte) {
		req := parseRequest(raw, al)
		name := raw
		if i := bytes.IndexByte(name, '\n'); i >= 0 {
			name = bytes.TrimSuffix(name[:i], []byte{'\r'})
		}
		if req.Command != nil {
			if req.Command.Name() != string(name) {
				t.Fatalf("%q selected %q", raw, req.Command.Name())
			}
			if req.Refusal(al) != "" {
				t.Fatalf("%q allowed and refused", raw)
			}
			return
		}
		if al.Lookup(name) != nil && len(name) <= MaxRequest {
			t.Fatalf("%q refused but %q is allowed", raw, name)
		}
		r := req.Refusal(al)
		if strings.Count(r, "\n") != 1 || !strings.HasSuffix(r, "\n") || len(r) > 400 {
			t.Fatalf("refusal for %q is not one bounded line: %q", raw, r)
		}
		if len(req.Name) > MaxRequest {
			t.Fatalf("kept %d bytes of the name", len(req.Name))
		}
	})
}

// readPair gives readRequest the server side of a loopback connection and
// the test the client side.
func readPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return s.(*net.TCPConn), c.(*net.TCPConn)
}

func TestReadRequestRules(t *testing.T) {
	al := mustAllow(t, "w", "ps")
	const quiet = 300 * time.Millisecond
	for _, tc := range []struct {
		name      string
		send      []string // written with a pause of 2×quiet between parts... see gap
		gap       time.Duration
		halfClose bool
		quiet     time.Duration // the quiet gap, if not quiet
		want      string
		wantErr   bool
		fast      bool // answered well before the quiet gap
	}{
		{name: "bare allowed name (rule 2)", send: []string{"ps"}, want: "ps", fast: true},
		{name: "newline (rule 1)", send: []string{"xy\n"}, want: "xy\n", fast: true},
		// A gap of 3 s: the second part, 75 ms later, came after the 300 ms
		// gap on a loaded machine (-race -count=10 beside a benchmark:
		// got "p"). A whole allowed name is answered at once, so the test
		// takes no longer for it.
		{name: "name in two parts", send: []string{"p", "s"}, gap: quiet / 4, quiet: 3 * time.Second, want: "ps"},
		{name: "unknown, quiet gap (rule 4)", send: []string{"xy"}, want: "xy"},
		{name: "half-close (rule 3)", send: []string{"xy"}, halfClose: true, want: "xy", fast: true},
		{name: "too long (rule 5)", send: []string{strings.Repeat("z", 100)}, want: strings.Repeat("z", MaxRequest+1), fast: true},
		{name: "nothing, then close", halfClose: true, wantErr: true},
		{name: "slow bytes: first byte then gap", send: []string{"w", ";id"}, gap: 3 * quiet, want: "w", fast: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c := readPair(t)
			wrote := make(chan struct{})
			t.Cleanup(func() { <-wrote }) // the writer ends with the test (goleak)
			go func() {
				defer close(wrote)
				for i, p := range tc.send {
					if i > 0 {
						time.Sleep(tc.gap) // the point: a client that pauses between writes
					}
					c.Write([]byte(p))
				}
				if tc.halfClose {
					c.CloseWrite()
				}
			}()
			start := time.Now()
			got, err := readRequest(context.Background(), s, al, 5*time.Second, cmp.Or(tc.quiet, quiet), time.Time{})
			took := time.Since(start)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
			if tc.fast && took >= quiet {
				t.Errorf("took %s, want the answer before the quiet gap", took)
			}
		})
	}
}

func TestReadRequestTimeout(t *testing.T) {
	s, _ := readPair(t)
	start := time.Now()
	if got, err := readRequest(context.Background(), s, mustAllow(t, "w"), 200*time.Millisecond, 50*time.Millisecond, time.Time{}); err == nil {
		t.Fatalf("got %q from a silent client", got)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("silent client held the reader %s", took)
	}
}
