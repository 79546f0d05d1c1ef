package seqplot

import (
	"cmp"
	"fmt"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/tcplab/tcplab/internal/capture"
	"github.com/tcplab/tcplab/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// randomTrace is a transfer of random segments, some sent again, with an
// ACK after some of them.
func randomTrace(seed uint64) *capture.Trace {
	r := rand.New(rand.NewPCG(seed, 1))
	t := &capture.Trace{Marks: []capture.Mark{{At: 0, FromSender: true, Flags: "S", Seq: -1}}}
	at := time.Duration(0)
	var next int64
	for n := 1 + r.IntN(300); len(t.Data) < n; {
		at += time.Duration(1+r.IntN(2000)) * time.Microsecond
		if next > 0 && r.IntN(8) == 0 {
			seq := r.Int64N(next)
			t.Data = append(t.Data, capture.DataSegment{At: at, Seq: seq, Bytes: 1 + r.IntN(1448), Retransmitted: true})
			continue
		}
		size := 1 + r.IntN(1448)
		t.Data = append(t.Data, capture.DataSegment{At: at, Seq: next, Bytes: size})
		next += int64(size)
		if r.IntN(2) == 0 {
			t.Acks = append(t.Acks, capture.AckPoint{At: at + time.Duration(r.IntN(500))*time.Microsecond, Ack: next, Window: int64(r.IntN(200_000))})
		}
	}
	return t
}

// paths counts the SVG's paths stroked in c.
func paths(svg []byte, c color.RGBA) int {
	hex := fmt.Sprintf("stroke:#%02x%02x%02x", c.R, c.G, c.B)
	n := 0
	for _, m := range regexp.MustCompile(`<path[^>]*style="([^"]*)"`).FindAllSubmatch(svg, -1) {
		if strings.Contains(strings.ToLower(string(m[1])), hex) {
			n++
		}
	}
	return n
}

// The picture holds one bar per data segment of the trace, blue for those
// sent once and red for those sent again (plus one of each in the legend),
// whatever the trace; a magnified panel draws only those in its window.
func TestGraphDrawsEverySegment(t *testing.T) {
	for seed := range uint64(15) {
		tr := randomTrace(seed)
		resent := tr.Retransmissions()
		path := filepath.Join(t.TempDir(), "g.svg")
		from, until := tr.Data[len(tr.Data)/3].At, tr.Data[2*len(tr.Data)/3].At
		drawn, err := Write(path, Panel{Title: "whole", Trace: tr}, Panel{Title: "part", Trace: tr, From: from, Until: until})
		if err != nil {
			t.Fatal(err)
		}
		svg, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		inPart, resentInPart := 0, 0
		for _, d := range tr.Data {
			if from <= d.At && d.At <= until {
				inPart++
				if d.Retransmitted {
					resentInPart++
				}
			}
		}
		if drawn[0].Segments != len(tr.Data) || drawn[0].Retransmissions != resent ||
			drawn[1].Segments != inPart || drawn[1].Retransmissions != resentInPart {
			t.Fatalf("seed %d: drew %+v; want %d segments (%d sent again), then %d (%d)", seed, drawn, len(tr.Data), resent, inPart, resentInPart)
		}
		legends := func(n int) int { // a legend entry per kind drawn, per panel
			if n > 0 {
				return 1
			}
			return 0
		}
		wantBlue := len(tr.Data) - resent + inPart - resentInPart + 2
		wantRed := resent + resentInPart + legends(resent) + legends(resentInPart)
		if got := paths(svg, DataColor); got != wantBlue {
			t.Errorf("seed %d: %d blue bars in the picture, want %d", seed, got, wantBlue)
		}
		if got := paths(svg, ResentColor); got != wantRed {
			t.Errorf("seed %d: %d red bars in the picture, want %d", seed, got, wantRed)
		}
	}
}

func TestWriteDrawsPNGAndRefusesOtherNames(t *testing.T) {
	dir := t.TempDir()
	png := filepath.Join(dir, "g.png")
	if _, err := Write(png, Panel{Trace: randomTrace(1)}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(png); err != nil || !strings.HasPrefix(string(b), "\x89PNG") {
		t.Errorf("%s is not a PNG: %v", png, err)
	}
	for _, bad := range []string{filepath.Join(dir, "g.txt"), filepath.Join(dir, "no", "g.png")} {
		if _, err := Write(bad, Panel{Trace: randomTrace(1)}); err == nil {
			t.Errorf("Write(%q) drew", bad)
		}
	}
}

// A graph that cannot be drawn whole is not left behind (a full disk used
// to leave a cut-off PNG), and a symlink at the name is replaced, not
// written through.
func TestWriteWholeOrNothing(t *testing.T) {
	full := testkit.SmallDisk(t, 16<<10)
	if _, err := Write(filepath.Join(full, "loss-seq.png"), Panel{Trace: randomTrace(3)}); err == nil {
		t.Fatal("the graph fitted on a 16 kB disk")
	}
	if es, _ := os.ReadDir(full); len(es) != 0 {
		t.Errorf("the full disk holds %s", es[0].Name())
	}
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "loss-seq.png")
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(path, Panel{Trace: randomTrace(3)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(victim); string(got) != "precious" {
		t.Errorf("Write drew through a symlink: its target is now %d bytes", len(got))
	}
}

// point is a vertex of an SVG path, in the picture's points.
type point struct{ x, y float64 }

// strokes returns the vertices of every SVG path stroked in c.
func strokes(t *testing.T, svg []byte, c color.RGBA) [][]point {
	t.Helper()
	hex := fmt.Sprintf("stroke:#%02x%02x%02x", c.R, c.G, c.B)
	var out [][]point
	for _, m := range regexp.MustCompile(`<path d="([^"]*)"[^>]*style="([^"]*)"`).FindAllSubmatch(svg, -1) {
		if !strings.Contains(strings.ToLower(string(m[2])), hex) {
			continue
		}
		var pts []point
		for _, v := range regexp.MustCompile(`[ML]([-0-9.e]+),([-0-9.e]+)`).FindAllSubmatch(m[1], -1) {
			x, err1 := strconv.ParseFloat(string(v[1]), 64)
			y, err2 := strconv.ParseFloat(string(v[2]), 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("path %q", m[1])
			}
			pts = append(pts, point{x, y})
		}
		out = append(out, pts)
	}
	return out
}

// bar is a data segment as drawn: an I-beam at x from y0 to y1.
type bar struct{ x, y0, y1 float64 }

func bars(paths [][]point) []bar {
	var bs []bar
	for _, p := range paths {
		if len(p) == 6 && p[2].x == p[3].x {
			bs = append(bs, bar{p[2].x, p[2].y, p[3].y})
		}
	}
	return bs
}

// scale maps times (ms) and sequence numbers to the picture's points.
type scale struct{ a, b, c, d float64 }

func (s scale) x(at time.Duration) float64 { return s.a*ms(at) + s.b }
func (s scale) y(seq int64) float64        { return s.c*float64(seq) + s.d }

func near(a, b float64) bool { return math.Abs(a-b) < 0.05 }

// fit finds the scale that puts segs on drawn, one bar each, with one
// bar to spare (the legend's), or says there is none.
func fit(segs []capture.DataSegment, drawn []bar) (scale, bool) {
	if len(drawn) != len(segs)+1 || len(segs) < 2 {
		return scale{}, false
	}
	for legend := range drawn {
		rest := slices.Delete(slices.Clone(drawn), legend, legend+1)
		slices.SortStableFunc(rest, func(p, q bar) int { return cmp.Compare(p.x, q.x) })
		first, last := segs[0], segs[len(segs)-1]
		var s scale
		s.a = (rest[len(rest)-1].x - rest[0].x) / (ms(last.At) - ms(first.At))
		s.b = rest[0].x - s.a*ms(first.At)
		s.c = (rest[len(rest)-1].y1 - rest[0].y0) / float64(last.End()-first.Seq)
		s.d = rest[0].y0 - s.c*float64(first.Seq)
		ok := true
		for i, sg := range segs {
			if !near(rest[i].x, s.x(sg.At)) || !near(rest[i].y0, s.y(sg.Seq)) || !near(rest[i].y1, s.y(sg.End())) {
				ok = false
				break
			}
		}
		if ok {
			return s, true
		}
	}
	return scale{}, false
}

// The picture puts each segment where it belongs: a bar at its time, from
// its first byte to its last, blue if sent once and red if sent again, on
// one scale for all; the ACK line steps to each ACK at its time, and so
// does the window line when it is drawn. (Counting the bars, as
// TestGraphDrawsEverySegment does, passed with every bar drawn at time 0,
// one byte high.)
func TestGraphDrawsEachSegmentWhereItBelongs(t *testing.T) {
	for seed := range uint64(15) {
		tr := randomTrace(seed)
		var first, again []capture.DataSegment
		for _, d := range tr.Data {
			if d.Retransmitted {
				again = append(again, d)
			} else {
				first = append(first, d)
			}
		}
		if len(first) < 2 {
			continue
		}
		path := filepath.Join(t.TempDir(), "g.svg")
		drawn, err := Write(path, Panel{Title: "whole", Trace: tr})
		if err != nil {
			t.Fatal(err)
		}
		svg, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s, ok := fit(first, bars(strokes(t, svg, DataColor)))
		if !ok {
			t.Fatalf("seed %d: the blue bars are not the %d segments sent once, at their times and bytes", seed, len(first))
		}
		red := bars(strokes(t, svg, ResentColor))
		for _, d := range again {
			if !slices.ContainsFunc(red, func(b bar) bool { return near(b.x, s.x(d.At)) && near(b.y0, s.y(d.Seq)) && near(b.y1, s.y(d.End())) }) {
				t.Fatalf("seed %d: no red bar for the segment %d-%d sent again at %v", seed, d.Seq, d.End(), d.At)
			}
		}
		if len(again) > 0 && len(red) != len(again)+1 {
			t.Errorf("seed %d: %d red bars for %d segments sent again", seed, len(red), len(again))
		}
		// A line that holds each ACK's value until the next: from the
		// first ACK, across to the next one's time, up to its value; and
		// on from the last to the end of the time axis.
		steps := func(val func(capture.AckPoint) int64) []point {
			var want []point
			step := func(x, y float64) {
				if len(want) > 0 {
					want = append(want, point{x, want[len(want)-1].y})
				}
				want = append(want, point{x, y})
			}
			for _, a := range tr.Acks {
				step(s.x(a.At), s.y(val(a)))
			}
			last := tr.Acks[len(tr.Acks)-1]
			step(s.x(max(tr.Duration(), last.At)), s.y(val(last)))
			return want
		}
		lines := []struct {
			name  string
			color color.RGBA
			val   func(capture.AckPoint) int64
			shown bool
		}{
			{"ACK", AckColor, func(a capture.AckPoint) int64 { return a.Ack }, true},
			{"window", WindowColor, func(a capture.AckPoint) int64 { return a.Ack + a.Window }, drawn[0].WindowShown},
		}
		for _, l := range lines {
			if !l.shown || len(tr.Acks) == 0 {
				continue
			}
			want := steps(l.val)
			found := false
			for _, p := range strokes(t, svg, l.color) {
				if len(p) == len(want) && !slices.ContainsFunc(p, func(q point) bool {
					i := slices.Index(p, q)
					return !near(q.x, want[i].x) || !near(q.y, want[i].y)
				}) {
					found = true
				}
			}
			if !found {
				t.Errorf("seed %d: no %s line through the %d ACKs", seed, l.name, len(tr.Acks))
			}
		}
	}
}

// A span's label and an event's stay inside the plot, wherever the span
// or the event is: the tail lesson's longest hold is sometimes in the
// first round, and its label, centred on a span narrower than itself at
// the left edge, ran off the plot over the axis ("by...3 waits 45.2 ms").
func TestLabelsStayInsideThePlot(t *testing.T) {
	tr := &capture.Trace{}
	for i := range 14 {
		at := time.Duration(i/2)*44*time.Millisecond + time.Duration(i%2)*100*time.Microsecond
		tr.Data = append(tr.Data, capture.DataSegment{At: at, Seq: int64(i), Bytes: 1})
		tr.Acks = append(tr.Acks, capture.AckPoint{At: at + 50*time.Microsecond, Ack: int64(i + 1), Window: 65535})
	}
	const long = "byte 3 waits 45.2 ms: Nagle holds it until byte 2 is ACKed"
	pn := Panel{Trace: tr, Spans: []Span{
		{From: 100 * time.Microsecond, To: 2 * time.Millisecond, Seq: 3, Label: "left " + long},
		{From: 262 * time.Millisecond, To: 264 * time.Millisecond, Seq: 9, Label: "right " + long},
	}, Events: []Event{{At: 263 * time.Millisecond, Label: "event " + long}}}
	path := filepath.Join(t.TempDir(), "g.svg")
	if _, err := Write(path, pn); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	first := append([]capture.DataSegment(nil), tr.Data...)
	s, ok := fit(first, bars(strokes(t, svg, DataColor)))
	if !ok {
		t.Fatal("no scale fits the bars")
	}
	// The plot's time axis runs from 0 to 2% past the end.
	left, right := s.x(0), s.x(tr.Duration()+tr.Duration()/50)
	style := draw.TextStyle{Font: plot.DefaultFont, Handler: plot.DefaultTextHandler}
	style.Font.Size = vg.Points(9)
	for _, label := range []string{pn.Spans[0].Label, pn.Spans[1].Label, pn.Events[0].Label} {
		m := regexp.MustCompile(`<text x="([-0-9.e]+)"[^>]*>` + regexp.QuoteMeta(label) + `</text>`).FindSubmatch(svg)
		if m == nil {
			t.Fatalf("no label %q", label)
		}
		x, _ := strconv.ParseFloat(string(m[1]), 64)
		w := float64(style.Width(label).Points())
		if x < left-0.5 || x+w > right+0.5 {
			t.Errorf("label %q runs from %.1f to %.1f, outside the plot's %.1f to %.1f", label, x, x+w, left, right)
		}
	}
}
