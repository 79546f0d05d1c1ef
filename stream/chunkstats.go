package stream

import (
	"slices"
	"time"
)

// MaxRecordedChunks bounds how many chunk sizes ChunkStats keeps in order
// (4 bytes each), so a long transfer cannot grow the client without limit.
// Counts, totals and the median stay exact beyond it.
const MaxRecordedChunks = 1 << 20

// ChunkStats describes how a byte stream arrived: how many reads it took and
// how big each was. It is the tutorial's "chunky" lesson (section 2) in
// numbers: the same bytes, sent the same way, arrive in a different number of
// pieces of different sizes from one run to the next.
//
// The zero value is ready to use. It is not safe for concurrent use.
type ChunkStats struct {
	// Sizes holds the chunk sizes in arrival order, up to MaxRecordedChunks.
	Sizes []int32
	// Truncated is set when more chunks arrived than Sizes records.
	Truncated bool

	count  int64
	total  int64
	min    int
	max    int
	bySize map[int]int64 // chunk size -> how many chunks had it; for the exact median
	first  time.Time
	last   time.Time
}

// Add records one chunk of n bytes, read at time t.
func (s *ChunkStats) Add(n int, t time.Time) {
	if s.count == 0 {
		s.min, s.max = n, n
		s.first = t
		s.bySize = make(map[int]int64)
	}
	s.count++
	s.total += int64(n)
	s.min = min(s.min, n)
	s.max = max(s.max, n)
	s.bySize[n]++
	s.last = t
	if len(s.Sizes) < MaxRecordedChunks {
		s.Sizes = append(s.Sizes, int32(n))
	} else {
		s.Truncated = true
	}
}

// Count is the number of chunks.
func (s *ChunkStats) Count() int64 { return s.count }

// Total is the number of bytes in all chunks.
func (s *ChunkStats) Total() int64 { return s.total }

// Min is the smallest chunk, 0 when there were none.
func (s *ChunkStats) Min() int { return s.min }

// Max is the largest chunk, 0 when there were none.
func (s *ChunkStats) Max() int { return s.max }

// Median is the median chunk size, 0 when there were none: the middle
// size, or for an even count the mean of the two middle sizes, rounded
// half up to a whole byte (the median of 3 and 17 is 10). It is exact
// however many chunks there were.
func (s *ChunkStats) Median() int {
	if s.count == 0 {
		return 0
	}
	lower, upper := s.rank((s.count+1)/2), s.rank(s.count/2+1) // 1-based ranks
	return (lower + upper + 1) / 2
}

// rank is the size of the chunk of 1-based rank k in size order.
func (s *ChunkStats) rank(k int64) int {
	sizes := make([]int, 0, len(s.bySize))
	for size := range s.bySize {
		sizes = append(sizes, size)
	}
	slices.Sort(sizes)
	var seen int64
	for _, size := range sizes {
		seen += s.bySize[size]
		if seen >= k {
			return size
		}
	}
	return sizes[len(sizes)-1]
}

// Span is the time from the first chunk to the last.
func (s *ChunkStats) Span() time.Duration { return s.last.Sub(s.first) }
