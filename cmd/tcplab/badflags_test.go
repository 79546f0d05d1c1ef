package main

import (
	"strings"
	"testing"
)

// Every bad value exits 2 with one line that names the one flag (or
// argument) that is wrong, before anything is listened on or dialled.
// The port numbers are never used: the value is refused first.
func TestEveryBadFlagNamesItself(t *testing.T) {
	cases := []struct {
		args []string
		name string // what the line must name
	}{
		{[]string{"tms", "--copies", "0", "2000"}, "--copies"},
		{[]string{"tms", "--copies", "9223372036854775807", "2000"}, "--copies"},
		{[]string{"tms", "--copies", "9223372036855", "2000"}, "--copies"},
		{[]string{"tms", "--copies", "many", "2000"}, "--copies"},
		{[]string{"tms", "--max-conns", "0", "2000"}, "--max-conns"},
		{[]string{"tms", "--gap", "-1s", "2000"}, "--gap"},
		{[]string{"tms", "--read-timeout", "-1s", "2000"}, "--read-timeout"},
		{[]string{"tms", "--write-timeout", "soon", "2000"}, "--write-timeout"},
		{[]string{"tms", "--grace", "-1s", "--keep", "2000"}, "--grace"},
		{[]string{"tms", "--log-format", "xml", "2000"}, "--log-format"},
		{[]string{"tms", "70000"}, "port"},

		{[]string{"tmc", "localhost", "0", "abc"}, "port"},
		{[]string{"tmc", "localhost", "abc", "abc"}, "port"},
		{[]string{"tmc", "--read-size", "0", "localhost", "2000", "abc"}, "--read-size"},
		{[]string{"tmc", "--timeout", "-1s", "localhost", "2000", "abc"}, "--timeout"},
		{[]string{"tmc", "--plot", "chunks.txt", "localhost", "2000", "abc"}, "plot"},
		{[]string{"tmc", "localhost", "2000", ""}, "STRING"},
		{[]string{"tmc", "localhost", "2000", "a\nb"}, "STRING"},
		{[]string{"tmc", "[::1]:2000", "2000", "abc"}, "HOST"},
		{[]string{"tmc", "localhost:2000", "2000", "abc"}, "HOST"},
		{[]string{"tmc", "", "2000", "abc"}, "HOST"}, // dialled this machine
		{[]string{"tmc", "[::1", "2000", "abc"}, "HOST"},

		{[]string{"svr", "--rate", "-1", "2000"}, "--rate"},
		{[]string{"svr", "--rate", "NaN", "2000"}, "--rate"},
		{[]string{"svr", "--burst", "0", "2000"}, "--burst"},
		{[]string{"svr", "--max-conns", "0", "2000"}, "--max-conns"},
		{[]string{"svr", "--max-output", "0", "2000"}, "--max-output"},
		{[]string{"svr", "--metrics", "localhost", "2000"}, "--metrics"},
		{[]string{"svr", "--metrics", ":bad", "2000"}, "--metrics"},
		{[]string{"svr", "--metrics", "127.0.0.1:99999", "2000"}, "--metrics"},
		{[]string{"svr", "--commands", "w,bogus", "2000"}, "--commands"},
		{[]string{"svr", "--allow", "999.0.0.0/8", "2000"}, "--allow"},
		{[]string{"svr", "--fresh", "-5s", "2000"}, "--fresh"},
		{[]string{"svr", "--grace", "-1s", "2000"}, "--grace"},
		{[]string{"svr", "--log-format", "xml", "2000"}, "--log-format"},

		{[]string{"wps", "localhost", "0", "w"}, "port"},
		{[]string{"wps", "--timeout", "-1s", "localhost", "2000", "w"}, "--timeout"},
		{[]string{"wps", "--hosts", "::1:2000", "w"}, "--hosts"},
		{[]string{"wps", "--hosts", "web1:0", "w"}, "--hosts"},
		{[]string{"wps", "localhost", "2000", ""}, "COMMAND"},
		{[]string{"wps", "[::1]:2000", "2000", "w"}, "HOST"},
		{[]string{"wps", "", "2000", "w"}, "HOST"},

		{[]string{"strsvr", "--clients", "-1", "2000"}, "--clients"},
		{[]string{"strsvr", "--max-conns", "0", "2000"}, "--max-conns"},
		{[]string{"strsvr", "--max-watchers", "0", "2000"}, "--max-watchers"},
		{[]string{"strsvr", "--max-value", "0", "2000"}, "--max-value"},
		{[]string{"strsvr", "--write-timeout", "0s", "2000"}, "--write-timeout"},
		{[]string{"strsvr", "--fsync", "never", "--data", "v.log", "2000"}, "fsync"},
		{[]string{"strsvr", "--fsync-interval", "0s", "2000"}, "--fsync-interval"},
		{[]string{"strsvr", "--log-format", "xml", "2000"}, "--log-format"},

		{[]string{"strclnt", "localhost", "0"}, "port"},
		{[]string{"strclnt", "[::1]:2000", "2000"}, "HOST"},
		{[]string{"strclnt", "", "2000"}, "HOST"},
		{[]string{"strclnt", "--timeout", "0s", "localhost", "2000"}, "--timeout"},
		{[]string{"strclnt", "--probe-timeout", "0s", "localhost", "2000"}, "--probe-timeout"},
		{[]string{"strclnt", "--max-value", "0", "localhost", "2000"}, "--max-value"},
		{[]string{"strclnt", "--classic", "--watch", "localhost", "2000"}, "--classic"},

		{[]string{"tmc", "--json-stream", "--interval", "-1s", "localhost", "2000", "abc"}, "--interval"},
		{[]string{"tmc", "--json-stream", "--interval", "0s", "localhost", "2000", "abc"}, "--interval"},
		{[]string{"tmc", "--interval", "2s", "localhost", "2000", "abc"}, "--interval"},
		{[]string{"tmc", "--json", "--json-stream", "localhost", "2000", "abc"}, "--json-stream"},
		{[]string{"tmc", "--timeout", "1", "localhost", "2000", "abc"}, "--timeout"},
		{[]string{"strclnt", "--json", "--watch", "localhost", "2000"}, "--json"},
		{[]string{"wps", "--hosts", "a:1", "--hosts", "b:1", "w"}, "--hosts"},
		{[]string{"demo", "nosuchlesson"}, "nosuchlesson"},
		{[]string{"completion", "tcsh"}, "tcsh"},
		{[]string{"man", "nosuch"}, "nosuch"},
		{[]string{"man", "--dir", "x", "tmc"}, "--dir"},
	}
	others := []string{"--rate", "--burst", "--max-conns", "--max-output", "--copies", "--timeout"}
	for _, tc := range cases {
		code, out, errOut := runCmd(t, "", tc.args...)
		line := strings.TrimSuffix(errOut, "\n")
		switch {
		case code != exitUsage:
			t.Errorf("%q: exit %d, want 2; stderr %q", tc.args, code, errOut)
		case out != "" || strings.Contains(line, "\n"):
			t.Errorf("%q: want one line on stderr only; stdout %q stderr %q", tc.args, out, errOut)
		case !strings.HasPrefix(line, "tcplab "+tc.args[0]+": ") || !strings.Contains(line, tc.name):
			t.Errorf("%q: %q does not name %s", tc.args, line, tc.name)
		}
		for _, o := range others {
			if o != tc.name && !strings.Contains(strings.Join(tc.args, " "), o) && strings.Contains(line, o+" ") {
				t.Errorf("%q: %q names %s too", tc.args, line, o)
			}
		}
	}
}

// With two bad flags, the one line names the flag it always named: the
// order of strsvr's checks is part of its output. Before the store's
// flags moved into storePlace.check, --log-format was checked before the
// --store and --data pair, and --fsync-interval and --fsync before
// --log-format.
func TestStrsvrTwoBadFlagsNameTheFirst(t *testing.T) {
	cases := []struct {
		args []string
		name string
	}{
		{[]string{"strsvr", "--log-format", "xml", "--store", "bogus", "2000"}, "--log-format"},
		{[]string{"strsvr", "--log-format", "xml", "--store", "redis://x", "--data", "v.log", "2000"}, "--log-format"},
		{[]string{"strsvr", "--log-format", "xml", "--fsync", "never", "2000"}, "fsync"},
		{[]string{"strsvr", "--log-format", "xml", "--fsync-interval", "0s", "2000"}, "--fsync-interval"},
	}
	for _, tc := range cases {
		code, _, errOut := runCmd(t, "", tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.name) {
			t.Errorf("%q: exit %d, %q; want exit 2 naming %s", tc.args, code, errOut, tc.name)
		}
	}
}
