package seqplot

import (
	"fmt"
	"image/color"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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
