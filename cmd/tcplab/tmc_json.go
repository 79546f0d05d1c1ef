package main

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcplab/tcplab/internal/safetext"
	"github.com/tcplab/tcplab/multicopy"
)

// tmcReport is tmc's JSON report (--json, and --json-stream's "end"); its
// schema is documented in docs/json.md and kept stable for scripts.
type tmcReport struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"` // the line on standard error, without "tcplab tmc: "

	Host           string `json:"host"`
	Port           int    `json:"port"`
	StringBytes    int    `json:"string_bytes"`
	CopiesExpected int64  `json:"copies_expected"`          // 0: any whole number
	BytesExpected  int64  `json:"bytes_expected,omitempty"` // copies × string bytes; absent if unknown

	transferSummary
}

// transferSummary is what arrived.
type transferSummary struct {
	Bytes       int64 `json:"bytes"`
	Chunks      int64 `json:"chunks"`
	MinChunk    int   `json:"min_chunk"`
	MedianChunk int   `json:"median_chunk"`
	MaxChunk    int   `json:"max_chunk"`
	// Seconds is from the first byte to the end of file, and
	// BytesPerSecond is Bytes / Seconds: null for an answer in fewer
	// than two reads, which has no transfer to time.
	Seconds        float64  `json:"seconds"`
	BytesPerSecond *float64 `json:"bytes_per_second"`
	WaitSeconds    float64  `json:"wait_seconds"` // message sent to first byte
}

func summarize(res *multicopy.Result) transferSummary {
	s := transferSummary{
		Bytes:       res.Stats.Total(),
		Chunks:      res.Stats.Count(),
		MinChunk:    res.Stats.Min(),
		MedianChunk: res.Stats.Median(),
		MaxChunk:    res.Stats.Max(),
		Seconds:     res.Transfer.Seconds(),
		WaitSeconds: res.Wait.Seconds(),
	}
	if s.Chunks > 1 && s.Seconds > 0 {
		bps := float64(s.Bytes) / s.Seconds
		s.BytesPerSecond = &bps
	}
	return s
}

func (r *tmcReport) fill(res *multicopy.Result) { r.transferSummary = summarize(res) }

// print writes the report, as one object (--json) or as the "end" event
// (--json-stream), with err's line in "error". A stop by a signal says
// which.
func (r *tmcReport) print(ctx context.Context, w io.Writer, stream bool, err error) error {
	r.OK = err == nil
	if err != nil {
		r.Error = safetext.OneLine(err.Error())
		if ctx.Err() != nil {
			r.Error = context.Cause(ctx).Error()
		}
	}
	if stream {
		return writeEvent(w, "end", r)
	}
	return json.NewEncoder(w).Encode(r)
}

// writeEvent writes one --json-stream line, {"event": ..., "data": ...},
// the shape of iperf3's.
func writeEvent(w io.Writer, event string, data any) error {
	return json.NewEncoder(w).Encode(struct {
		Event string `json:"event"`
		Data  any    `json:"data"`
	}{event, data})
}

// tmcInterval is one --json-stream "interval": the bytes that arrived in
// it, and the transfer so far.
type tmcInterval struct {
	Start          float64  `json:"start"` // seconds since the connection, as the end
	End            float64  `json:"end"`
	Bytes          int64    `json:"bytes"`
	BytesPerSecond float64  `json:"bytes_per_second"`
	TotalBytes     int64    `json:"total_bytes"`
	BytesExpected  int64    `json:"bytes_expected,omitempty"`
	Percent        *float64 `json:"percent,omitempty"` // of bytes_expected, when known
}

// streamIntervals writes the "start" event now and an "interval" every
// every until the returned stop, which writes the last, partial interval
// (if bytes came in it) and returns once nothing more will be written.
func streamIntervals(w io.Writer, rep *tmcReport, received *atomic.Int64, every time.Duration) (stop func()) {
	start := time.Now()
	writeEvent(w, "start", struct {
		Host           string `json:"host"`
		Port           int    `json:"port"`
		StringBytes    int    `json:"string_bytes"`
		CopiesExpected int64  `json:"copies_expected"`
		BytesExpected  int64  `json:"bytes_expected,omitempty"`
	}{rep.Host, rep.Port, rep.StringBytes, rep.CopiesExpected, rep.BytesExpected})
	var last int64
	from := start
	emit := func(now time.Time) {
		n := received.Load()
		iv := tmcInterval{Start: from.Sub(start).Seconds(), End: now.Sub(start).Seconds(), Bytes: n - last,
			TotalBytes: n, BytesExpected: rep.BytesExpected}
		if d := now.Sub(from).Seconds(); d > 0 {
			iv.BytesPerSecond = float64(iv.Bytes) / d
		}
		if rep.BytesExpected > 0 {
			pct := 100 * float64(n) / float64(rep.BytesExpected)
			iv.Percent = &pct
		}
		writeEvent(w, "interval", iv)
		last, from = n, now
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case now := <-tick.C:
				emit(now)
			case <-done:
				if received.Load() > last {
					emit(time.Now())
				}
				return
			}
		}
	})
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}
