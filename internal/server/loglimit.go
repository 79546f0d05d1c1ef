package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// Defaults of LogLimit.
const (
	DefaultLogBurst = 10
	DefaultLogEvery = 10 * time.Second
)

// LogLimit bounds the log lines an attack can cost: of the records of one
// kind (the same level and message: "client is at", "client refused",
// "refusing connections"), at most Burst pass in each interval of Every;
// the rest are counted, and when the interval ends one record says how
// many there were:
//
//	level=INFO msg="client refused … and 14,452 more like it in the last 10s" suppressed=14452
//
// So a flood of any size costs each kind at most Burst+1 lines per Every
// (1.1 lines a second by default), while a server at ordinary load logs
// every record: the first Burst of a kind in an interval pass at once.
// The zero values mean DefaultLogBurst and DefaultLogEvery. Metrics, not
// logs, keep exact counts.
type LogLimit struct {
	Burst int
	Every time.Duration
}

// LimitHandler is a slog.Handler that passes records on to another under
// a LogLimit. Handlers derived from it (WithAttrs, WithGroup) share its
// count. Flush writes the counts of intervals still open; every server
// flushes when it stops (see Output.OnClose).
type LimitHandler struct {
	next  slog.Handler
	state *limitState
}

// limitState is shared by a LimitHandler, the handlers derived from it and
// its Lines writers.
type limitState struct {
	burst int
	every time.Duration
	mu    sync.Mutex
	kinds map[string]*kindWindow
}

// maxKinds bounds the kinds remembered at once.
const maxKinds = 1024

// kindWindow is one kind's current interval.
type kindWindow struct {
	start      time.Time
	passed     int
	suppressed int
	timer      *time.Timer
	summary    func(n int, in time.Duration) // writes the closing line
}

// NewLimitHandler passes records on to next under lim.
func NewLimitHandler(next slog.Handler, lim LogLimit) *LimitHandler {
	st := &limitState{burst: lim.Burst, every: lim.Every, kinds: make(map[string]*kindWindow)}
	if st.burst <= 0 {
		st.burst = DefaultLogBurst
	}
	if st.every <= 0 {
		st.every = DefaultLogEvery
	}
	return &LimitHandler{next: next, state: st}
}

// Enabled reports whether the handler beneath takes records at level.
func (h *LimitHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle passes r on, or counts it if its kind is over the limit.
func (h *LimitHandler) Handle(ctx context.Context, r slog.Record) error {
	next := h.next
	pass := h.state.admit(r.Level.String()+" "+r.Message, func(n int, in time.Duration) {
		s := slog.NewRecord(time.Now(), r.Level, r.Message+" "+moreLikeIt(n, in), 0)
		s.AddAttrs(slog.Int("suppressed", n))
		next.Handle(context.Background(), s)
	})
	if !pass {
		return nil
	}
	return next.Handle(ctx, r)
}

// WithAttrs is the handler beneath's, under the same limit.
func (h *LimitHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &LimitHandler{next: h.next.WithAttrs(attrs), state: h.state}
}

// WithGroup is the handler beneath's, under the same limit.
func (h *LimitHandler) WithGroup(name string) slog.Handler {
	return &LimitHandler{next: h.next.WithGroup(name), state: h.state}
}

// Lines returns a writer to w whose every write is one line of the given
// kind (svr's "client is at ADDR"), under the same limit: past the limit
// lines are counted, and the interval ends with
// "KIND … and N more like it in the last 10s".
func (h *LimitHandler) Lines(w io.Writer, kind string) io.Writer {
	if o, ok := w.(*Output); ok {
		o.OnClose(h.Flush)
	}
	return &limitedLines{w: w, kind: kind, state: h.state}
}

type limitedLines struct {
	w     io.Writer
	kind  string
	state *limitState
}

// LinesCounter is implemented by a writer given to Lines that says for
// itself how many lines were held back (svr --json writes an event of
// its own), instead of the line "KIND … and N more like it".
type LinesCounter interface {
	LinesHeldBack(kind string, n int, in time.Duration)
}

func (l *limitedLines) Write(p []byte) (int, error) {
	pass := l.state.admit("lines "+l.kind, func(n int, in time.Duration) {
		if c, ok := l.w.(LinesCounter); ok {
			c.LinesHeldBack(l.kind, n, in)
			return
		}
		io.WriteString(l.w, l.kind+" "+moreLikeIt(n, in)+"\n")
	})
	if !pass {
		return len(p), nil
	}
	return l.w.Write(p)
}

// Flush ends every interval now: each kind with records counted gets its
// closing line (with the time since its interval began), and the next
// record of any kind starts afresh.
func (h *LimitHandler) Flush() {
	st := h.state
	st.mu.Lock()
	var pending []func()
	now := time.Now()
	for k, w := range st.kinds {
		if w.timer != nil {
			w.timer.Stop()
		}
		if w.suppressed > 0 {
			n, in, f := w.suppressed, now.Sub(w.start), w.summary
			pending = append(pending, func() { f(n, in) })
		}
		delete(st.kinds, k)
	}
	st.mu.Unlock()
	for _, f := range pending {
		f()
	}
}

// admit reports whether a record of kind passes now. The first one
// counted in an interval arms a timer for the interval's end, which
// writes the count with summary.
func (st *limitState) admit(kind string, summary func(n int, in time.Duration)) bool {
	now := time.Now()
	st.mu.Lock()
	defer st.mu.Unlock()
	w := st.kinds[kind]
	if w == nil && len(st.kinds) >= maxKinds {
		// Kinds are messages, constants in the code; should they ever
		// carry outside text, forget the quiet ones rather than grow.
		for k, o := range st.kinds {
			if o.suppressed == 0 && now.Sub(o.start) >= st.every {
				delete(st.kinds, k)
			}
		}
		if len(st.kinds) >= maxKinds {
			return true
		}
	}
	if w == nil || (w.suppressed == 0 && now.Sub(w.start) >= st.every) {
		w = &kindWindow{start: now}
		st.kinds[kind] = w
	}
	if w.passed < st.burst {
		w.passed++
		return true
	}
	w.suppressed++
	w.summary = summary
	if w.suppressed == 1 {
		w.timer = time.AfterFunc(w.start.Add(st.every).Sub(now), func() { st.close(kind, w) })
	}
	return false
}

// close ends w's interval: its count is written and the kind starts
// afresh with its next record.
func (st *limitState) close(kind string, w *kindWindow) {
	st.mu.Lock()
	if st.kinds[kind] != w {
		st.mu.Unlock()
		return // flushed meanwhile
	}
	delete(st.kinds, kind)
	n, f := w.suppressed, w.summary
	st.mu.Unlock()
	f(n, st.every)
}

// moreLikeIt is the closing words of an interval: "… and 14,452 more
// like it in the last 10s".
func moreLikeIt(n int, in time.Duration) string {
	return fmt.Sprintf("… and %s more like it in the last %s", thousands(n), in.Round(time.Second/10))
}

// thousands writes n with a comma every three digits, as people read
// large counts.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
