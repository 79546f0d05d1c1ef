package redisstore

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/tcplab/tcplab/internal/redistest"
	"github.com/tcplab/tcplab/internal/testkit"
)

// Under heavy concurrent appends from two stores (four scripts on the wire
// per store, copies racing), nothing is ever taken for a reset: every
// answer stays in the first generation and no WARN is logged.
func TestNoFalseReset(t *testing.T) {
	r := redistest.New(t)
	var logs testkit.SafeBuffer
	stores := []*Store{openLogged(t, r.URL("v"), &logs), openLogged(t, r.URL("v"), &logs)}
	var wg sync.WaitGroup
	for c := range 100 {
		wg.Go(func() {
			s := stores[c%2]
			for i := range 200 {
				var err error
				var gen uint64
				if i%10 == 9 {
					_, gen, err = s.ValueGen(context.Background())
				} else {
					_, gen, err = s.AppendGen(context.Background(), []byte{byte(c), byte(i)})
				}
				if err != nil {
					t.Error(err)
					return
				}
				if gen != 0 {
					t.Errorf("client %d op %d: generation %d, want 0: a false reset", c, i, gen)
					return
				}
			}
		})
	}
	wg.Wait()
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("WARN under concurrent appends:\n%s", logs.String())
	}
}
