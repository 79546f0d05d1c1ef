// Package chunkplot draws the tutorial's "chunky" lesson: the sizes of the
// reads that delivered one TCP stream, in arrival order, and their
// histogram. The picture makes the point of section 2 at a glance: the
// sender wrote the same bytes in the same way, yet they arrived in pieces of
// sizes nobody chose.
package chunkplot

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

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

// Write draws stats to path, as PNG or SVG according to its extension.
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

	inOrder, err := sizesInOrder(stats)
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	hist, err := histogram(stats)
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	dc := draw.New(canvas)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 6, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	plots := [][]*plot.Plot{{inOrder, hist}}
	canvases := plot.Align(plots, tiles, dc)
	inOrder.Draw(canvases[0][0])
	hist.Draw(canvases[0][1])

	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if _, err := canvas.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return f.Close()
}

func sizesInOrder(stats *stream.ChunkStats) (*plot.Plot, error) {
	p := plot.New()
	title := fmt.Sprintf("%d bytes in %d reads, in arrival order", stats.Total(), stats.Count())
	if stats.Truncated {
		title += fmt.Sprintf(" (first %d shown)", len(stats.Sizes))
	}
	p.Title.Text = title
	p.X.Label.Text = "read number"
	p.Y.Label.Text = "bytes returned by the read"
	pts := make(plotter.XYs, len(stats.Sizes))
	for i, n := range stats.Sizes {
		pts[i] = plotter.XY{X: float64(i + 1), Y: float64(n)}
	}
	sc, err := plotter.NewScatter(pts)
	if err != nil {
		return nil, err
	}
	sc.GlyphStyle.Radius = vg.Points(1.5)
	p.Add(sc)
	if len(pts) > 1 {
		line, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		line.Width = vg.Points(0.5)
		p.Add(line)
	}
	p.Y.Min = 0
	return p, nil
}

func histogram(stats *stream.ChunkStats) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("chunk sizes: min %d, median %d, max %d", stats.Min(), stats.Median(), stats.Max())
	p.X.Label.Text = "bytes per read"
	p.Y.Label.Text = "reads"
	vals := make(plotter.Values, len(stats.Sizes))
	for i, n := range stats.Sizes {
		vals[i] = float64(n)
	}
	bins := min(30, max(1, len(vals)))
	if stats.Min() == stats.Max() {
		bins = 1
	}
	h, err := plotter.NewHist(vals, bins)
	if err != nil {
		return nil, err
	}
	p.Add(h)
	return p, nil
}
