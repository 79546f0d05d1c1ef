package chunkplot

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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
