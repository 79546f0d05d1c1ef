package chunkplot

import (
	"image/color"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/tcplab/tcplab/stream"
)

// drawSVG draws sizes and returns the SVG's text labels.
func drawSVG(t *testing.T, sizes []int) []string {
	t.Helper()
	var s stream.ChunkStats
	at := time.Unix(0, 0)
	for _, n := range sizes {
		s.Add(n, at)
	}
	path := filepath.Join(t.TempDir(), "c.svg")
	if err := Write(path, &s); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, m := range regexp.MustCompile(`<text[^>]*>([^<]*)</text>`).FindAllSubmatch(svg, -1) {
		labels = append(labels, strings.TrimSpace(string(m[1])))
	}
	return labels
}

// Every tick on an axis that counts reads or bytes is a whole number,
// written with thousands separators; a title says "1 read", not "1 reads".
func TestPlotsAreReadable(t *testing.T) {
	million := make([]int, 1_000_000)
	for i := range million {
		million[i] = 1 + i%65536
	}
	cases := []struct {
		name   string
		sizes  []int
		titles []string
	}{
		// The tutorial's own case: "abc" 10,000 times in one read.
		{"one read", []int{30000}, []string{"30,000 bytes in 1 read, in arrival order", "chunk sizes: min 30,000, median 30,000, max 30,000"}},
		{"two reads", []int{3, 29997}, []string{"30,000 bytes in 2 reads, in arrival order"}},
		{"a million reads", million, []string{" in 1,000,000 reads"}},
	}
	number := regexp.MustCompile(`^[0-9,.]+$`)
	grouped := regexp.MustCompile(`^\d{1,3}(,\d{3})*$`)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			labels := drawSVG(t, tc.sizes)
			all := strings.Join(labels, "\n")
			for _, title := range tc.titles {
				if !strings.Contains(all, title) {
					t.Errorf("no %q among the labels:\n%s", title, all)
				}
			}
			if strings.Contains(all, " 1 reads") {
				t.Errorf(`"1 reads" among the labels`)
			}
			ticks := 0
			for _, l := range labels {
				if !number.MatchString(l) {
					continue
				}
				ticks++
				if !grouped.MatchString(l) {
					t.Errorf("tick %q is not a whole number with thousands separators", l)
				}
			}
			if ticks < 4 {
				t.Errorf("only %d numeric ticks:\n%s", ticks, all)
			}
		})
	}
}

// Past manyPoints reads the in-order plot draws three lines: largest and
// smallest were the same grey, and the legend sat over the data. Now the
// three have distinct colours, and no point of any line lies under the
// legend's box.
func TestBandsAreTellableAndUncovered(t *testing.T) {
	for _, shape := range []struct {
		name string
		size func(i int) int
	}{
		{"steady", func(i int) int { return 65483 }},
		{"sawtooth", func(i int) int { return 1 + i%65536 }},
		{"rising", func(i int) int { return 1 + i/40 }},
	} {
		var s stream.ChunkStats
		at := time.Unix(0, 0)
		for i := range 100_000 {
			s.Add(shape.size(i), at)
		}
		c := vgimg.New(10*vg.Inch, 4*vg.Inch)
		pics, err := layout(draw.New(c), &s)
		if err != nil {
			t.Fatal(err)
		}
		inOrder, lines := pics.inOrder, pics.bands
		dc := inOrder.DataCanvas(pics.tiles[0])
		if len(lines) != 3 {
			t.Fatalf("%s: %d lines, want largest, median, smallest", shape.name, len(lines))
		}
		for i := range lines {
			for j := range i {
				if colorsEqual(lines[i].Color, lines[j].Color) {
					t.Errorf("%s: lines %d and %d share colour %v", shape.name, i, j, lines[i].Color)
				}
			}
		}
		box := inOrder.Legend.Rectangle(dc)
		tx, ty := inOrder.Transforms(&dc)
		for _, l := range lines {
			for _, xy := range l.XYs {
				x, y := tx(xy.X), ty(xy.Y)
				if x >= box.Min.X && x <= box.Max.X && y >= box.Min.Y-l.Width && y <= box.Max.Y {
					t.Fatalf("%s: point (%v, %v) under the legend %v", shape.name, xy.X, xy.Y, box)
				}
			}
		}
	}
}

func colorsEqual(a, b color.Color) bool {
	r1, g1, b1, a1 := a.RGBA()
	r2, g2, b2, a2 := b.RGBA()
	return r1 == r2 && g1 == g2 && b1 == b2 && a1 == a2
}
