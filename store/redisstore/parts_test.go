package redisstore

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// A success whose request was sent before Redis was found lost proves
// nothing (its reply may have been read from a Redis being killed): only
// one sent after the loss ends it, once, and opens the up channel.
// (Taking the earlier one for a recovery made the log flap between
// "lost" and "reachable again".)
func TestHealthIgnoresRepliesSentBeforeTheLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHealth()
		before := time.Now()
		time.Sleep(time.Millisecond) // synctest's clock, as in every Sleep here
		if !h.lost(errors.New("connection lost")) {
			t.Fatal("first loss not reported as first")
		}
		if h.lost(errors.New("timed out")) {
			t.Fatal("second loss reported as first")
		}
		up := h.upChan()
		if h.back(before) {
			t.Fatal("a reply sent before the loss ended it")
		}
		select {
		case <-up:
			t.Fatal("up channel closed by a reply sent before the loss")
		default:
		}
		if err := h.err(); err == nil || err.Error() != "timed out" {
			t.Fatalf("err() = %v, want the latest cause", err)
		}
		time.Sleep(time.Millisecond) // on the bubble's clock: a reply sent after the loss
		if !h.back(time.Now()) {
			t.Fatal("a reply sent after the loss did not end it")
		}
		<-up
		if h.back(time.Now()) {
			t.Fatal("a second recovery reported")
		}
		if h.err() != nil || h.since().IsZero() {
			t.Fatalf("after recovery: err %v, since %v", h.err(), h.since())
		}
	})
}

// The group's count as last read is used only while nothing can have
// changed it unannounced: it was read under the current stale value, the
// subscription is up, and it is younger than the age given.
func TestCountCacheFreshness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var c countCache
		_, gen, ok := c.get(time.Second)
		if ok {
			t.Fatal("an empty cache answered")
		}
		c.put(gen, 7)
		if _, _, ok := c.get(time.Second); ok {
			t.Fatal("answered while not subscribed: changes could be missed")
		}
		c.subscribed.Store(true)
		if n, _, ok := c.get(time.Second); !ok || n != 7 {
			t.Fatalf("get = %d %v, want 7 from the cache", n, ok)
		}
		time.Sleep(time.Second) // on the bubble's clock: the count ages to the limit
		if _, _, ok := c.get(time.Second); ok {
			t.Fatal("answered with a count as old as the age limit")
		}
		_, gen, _ = c.get(time.Second)
		c.put(gen, 8)
		c.invalidate() // a "clients" message
		if _, _, ok := c.get(time.Second); ok {
			t.Fatal("answered with a count read before a change was announced")
		}
		_, gen, _ = c.get(time.Second)
		c.put(gen, 9)
		if n, _, ok := c.get(time.Second); !ok || n != 9 {
			t.Fatalf("get = %d %v, want 9 read after the change", n, ok)
		}
	})
}

// The local copy grows with answers that continue it, serves an older
// point of itself to an overtaken request, and is dropped (a new
// generation) when Redis answers with a v that does not continue it; an
// answer to a request built before the drop stays in its own generation.
// Slices handed out are never written again.
func TestLocalCopyMerge(t *testing.T) {
	var c localCopy
	before := c.snapshot()
	v, gen, dropped, _ := c.merge(before, answer{epoch: "e1", data: "hello", sum: 1}, false)
	if string(v) != "hello" || gen != 0 || dropped != 0 {
		t.Fatalf("first answer: %q gen %d dropped %d", v, gen, dropped)
	}
	first := v
	old := c.snapshot()
	v, gen, _, _ = c.merge(old, answer{epoch: "e1", from: 5, data: " world", sum: 2}, false)
	if string(v) != "hello world" || gen != 0 {
		t.Fatalf("continuing answer: %q gen %d", v, gen)
	}
	if v, _, _, _ = c.merge(before, answer{epoch: "e1", data: "hello", sum: 1}, false); string(v) != "hello" {
		t.Fatalf("overtaken answer: %q, want the older point hello", v)
	}
	// v rolled back to "hello" (a failover): the answer matches the start
	// of the copy, but the script found v shorter than the copy sent, and
	// that is no older point. (Before: taken for one, and a watcher holding
	// "hello world" was never told.)
	snap := c.snapshot()
	rolled := localCopy{epoch: snap.epoch, buf: snap.buf, sum: snap.sum, gen: snap.gen}
	if v, gen, dropped, _ := rolled.merge(rolled.snapshot(), answer{epoch: "e1", data: "hello", sum: 1, why: "diverged"}, true); string(v) != "hello" || gen != 1 || dropped != len("hello world") {
		t.Fatalf("rolled back: %q gen %d dropped %d, want hello in gen 1, 11 bytes dropped", v, gen, dropped)
	}
	v, gen, dropped, _ = c.merge(c.snapshot(), answer{epoch: "e2", data: "Z", sum: 3, why: "epoch"}, false)
	if string(v) != "Z" || gen != 1 || dropped != len("hello world") {
		t.Fatalf("reset: %q gen %d dropped %d, want Z gen 1 dropped 11", v, gen, dropped)
	}
	v, gen, _, _ = c.merge(old, answer{epoch: "e1", from: 5, data: "!", sum: 4}, false)
	if string(v) != "hello!" || gen != 0 {
		t.Fatalf("answer to a request built before the reset: %q gen %d, want hello! in gen 0", v, gen)
	}
	v, gen, dropped, _ = c.merge(c.snapshot(), answer{data: "raw", why: "foreign"}, false)
	if string(v) != "raw" || gen != 2 || dropped != 1 || c.snapshot().buf != nil {
		t.Fatalf("answer with no epoch: %q gen %d dropped %d, copy %q: want raw, gen 2, no copy kept", v, gen, dropped, c.snapshot().buf)
	}
	if string(first) != "hello" {
		t.Fatalf("a slice handed out changed to %q", first)
	}
}

// A read sent before the copy last changed, whose answer does not continue
// the copy, may be older than the copy: it is not merged, and the read is
// asked again; asked again with the copy as it is, the same answer is a
// reset. (Before: a read sent while v was absent and answered after the
// first append dropped the copy: a false reset.)
func TestLocalCopyMergeOvertakenRead(t *testing.T) {
	var c localCopy
	read := c.snapshot() // a read goes out while v is absent
	if _, _, _, ok := c.merge(c.snapshot(), answer{epoch: "e1", data: "hello", sum: 1, why: "absent"}, false); !ok {
		t.Fatal("an append's answer not merged")
	}
	if _, _, dropped, ok := c.merge(read, answer{why: "absent"}, true); ok || dropped != 0 {
		t.Fatalf("overtaken read: merged %v, dropped %d; want it asked again", ok, dropped)
	}
	if v, gen, _, ok := c.merge(c.snapshot(), answer{epoch: "e1", from: 5, sum: 1}, true); !ok || string(v) != "hello" || gen != 0 {
		t.Fatalf("read asked again: %q gen %d merged %v, want hello in gen 0", v, gen, ok)
	}
	v, gen, dropped, ok := c.merge(c.snapshot(), answer{why: "absent"}, true)
	if !ok || string(v) != "" || gen != 1 || dropped != 5 {
		t.Fatalf("read after a DEL: %q gen %d dropped %d merged %v, want a reset to gen 1", v, gen, dropped, ok)
	}
}
