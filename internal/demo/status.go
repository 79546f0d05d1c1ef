package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/tcplab/tcplab/internal/safetext"
	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/status"
	"github.com/tcplab/tcplab/status/fleet"
)

// lessonStatus runs the tutorial's second pair, svr and wps (package status):
// w and ps over the wire, read as lines until the server closes, and the
// allow-list that turns away everything else, rm and shell tricks included.
var lessonStatus = Lesson{
	Name:    "status",
	Title:   "w and ps over the wire, and an allow-list that refuses rm",
	Section: "5.2",
	Run:     runStatus,
}

// statusObservations is what the status lesson measured.
type statusObservations struct {
	// Answers maps each name the client sent to the server's answer.
	Answers map[string]string
	// Lines counts the answer's lines for each name.
	Lines map[string]int
	// ClientLog is what the server printed, the tutorial's "client is at".
	ClientLog []string
}

// Summary implements Observations.
func (o *statusObservations) Summary() string {
	return fmt.Sprintf("w: %d lines, ps: %d lines; rm: %s",
		o.Lines["w"], o.Lines["ps"], strings.TrimSpace(o.Answers["rm"]))
}

// statusAsks are the names the lesson's client sends: the tutorial's two,
// then what the allow-list is there to refuse.
var statusAsks = []string{"w", "ps", "rm", "w; rm -rf ~"}

func runStatus(ctx context.Context, w io.Writer, _ Options) (Observations, error) {
	ctx, cancel := context.WithTimeout(ctx, lessonTimeout)
	defer cancel()
	p := &page{w: w}
	obs := &statusObservations{Answers: map[string]string{}, Lines: map[string]int{}}

	p.tutorial("svr.py runs the command a client names, through popen, and wps.py reads the lines until")
	p.tutorial("the server closes; \"imagine the security problems if the server ran any command\" (5.2).")
	allow, err := status.NewAllowList(status.DefaultCommands, false)
	if err != nil {
		return nil, err
	}
	ln, err := listenLoopback(ctx)
	if err != nil {
		return nil, err
	}
	var logMu sync.Mutex
	var clientLog bytes.Buffer
	svc := &status.Service{Allow: allow, Runner: &status.Runner{}, ClientLog: lockedWriter{&logMu, &clientLog}}
	srv := &server.Server{Handler: svc}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		<-served
	}()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	p.do("serve w and ps (allow-list: %s) on %s; wps asks for %s.", allow, ln.Addr(), quoteAll(statusAsks))

	for _, name := range statusAsks {
		var answer bytes.Buffer
		if _, err := fleet.Ask(ctx, host, port, name, &answer, fleet.Options{}); err != nil {
			return nil, fmt.Errorf("wps %s: %w", name, err)
		}
		obs.Answers[name] = answer.String()
		obs.Lines[name] = strings.Count(answer.String(), "\n")
		first, _, _ := strings.Cut(answer.String(), "\n")
		if r := []rune(first); len(r) > 90 {
			first = string(r[:87]) + "..." // whole characters
		}
		first = safetext.Line(first) // a server's answer: outside text
		p.saw("%-13s -> %-9s first: %s", strconv.Quote(name), count(obs.Lines[name], "line")+";", first)
	}
	logMu.Lock()
	obs.ClientLog = strings.Split(strings.TrimSpace(clientLog.String()), "\n")
	logMu.Unlock()
	p.saw("the server printed %q and %d more.", obs.ClientLog[0], len(obs.ClientLog)-1)
	p.note("the client's bytes are only compared with the allow-list; what runs is a fixed argument list,")
	p.note("never a shell (os/exec, not popen). By hand: tcplab svr 2000, then tcplab wps localhost 2000 w.")
	return obs, p.err()
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
