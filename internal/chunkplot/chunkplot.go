// Package chunkplot draws the tutorial's "chunky" lesson: the sizes of the
// reads that delivered one TCP stream, in arrival order, and their
// histogram. The picture makes the point of section 2 at a glance: the
// sender wrote the same bytes in the same way, yet they arrived in pieces of
// sizes nobody chose.
package chunkplot

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/tcplab/tcplab/internal/wholefile"
	"github.com/tcplab/tcplab/stream"
)

// CheckPath reports whether Write can draw to path: a .png or .svg name in a
// directory that exists. A client calls it before a transfer, so that a
// mistyped --plot is refused at once, not after a gigabyte has arrived.
func CheckPath(path string) error {
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".png", ".svg":
	default:
		return fmt.Errorf("plot %s: unknown picture type %q (want .png or .svg)", path, ext)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return fmt.Errorf("plot %s: no directory %s", path, filepath.Dir(path))
	}
	return nil
}

// Write draws stats to path, as PNG or SVG according to its extension,
// whole or not at all (internal/wholefile).
func Write(path string, stats *stream.ChunkStats) error {
	if err := CheckPath(path); err != nil {
		return err
	}
	if len(stats.Sizes) == 0 {
		return fmt.Errorf("plot %s: no chunks to draw", path)
	}
	const width, height = 10 * vg.Inch, 4 * vg.Inch
	var canvas interface {
		vg.CanvasWriterTo
	}
	if strings.ToLower(filepath.Ext(path)) == ".png" {
		canvas = vgimg.PngCanvas{Canvas: vgimg.New(width, height)}
	} else {
		canvas = vgsvg.New(width, height)
	}

	pics, err := layout(draw.New(canvas), stats)
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	pics.inOrder.Draw(pics.tiles[0])
	pics.hist.Draw(pics.tiles[1])

	err = wholefile.Write(path, func(w io.Writer) error {
		_, err := canvas.WriteTo(w)
		return err
	})
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// pictures are the two plots side by side: the sizes in arrival order
// (with its bands past manyPoints reads) and their histogram, each with
// the tile it is drawn in.
type pictures struct {
	inOrder, hist *plot.Plot
	bands         []*plotter.Line // largest, median, smallest; nil below manyPoints
	tiles         [2]draw.Canvas
}

// layout makes the two plots, side by side on dc.
func layout(dc draw.Canvas, stats *stream.ChunkStats) (*pictures, error) {
	var pics pictures
	var err error
	if pics.inOrder, pics.bands, err = sizesInOrder(stats); err != nil {
		return nil, err
	}
	if pics.hist, err = histogram(stats); err != nil {
		return nil, err
	}
	pads := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 6, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align([][]*plot.Plot{{pics.inOrder, pics.hist}}, pads, dc)
	pics.tiles = [2]draw.Canvas{canvases[0][0], canvases[0][1]}
	if pics.bands != nil {
		clearLegend(pics.inOrder, pics.tiles[0], float64(slices.Max(stats.Sizes)))
	}
	return &pics, nil
}

// clearLegend raises the top of p's y axis until the legend, at the top
// of the data area, sits above the highest point (top) of every line: it
// was drawn over the data. The legend's height is measured, not guessed.
func clearLegend(p *plot.Plot, tile draw.Canvas, top float64) {
	dc := p.DataCanvas(tile)
	box := p.Legend.Rectangle(dc)
	height := dc.Max.Y - dc.Min.Y
	free := box.Min.Y - dc.Min.Y - vg.Points(4) // a little air under the legend
	if free <= 0 || top <= 0 {
		return
	}
	p.Y.Min = 0
	p.Y.Max = top * float64(height/free)
}

func sizesInOrder(stats *stream.ChunkStats) (*plot.Plot, []*plotter.Line, error) {
	p := plot.New()
	title := fmt.Sprintf("%s in %s, in arrival order", count(stats.Total(), "byte"), count(stats.Count(), "read"))
	if stats.Truncated {
		title += fmt.Sprintf(" (first %s shown)", thousands(int64(len(stats.Sizes))))
	}
	p.Title.Text = title
	p.X.Label.Text = "read number"
	p.Y.Label.Text = "bytes returned by the read"
	if len(stats.Sizes) > manyPoints {
		bands, err := addBands(p, stats.Sizes)
		if err != nil {
			return nil, nil, err
		}
		p.Y.Min = 0
		wholeTicks(p)
		return p, bands, nil
	}
	pts := make(plotter.XYs, len(stats.Sizes))
	for i, n := range stats.Sizes {
		pts[i] = plotter.XY{X: float64(i + 1), Y: float64(n)}
	}
	sc, err := plotter.NewScatter(pts)
	if err != nil {
		return nil, nil, err
	}
	sc.GlyphStyle.Radius = vg.Points(1.5)
	p.Add(sc)
	if len(pts) > 1 {
		line, err := plotter.NewLine(pts)
		if err != nil {
			return nil, nil, err
		}
		line.Width = vg.Points(0.5)
		p.Add(line)
	}
	p.Y.Min = 0
	wholeTicks(p)
	if len(pts) == 1 {
		p.X.Min, p.X.Max = 0, 2 // one read sits in the middle, as read 1
	}
	return p, nil, nil
}

// manyPoints is where the in-order plot stops drawing every read: past a
// few thousand, dots and lines merge into a solid block. It draws, for each
// of at most manyPoints/2 runs of consecutive reads, their smallest,
// median and largest size instead.
const manyPoints = 2000

func addBands(p *plot.Plot, sizes []int32) ([]*plotter.Line, error) {
	runs := manyPoints / 2
	per := (len(sizes) + runs - 1) / runs
	var lo, mid, hi plotter.XYs
	var bands []*plotter.Line
	run := make([]int32, 0, per)
	for start := 0; start < len(sizes); start += per {
		run = append(run[:0], sizes[start:min(start+per, len(sizes))]...)
		slices.Sort(run)
		x := float64(start+1+start+len(run)) / 2
		lo = append(lo, plotter.XY{X: x, Y: float64(run[0])})
		mid = append(mid, plotter.XY{X: x, Y: float64(run[len(run)/2])})
		hi = append(hi, plotter.XY{X: x, Y: float64(run[len(run)-1])})
	}
	p.X.Label.Text = fmt.Sprintf("read number (each point: the %s reads around it)", thousands(int64(per)))
	// Three colours a reader tells apart (and that stay apart in grey):
	// the median black, the largest red, the smallest blue; the median is
	// dashed and drawn last, so a line it runs along (all reads of one
	// size) still shows between its dashes. The y axis is raised for the
	// legend once the plot's size is known (clearLegend).
	for _, l := range []struct {
		name  string
		xys   plotter.XYs
		color color.Color
	}{
		{"largest", hi, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}},
		{"median", mid, color.Black},
		{"smallest", lo, color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}},
	} {
		line, err := plotter.NewLine(l.xys)
		if err != nil {
			return nil, err
		}
		line.Width = vg.Points(0.7)
		line.Color = l.color
		if l.name == "median" {
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		bands = append(bands, line)
	}
	for _, line := range []*plotter.Line{bands[0], bands[2], bands[1]} {
		p.Add(line)
	}
	p.Legend.Add("largest", bands[0])
	p.Legend.Add("median", bands[1])
	p.Legend.Add("smallest", bands[2])
	p.Legend.Top = true
	return bands, nil
}

func histogram(stats *stream.ChunkStats) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("chunk sizes: min %s, median %s, max %s",
		thousands(int64(stats.Min())), thousands(int64(stats.Median())), thousands(int64(stats.Max())))
	p.X.Label.Text = "bytes per read"
	p.Y.Label.Text = "reads"
	vals := make(plotter.Values, len(stats.Sizes))
	for i, n := range stats.Sizes {
		vals[i] = float64(n)
	}
	bins := 30
	if stats.Min() == stats.Max() {
		bins = 1
	}
	h, err := plotter.NewHist(vals, bins)
	if err != nil {
		return nil, err
	}
	p.Add(h)
	wholeTicks(p)
	if stats.Min() == stats.Max() {
		// Every read the same size: one bar, centred on that size, as wide
		// as one of 30 bins across the axis (a bin of width zero is drawn
		// as a hairline).
		v := float64(stats.Min())
		half := max(1, v/2)
		p.X.Min, p.X.Max = math.Max(0, v-half), v+half
		w := (p.X.Max - p.X.Min) / 30
		h.Bins[0].Min, h.Bins[0].Max = v-w/2, v+w/2
		h.Width = w
	}
	return p, nil
}

// wholeTicks puts only whole-number ticks on both axes of p (reads and
// bytes come in whole numbers: no tick at 0.5 reads or 30000.5 bytes),
// labelled with thousands separators.
func wholeTicks(p *plot.Plot) {
	p.X.Tick.Marker = wholeTicker{}
	p.Y.Tick.Marker = wholeTicker{}
}

// wholeTicker is plot.DefaultTicks keeping only whole numbers. When the
// range holds too few of them (one read: 0.5 to 1.5), every whole number
// in it is a tick.
type wholeTicker struct{}

func (wholeTicker) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	labelled := 0
	for _, t := range (plot.DefaultTicks{}).Ticks(lo, hi) {
		if t.Value != math.Trunc(t.Value) {
			continue
		}
		if t.Label != "" {
			t.Label = thousands(int64(t.Value))
			labelled++
		}
		ticks = append(ticks, t)
	}
	if labelled >= 2 || hi-lo > 10 {
		return ticks
	}
	ticks = ticks[:0]
	for v := math.Ceil(lo); v <= hi; v++ {
		ticks = append(ticks, plot.Tick{Value: v, Label: thousands(int64(v))})
	}
	return ticks
}

// count is "1 read", "2 reads", "1,000,000 reads".
func count(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return thousands(n) + " " + unit + "s"
}

// thousands writes n with a comma every three digits: 1,000,000.
func thousands(n int64) string { return english.Sprint(n) }

var english = message.NewPrinter(language.English)
