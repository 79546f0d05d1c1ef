package netlab

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// The nemesis: a seeded sequence of faults on a link, applied at set
// moments (as Jepsen's nemesis injects partitions and pauses into a
// running system). A test or the bench draws a Schedule from a seed, runs
// it while clients and servers talk across the link, and judges what the
// clients saw; a failing seed replays the same faults at the same
// moments.

// FaultKind is what a Fault does to the packets of its side.
type FaultKind int

// The kinds of fault a Schedule holds.
const (
	// LossBurst drops each packet with probability Fault.Loss.
	LossBurst FaultKind = iota
	// Blackout drops every packet: one-way (one side's packets) or both.
	// A one-way blackout of the side that only acknowledges (the server
	// during an upload) is an ACK-path stall.
	Blackout
	// RateChange limits the side's uplink to Fault.Rate bits per second.
	RateChange
	// MTUBlackhole drops the side's packets larger than Fault.MaxPacket.
	MTUBlackhole
	// Reset answers the side's TCP packets with an RST, to that side
	// only (see ResetOneSide).
	Reset
)

var kindNames = [...]string{"loss", "blackout", "rate", "mtu-blackhole", "reset"}

func (k FaultKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("FaultKind(%d)", int(k))
}

// Side says whose sent packets a Fault acts on.
type Side int

// The sides of a fault: A's packets, B's packets, or both ways.
const (
	FromA Side = iota
	FromB
	BothWays
)

func (s Side) String() string {
	switch s {
	case FromA:
		return "A→B"
	case FromB:
		return "B→A"
	}
	return "A↔B"
}

// Fault is one fault of a Schedule: Kind on the packets of From, from At
// after the schedule starts, for For.
type Fault struct {
	Kind      FaultKind
	From      Side
	At, For   time.Duration
	Loss      float64 // LossBurst
	Rate      int64   // RateChange, bits per second
	MaxPacket int     // MTUBlackhole, bytes
}

func (f Fault) String() string {
	var what string
	switch f.Kind {
	case LossBurst:
		what = fmt.Sprintf("loss %.0f%%", 100*f.Loss)
	case RateChange:
		what = fmt.Sprintf("rate %d kbit/s", f.Rate/1000)
	case MTUBlackhole:
		what = fmt.Sprintf("mtu-blackhole >%d B", f.MaxPacket)
	default:
		what = f.Kind.String()
	}
	return fmt.Sprintf("%s %s at %s for %s", what, f.From, f.At.Round(time.Millisecond), f.For.Round(time.Millisecond))
}

// Schedule is a seeded sequence of faults.
type Schedule struct {
	Seed   uint64
	Faults []Fault
}

func (s Schedule) String() string {
	if len(s.Faults) == 0 {
		return fmt.Sprintf("seed %d: no faults", s.Seed)
	}
	parts := make([]string, len(s.Faults))
	for i, f := range s.Faults {
		parts[i] = f.String()
	}
	return fmt.Sprintf("seed %d: %s", s.Seed, strings.Join(parts, "; "))
}

// End is when the last fault of s is lifted.
func (s Schedule) End() time.Duration {
	var end time.Duration
	for _, f := range s.Faults {
		end = max(end, f.At+f.For)
	}
	return end
}

// ScheduleOptions bounds what NewSchedule draws. The zero value means the
// defaults named on each field.
type ScheduleOptions struct {
	// Span is the window in which faults start (default 4 s): the moments
	// of a transfer they may hit.
	Span time.Duration
	// MaxFaults is the most faults in a schedule (default 3; at least 1).
	MaxFaults int
	// MaxBlackout bounds blackouts and blackholes (default 20 s; they
	// last at least 0.5 s).
	MaxBlackout time.Duration
}

// NewSchedule draws a schedule from seed: one to MaxFaults faults, each of
// a kind, side, start and length drawn at random; the same seed and
// options give the same schedule.
func NewSchedule(seed uint64, o ScheduleOptions) Schedule {
	o.Span = cmp.Or(o.Span, 4*time.Second)
	o.MaxFaults = max(1, cmp.Or(o.MaxFaults, 3))
	o.MaxBlackout = max(time.Second, cmp.Or(o.MaxBlackout, 20*time.Second))
	r := rand.New(rand.NewPCG(seed, 0x6e656d65736973)) // "nemesis"
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
	}
	// Long faults are rarer than short ones, as on real links: the length
	// is drawn on a log scale between its bounds.
	logBetween := func(lo, hi time.Duration) time.Duration {
		f := float64(lo) * math.Pow(float64(hi)/float64(lo), r.Float64())
		return time.Duration(f).Round(time.Millisecond)
	}
	s := Schedule{Seed: seed}
	for range 1 + r.IntN(o.MaxFaults) {
		f := Fault{At: between(0, o.Span)}
		side := Side(r.IntN(3))
		switch r.IntN(10) {
		case 0, 1:
			f.Kind, f.From = LossBurst, side
			f.Loss = []float64{0.05, 0.1, 0.2, 0.3, 0.5}[r.IntN(5)]
			f.For = logBetween(500*time.Millisecond, min(10*time.Second, o.MaxBlackout))
		case 2, 3, 4:
			f.Kind, f.From = Blackout, side
			f.For = logBetween(500*time.Millisecond, o.MaxBlackout)
		case 5:
			// An ACK-path stall: the server's side (B) goes dark early,
			// while the client is still sending its message.
			f.Kind, f.From = Blackout, FromB
			f.At = between(0, o.Span/4)
			f.For = logBetween(500*time.Millisecond, o.MaxBlackout)
		case 6, 7:
			f.Kind, f.From = RateChange, Side(r.IntN(2))
			f.Rate = []int64{64_000, 200_000, 1_000_000, 5_000_000}[r.IntN(4)]
			f.For = logBetween(500*time.Millisecond, min(10*time.Second, o.MaxBlackout))
		case 8:
			f.Kind, f.From = MTUBlackhole, side
			f.MaxPacket = []int{576, 1000, 1400}[r.IntN(3)]
			f.For = logBetween(500*time.Millisecond, o.MaxBlackout)
		case 9:
			f.Kind, f.From = Reset, Side(r.IntN(2))
			f.For = between(200*time.Millisecond, 2*time.Second)
		}
		s.Faults = append(s.Faults, f)
	}
	slices.SortStableFunc(s.Faults, func(a, b Fault) int { return cmp.Compare(a.At, b.At) })
	return s
}

// Run applies s to l: each fault from its At for its For, starting now,
// and returns when the last one has been lifted (or ctx ends: the faults
// active then are lifted too). Overlapping faults combine: a side is dark
// while any blackout of it lasts, loses packets at the highest rate of
// its active bursts, and is limited by the latest active rate change.
func (l *Link) Run(ctx context.Context, s Schedule) error {
	var times []time.Duration
	for _, f := range s.Faults {
		times = append(times, f.At, f.At+f.For)
	}
	slices.Sort(times)
	times = slices.Compact(times)
	start := time.Now()
	defer l.setState(nil, 0) // everything lifted, whatever happened
	for _, at := range times {
		t := time.NewTimer(time.Until(start.Add(at)))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if err := l.setState(s.Faults, at); err != nil {
			return err
		}
	}
	return nil
}

// sideState is what the faults active at one moment do to one side's
// packets.
type sideState struct {
	loss      float64
	dark      bool
	resetting bool
	maxPacket int
	rate      int64
	rateFrom  time.Duration
}

// setState sets every knob to what the faults active at at say (nil
// faults: none), applying the iptables rules once.
func (l *Link) setState(faults []Fault, at time.Duration) error {
	var st [2]sideState
	for _, f := range faults {
		if at < f.At || at >= f.At+f.For {
			continue
		}
		for i, h := range []Side{FromA, FromB} {
			if f.From != h && f.From != BothWays {
				continue
			}
			s := &st[i]
			switch f.Kind {
			case LossBurst:
				s.loss = max(s.loss, f.Loss)
			case Blackout:
				s.dark = true
			case Reset:
				s.resetting = true
			case MTUBlackhole:
				if s.maxPacket == 0 || f.MaxPacket < s.maxPacket {
					s.maxPacket = f.MaxPacket
				}
			case RateChange:
				if s.rate == 0 || f.At >= s.rateFrom {
					s.rate, s.rateFrom = f.Rate, f.At
				}
			}
		}
	}
	var rates [2]int64
	l.mu.Lock()
	for i, h := range []*Host{l.A, l.B} {
		h.loss, h.dark, h.resetting, h.maxPacket = st[i].loss, st[i].dark, st[i].resetting, st[i].maxPacket
		rates[i] = h.rate
	}
	l.mu.Unlock()
	err := l.apply()
	for i, h := range []*Host{l.A, l.B} {
		if rates[i] == st[i].rate {
			continue
		}
		if rerr := h.SetRate(st[i].rate, 500*time.Millisecond); err == nil {
			err = rerr
		}
	}
	return err
}

// isDark and currentRate read the knobs, for tests.
func (h *Host) isDark() bool {
	h.link.mu.Lock()
	defer h.link.mu.Unlock()
	return h.dark
}

func (h *Host) currentRate() int64 {
	h.link.mu.Lock()
	defer h.link.mu.Unlock()
	return h.rate
}
