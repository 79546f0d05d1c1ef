// Package seqplot draws a TCP time-sequence graph (W. R. Stevens's, drawn
// by tcptrace and by Wireshark as "Stevens" and "tcptrace" graphs) from a
// capture: time runs to the right, the sequence number (bytes into the
// stream) up. Each data segment is a short vertical bar from its first
// byte to its last, so a steady transfer is a staircase climbing to the
// right; a segment sent again is drawn in red below the top of the stair.
// The ACK line (green) is what the receiver says it has, all bytes below
// it; the window line (orange) is how far the receiver lets the sender go.
// The distance between the bars and the ACK line is the data in flight;
// a flat stretch is time nothing was sent.
//
// Write draws one panel per trace, stacked, and returns what it drew, so
// a test can check the picture against the capture it came from.
package seqplot

import (
	"fmt"
	"github.com/tcplab/tcplab/internal/chunkplot"
	"image/color"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/tcplab/tcplab/internal/capture"
	"github.com/tcplab/tcplab/internal/wholefile"
)

// Panel is one graph: one direction of one connection.
type Panel struct {
	// Title heads the panel.
	Title string
	// Trace is what to draw.
	Trace *capture.Trace
	// From and Until are the ends of the time axis; Until 0 means the
	// trace's own end. Panels meant to be compared share one Until; a
	// panel that magnifies part of a transfer sets both, and draws only
	// what falls between them.
	From, Until time.Duration
	// Events are instants to mark with a labelled vertical line, such as
	// the ARP exchange before the first segment.
	Events []Event
	// Spans are stretches of time to point out, such as a wait.
	Spans []Span
}

// Event is an instant on the time axis, labelled.
type Event struct {
	At    time.Duration
	Label string
}

// Span is a stretch of time at height Seq, labelled.
type Span struct {
	From, To time.Duration
	Seq      int64
	Label    string
}

// Drawn is what Write drew on one panel.
type Drawn struct {
	// Segments is the number of data segments drawn, Retransmissions
	// those of them drawn as sent again.
	Segments, Retransmissions int
	// Acks is the number of ACKs the ACK line steps through.
	Acks int
	// WindowShown: the window line is within the picture (when it runs
	// far above the data it is left off the top, and the title says so).
	WindowShown bool
}

// Colours of the graph's elements: the tests find the segments by them.
var (
	DataColor    = color.RGBA{R: 0x1f, G: 0x3f, B: 0xbf, A: 0xff}
	ResentColor  = color.RGBA{R: 0xd6, G: 0x1a, B: 0x1a, A: 0xff}
	AckColor     = color.RGBA{R: 0x1a, G: 0x8f, B: 0x2e, A: 0xff}
	WindowColor  = color.RGBA{R: 0xe0, G: 0x8a, B: 0x00, A: 0xff}
	MarkColor    = color.Gray{Y: 0x50}
	windowReach  = 2.5 // the window line is drawn when it stays below this many times the data
	panelWidth   = 10 * vg.Inch
	panelHeight  = 4.6 * vg.Inch
	beamHalfWide = vg.Points(2.5)
)

// Write draws the panels, stacked, to path as PNG or SVG according to its
// extension, and returns what it drew on each. The file is written whole
// or not at all (internal/wholefile).
func Write(path string, panels ...Panel) ([]Drawn, error) {
	if err := chunkplot.CheckPath(path); err != nil { // the same rule as the chunk plot's
		return nil, err
	}
	if len(panels) == 0 {
		return nil, fmt.Errorf("plot %s: nothing to draw", path)
	}
	width, height := panelWidth, panelHeight*vg.Length(len(panels))
	var canvas vg.CanvasWriterTo
	if strings.ToLower(filepath.Ext(path)) == ".png" {
		canvas = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(110))}
	} else {
		canvas = vgsvg.New(width, height)
	}
	plots := make([][]*plot.Plot, len(panels))
	drawn := make([]Drawn, len(panels))
	for i, pn := range panels {
		p, d, err := graph(pn)
		if err != nil {
			return nil, fmt.Errorf("plot %s: %w", path, err)
		}
		plots[i], drawn[i] = []*plot.Plot{p}, d
	}
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadY: vg.Millimeter * 8, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 5}
	canvases := plot.Align(plots, tiles, draw.New(canvas))
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	err := wholefile.Write(path, func(w io.Writer) error {
		_, err := canvas.WriteTo(w)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	return drawn, nil
}

// ms is a duration in the graph's time unit.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func graph(pn Panel) (*plot.Plot, Drawn, error) {
	t := pn.Trace
	var d Drawn
	p := plot.New()
	p.Title.Text = pn.Title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text = "time since the connection's first segment (ms)"
	p.Y.Label.Text = "sequence number (bytes into the stream)"
	p.Y.Tick.Marker = thousandsTicker{}
	p.X.Tick.Marker = timeTicker{}
	p.Add(plotter.NewGrid())

	until := pn.Until
	if until == 0 {
		until = t.Duration()
	}
	in := func(at time.Duration) bool { return pn.From <= at && at <= until }
	// How high to draw: the data and the ACKs in the window of time, and
	// the receive window too if it stays near them.
	bottom, top := math.Inf(1), math.Inf(-1)
	for _, s := range t.Data {
		if in(s.At) {
			bottom, top = math.Min(bottom, float64(s.Seq)), math.Max(top, float64(s.End()))
		}
	}
	if pn.From == 0 || math.IsInf(bottom, 1) {
		bottom, top = 0, math.Max(top, 1)
	}
	winTop := top
	for _, a := range t.Acks {
		if in(a.At) {
			top = math.Max(top, float64(a.Ack))
			winTop = math.Max(winTop, float64(a.Ack+a.Window))
		}
	}
	winTop = math.Max(winTop, top)
	d.WindowShown = winTop-bottom <= windowReach*(top-bottom)
	if d.WindowShown {
		top = winTop
	}
	// Set after every p.Add, which widens the axes to its data.
	setAxes := func() {
		pad := (top - bottom) * 0.04
		p.Y.Min, p.Y.Max = bottom-pad, top+2*pad
		p.X.Min, p.X.Max = ms(pn.From), math.Max(ms(pn.From)+ms(until-pn.From)*1.02, ms(pn.From)+0.001)
	}

	// The window and ACK lines: each holds its value until the next ACK.
	if len(t.Acks) > 0 {
		ack, win := make(plotter.XYs, 0, len(t.Acks)+1), make(plotter.XYs, 0, len(t.Acks)+1)
		for _, a := range t.Acks {
			ack = append(ack, plotter.XY{X: ms(a.At), Y: float64(a.Ack)})
			win = append(win, plotter.XY{X: ms(a.At), Y: float64(a.Ack + a.Window)})
		}
		last := ms(max(until, t.Acks[len(t.Acks)-1].At))
		ack = append(ack, plotter.XY{X: last, Y: ack[len(ack)-1].Y})
		win = append(win, plotter.XY{X: last, Y: win[len(win)-1].Y})
		if d.WindowShown {
			wl, err := plotter.NewLine(win)
			if err != nil {
				return nil, d, err
			}
			wl.StepStyle, wl.Color, wl.Width = plotter.PostStep, WindowColor, vg.Points(1.2)
			p.Add(wl)
			p.Legend.Add("receive window: the sender may send up to here", wl)
		} else {
			p.Title.Text += fmt.Sprintf("\n(the receive window, up to %s bytes ahead, is far above the top)", thousands(int64(winTop-float64(t.Bytes()))))
		}
		al, err := plotter.NewLine(ack)
		if err != nil {
			return nil, d, err
		}
		al.StepStyle, al.Color, al.Width = plotter.PostStep, AckColor, vg.Points(1.2)
		p.Add(al)
		p.Legend.Add("ACK: the receiver has every byte below", al)
		d.Acks = len(t.Acks)
	}

	var first, again []capture.DataSegment
	for _, s := range t.Data {
		if !in(s.At) {
			continue
		}
		if s.Retransmitted {
			again = append(again, s)
		} else {
			first = append(first, s)
		}
	}
	sent := &beams{segs: first, color: DataColor}
	p.Add(sent)
	p.Legend.Add(fmt.Sprintf("data segment (%s): a bar from its first byte to its last", count(len(first), "segment")), sent)
	if len(again) > 0 {
		resent := &beams{segs: again, color: ResentColor, wide: true}
		p.Add(resent)
		p.Legend.Add(fmt.Sprintf("sent again: %s", count(len(again), "retransmission")), resent)
	}
	d.Segments, d.Retransmissions = len(first)+len(again), len(again)

	if marks := (&marks{trace: t, events: pn.Events, spans: pn.Spans}); len(t.Marks)+len(pn.Events)+len(pn.Spans) > 0 {
		p.Add(marks)
	}
	setAxes()
	// Where it hides the least.
	place := emptiestPlace(pn, p.X.Min, p.X.Max, p.Y.Min, p.Y.Max)
	p.Legend.Top, p.Legend.Left = place.top, place.left
	p.Legend.XOffs, p.Legend.YOffs = -vg.Millimeter*3, vg.Millimeter*3
	if p.Legend.Left {
		// The plot's width is about the panel's, less its axis.
		p.Legend.XOffs = vg.Millimeter*3 + vg.Length(place.shift)*(panelWidth-vg.Inch)
	}
	if p.Legend.Top {
		p.Legend.YOffs = -vg.Millimeter * 3
	}
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.Legend.Padding = vg.Points(4)
	p.Legend.ThumbnailWidth = vg.Points(20)
	return p, d, nil
}

// legendPlace is where a legend may go: a corner, or the top middle.
type legendPlace struct {
	top, left bool
	shift     float64 // of the plot's width, rightwards from the left edge
}

// legendPlaces in order of preference on a tie: below a staircase that
// climbs to the right, a time-sequence graph is usually empty.
var legendPlaces = []legendPlace{{false, false, 0}, {true, true, 0}, {true, true, 0.3}, {false, true, 0}, {true, false, 0}}

// emptiestPlace picks the legend's place where a box of its rough size
// holds the fewest things drawn: segments, the ACK line, marks and event
// labels.
func emptiestPlace(pn Panel, x0, x1, y0, y1 float64) legendPlace {
	const boxW, boxH = 0.5, 0.3 // of the plot's width and height
	var pts [][2]float64
	t := pn.Trace
	for _, d := range t.Data {
		pts = append(pts, [2]float64{ms(d.At), float64(d.Seq)}, [2]float64{ms(d.At), float64(d.End())})
	}
	for _, m := range t.Marks {
		pts = append(pts, [2]float64{ms(m.At), float64(m.Seq)})
	}
	// The ACK line, sampled across the plot: it holds its value between ACKs.
	for k := 0; k <= 100; k++ {
		x := x0 + (x1-x0)*float64(k)/100
		var y float64
		found := false
		for _, a := range t.Acks {
			if ms(a.At) > x {
				break
			}
			y, found = float64(a.Ack), true
		}
		if found {
			pts = append(pts, [2]float64{x, y})
		}
	}
	for _, e := range pn.Events {
		for k := 0; k < 10; k++ { // a label runs right along the top
			pts = append(pts, [2]float64{ms(e.At) + (x1-x0)*0.03*float64(k), y1})
		}
	}
	score := func(pl legendPlace) int {
		lo, hi := pl.shift, pl.shift+boxW
		if !pl.left {
			lo, hi = 1-boxW, 1
		}
		n := 0
		for _, pt := range pts {
			fx, fy := (pt[0]-x0)/(x1-x0), (pt[1]-y0)/(y1-y0)
			if fx >= lo && fx <= hi && (pl.top && fy >= 1-boxH || !pl.top && fy <= boxH) {
				n++
			}
		}
		return n
	}
	best, bestScore := legendPlaces[0], score(legendPlaces[0])
	for _, pl := range legendPlaces[1:] {
		if n := score(pl); n < bestScore {
			best, bestScore = pl, n
		}
	}
	return best
}

// beams draws data segments as I-beams, tcptrace's way.
type beams struct {
	segs  []capture.DataSegment
	color color.Color
	wide  bool
}

func (b *beams) style() draw.LineStyle {
	w := vg.Points(1)
	if b.wide {
		w = vg.Points(1.6)
	}
	return draw.LineStyle{Color: b.color, Width: w}
}

func (b *beams) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for _, s := range b.segs {
		x, y0, y1 := trX(ms(s.At)), trY(float64(s.Seq)), trY(float64(s.End()))
		c.StrokeLines(b.style(), ibeam(x, y0, y1))
	}
}

func ibeam(x, y0, y1 vg.Length) []vg.Point {
	w := beamHalfWide
	return []vg.Point{{X: x - w, Y: y0}, {X: x + w, Y: y0}, {X: x, Y: y0}, {X: x, Y: y1}, {X: x - w, Y: y1}, {X: x + w, Y: y1}}
}

func (b *beams) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, ymin = math.Inf(1), math.Inf(1)
	xmax, ymax = math.Inf(-1), math.Inf(-1)
	for _, s := range b.segs {
		xmin, xmax = math.Min(xmin, ms(s.At)), math.Max(xmax, ms(s.At))
		ymin, ymax = math.Min(ymin, float64(s.Seq)), math.Max(ymax, float64(s.End()))
	}
	return
}

// Thumbnail draws the legend's sample: one beam.
func (b *beams) Thumbnail(c *draw.Canvas) {
	x := (c.Min.X + c.Max.X) / 2
	c.StrokeLines(b.style(), ibeam(x, c.Min.Y, c.Max.Y))
}

// marks draws the SYN, FIN and RST segments, the panel's events and spans.
type marks struct {
	trace  *capture.Trace
	events []Event
	spans  []Span
}

func (m *marks) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	text := draw.TextStyle{Color: MarkColor, Font: plot.DefaultFont, Handler: plot.DefaultTextHandler}
	text.Font.Size = vg.Points(9)
	line := draw.LineStyle{Color: MarkColor, Width: vg.Points(0.8)}
	for _, mk := range m.trace.Marks {
		name := map[string]string{"S": "SYN", "S.": "SYN-ACK", "F.": "FIN", "F": "FIN", "FP.": "FIN", "R": "RST", "R.": "RST"}[mk.Flags]
		if name == "" || (!mk.FromSender && name != "RST" && name != "SYN") {
			continue
		}
		pt := vg.Point{X: trX(ms(mk.At)), Y: trY(float64(mk.Seq))}
		if !c.Contains(pt) {
			continue
		}
		c.DrawGlyph(draw.GlyphStyle{Color: MarkColor, Radius: vg.Points(2.5), Shape: draw.RingGlyph{}}, pt)
		ts := text
		ts.XAlign, ts.YAlign = draw.XLeft, draw.YBottom
		c.FillText(ts, vg.Point{X: pt.X + vg.Points(3), Y: pt.Y + vg.Points(2)}, name)
	}
	dashed := line
	dashed.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
	for i, e := range m.events {
		x := trX(ms(e.At))
		if !c.ContainsX(x) {
			continue
		}
		c.StrokeLine2(dashed, x, c.Min.Y, x, c.Max.Y)
		ts := text
		ts.XAlign, ts.YAlign = draw.XLeft, draw.YTop
		// Right of the line, or left of it where the plot ends first.
		at := x + vg.Points(3)
		if w := ts.Width(e.Label); at+w > c.Max.X {
			at = max(c.Min.X, x-vg.Points(3)-w)
		}
		c.FillText(ts, vg.Point{X: at, Y: c.Max.Y - vg.Points(4) - vg.Length(i)*vg.Points(12)}, e.Label)
	}
	for _, s := range m.spans {
		// A little above the height given, clear of the ACK line there.
		x0, x1, y := trX(ms(s.From)), trX(ms(s.To)), trY(float64(s.Seq))+vg.Points(14)
		c.StrokeLine2(line, x0, y, x1, y)
		c.StrokeLine2(line, x0, y-vg.Points(4), x0, y+vg.Points(4))
		c.StrokeLine2(line, x1, y-vg.Points(4), x1, y+vg.Points(4))
		// Centred over the span, but inside the plot: a span near an edge
		// may be narrower than its label.
		ts := text
		ts.XAlign, ts.YAlign = draw.XLeft, draw.YBottom
		w := ts.Width(s.Label)
		at := max(c.Min.X, min((x0+x1)/2-w/2, c.Max.X-w))
		c.FillText(ts, vg.Point{X: at, Y: y + vg.Points(5)}, s.Label)
	}
}

// timeTicker puts 5 to 10 labelled ticks on the time axis, at steps of 1,
// 2 or 5 times a power of ten, written with no more decimals than the
// step needs (0, 50, 100; 0.2, 0.4).
type timeTicker struct{}

func (timeTicker) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'f', -1, 64)}}
	}
	step := math.Pow(10, math.Floor(math.Log10((hi-lo)/5)))
	for _, m := range []float64{1, 2, 5, 10} {
		if (hi-lo)/(step*m) <= 10 {
			step *= m
			break
		}
	}
	decimals := max(0, int(-math.Floor(math.Log10(step)+1e-9)))
	var ticks []plot.Tick
	for i := math.Ceil(lo / step); i*step <= hi+step*1e-9; i++ {
		v := i * step
		if math.Abs(v) < step*1e-9 {
			v = 0 // not -0.0
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', decimals, 64)})
		if mid := v + step/2; mid < hi {
			ticks = append(ticks, plot.Tick{Value: mid})
		}
	}
	return ticks
}

// thousandsTicker is plot.DefaultTicks with whole numbers only, written
// with thousands separators.
type thousandsTicker struct{}

func (thousandsTicker) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for _, t := range (plot.DefaultTicks{}).Ticks(lo, hi) {
		if t.Value != math.Trunc(t.Value) {
			continue
		}
		if t.Label != "" {
			t.Label = thousands(int64(t.Value))
		}
		ticks = append(ticks, t)
	}
	return ticks
}

func count(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return thousands(int64(n)) + " " + unit + "s"
}

func thousands(n int64) string { return english.Sprint(n) }

var english = message.NewPrinter(language.English)
