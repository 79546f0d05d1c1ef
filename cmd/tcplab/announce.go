package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tcplab/tcplab/internal/safetext"
	"github.com/tcplab/tcplab/internal/server"
)

// serverOut is what a server prints on standard output besides its logs:
// the tutorial's lines as text, or with --json one JSON object a line
// (docs/json.md): "listening" with the port it got, "client" for each
// "client is at ADDR", strsvr's "final" v, and "end" with "ok" and
// "error".
type serverOut struct {
	w    io.Writer
	json bool
}

// addJSONFlag adds the servers' --json.
func addJSONFlag(fs *flagSet) *bool {
	return fs.Bool("json", false, "write standard output as JSON lines (docs/json.md): the port listened on, each client, the end")
}

// listening says where the server listens: with --json always; as text
// only for tms and svr on PORT 0 ("listening on port 41234": the port the
// kernel chose, which a reader needs to connect, on standard output with
// the "client is at" lines), so the tutorial's output is unchanged for a
// port given. strsvr's standard output is its final v alone, as
// strsvr.py's: its port is in its log, and with --json here. facts are
// added to the JSON object, as name, value pairs.
func (o serverOut) listening(cmd string, sock server.Socket, ln net.Listener, facts ...any) {
	port := 0
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		port = a.Port
	}
	if !o.json {
		if sock.Port == 0 && sock.Activated == nil && cmd != "strsvr" {
			fmt.Fprintf(o.w, "listening on port %d\n", port)
		}
		return
	}
	ev := map[string]any{"event": "listening", "command": cmd, "addr": ln.Addr().String(), "port": port, "socket_activated": sock.Activated != nil}
	for i := 0; i+1 < len(facts); i += 2 {
		ev[facts[i].(string)] = facts[i+1]
	}
	o.event(ev)
}

func (o serverOut) event(ev map[string]any) {
	b, _ := json.Marshal(ev)
	o.w.Write(append(b, '\n'))
}

// clientLog is where the tutorial's "client is at ADDR" lines go.
func (o serverOut) clientLog() io.Writer {
	if !o.json {
		return o.w
	}
	return clientEvents{o}
}

// clientEvents turns "client is at ADDR" lines into "client" events.
type clientEvents struct{ o serverOut }

// LinesHeldBack writes the log limit's count of "client is at" lines
// held back (server.LimitHandler.Lines) as a "clients_not_shown" event.
func (c clientEvents) LinesHeldBack(_ string, n int, in time.Duration) {
	c.o.event(map[string]any{"event": "clients_not_shown", "count": n, "in_seconds": in.Seconds()})
}

func (c clientEvents) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if addr, ok := strings.CutPrefix(line, "client is at "); ok {
			c.o.event(map[string]any{"event": "client", "addr": addr})
		}
	}
	return len(p), nil
}

// end writes the "end" event: ok, or the error line a failure prints on
// standard error (a usage error never gets here: nothing started), and
// the signal that stopped the server, if one did.
func (o serverOut) end(ctx context.Context, err error) {
	if !o.json {
		return
	}
	ev := map[string]any{"event": "end", "ok": err == nil}
	if err != nil {
		ev["error"] = safetext.OneLine(err.Error())
	}
	var sig stopSignal
	if errors.As(context.Cause(ctx), &sig) {
		ev["stopped_by"] = signalName(sig.sig)
	}
	o.event(ev)
}

// final writes strsvr's final v: "the final value of v is V", as
// strsvr.py, or the "final" event, with v_base64 as well when v is not
// UTF-8 (JSON strings are, and would change its bytes).
//
// v is clients' bytes: on the operator's terminal it is escaped (see
// terminalSafe and terminalJSON); through a pipe it is printed unchanged,
// as strsvr.py prints it.
func (o serverOut) final(v []byte) error {
	if !o.json {
		out := terminalSafe(o.w)
		_, err := fmt.Fprintf(out, "the final value of v is %s\n", v)
		if ferr := flushTerminal(out); err == nil {
			err = ferr
		}
		return err
	}
	ev := map[string]any{"event": "final", "v": string(v), "bytes": len(v)}
	if !utf8.Valid(v) {
		ev["v_base64"] = base64.StdEncoding.EncodeToString(v)
	}
	b, _ := json.Marshal(ev)
	return terminalJSON(o.w, append(b, '\n'))
}
