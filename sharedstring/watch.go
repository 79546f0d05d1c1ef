package sharedstring

import (
	"context"
	"sync"

	"github.com/tcplab/tcplab/internal/server"
)

// Watchers wait for changes of v, not for bytes: a watcher whose client
// says nothing is parked like any silent client (see conn.serve), and what
// sends it the 'w' frames must not hold a goroutine for it either. So one
// goroutine per server takes the store's change signals for every watcher
// (watchers.run), reads v once per signal, and starts, for each watcher
// that lacks bytes of it, a goroutine that writes the frame and ends
// (watcher.send). A watcher of a v that does not change costs no
// goroutine; one of a v that changes costs one while its frame is being
// written, as many at once as there are watchers to write to.

// watchers is a Server's watch connections and its one subscription to
// the store's changes, held while there is a watcher.
type watchers struct {
	mu      sync.Mutex
	set     map[*conn]struct{}
	v       []byte // the last v read for them, and its generation
	gen     uint64
	read    bool // v has been read since the subscription began
	stop    context.CancelFunc
	stopped chan struct{} // closed when run has returned
}

// watcher is a watch connection's state beside conn's.
type watcher struct {
	shown   int           // how much of v it has been sent, as far as the watchers know
	gen     uint64        // of that v
	sending bool          // a send goroutine runs
	again   bool          // v changed while it ran: it goes round once more
	left    bool          // the client left: no more sends
	sent    chan struct{} // closed when the send goroutine ends
}

// join signs c up for changes, and sends it v now if it lacks bytes of it.
func (ws *watchers) join(ctx context.Context, c *conn) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.set == nil {
		ws.set = make(map[*conn]struct{})
	}
	ws.set[c] = struct{}{}
	if ws.stop == nil {
		ctx, stop := context.WithCancel(ctx)
		ws.stop, ws.stopped, ws.read = stop, make(chan struct{}), false
		go ws.run(ctx, c.s, ws.stopped)
	} else if ws.read {
		ws.poke(c)
	}
}

// leave signs c off, waiting for a frame being written to it, and ends
// the subscription with the last watcher.
func (ws *watchers) leave(c *conn) {
	ws.mu.Lock()
	delete(ws.set, c)
	c.w.left = true
	sent := c.w.sent // nil unless a send goroutine runs
	var stopped chan struct{}
	if len(ws.set) == 0 && ws.stop != nil {
		ws.stop()
		stopped = ws.stopped
		ws.stop, ws.v = nil, nil
	}
	ws.mu.Unlock()
	if sent != nil {
		<-sent
	}
	if stopped != nil {
		<-stopped
	}
}

// run reads v at every change signal (coalesced) and has every watcher
// sent what it lacks, until ctx ends or the store closes.
func (ws *watchers) run(ctx context.Context, s *Server, stopped chan struct{}) {
	defer close(stopped)
	changes, err := s.Store.Changes(ctx)
	if err != nil {
		return
	}
	for {
		v, gen, err := s.valueGen(ctx)
		if err == nil {
			ws.mu.Lock()
			if ctx.Err() == nil {
				ws.v, ws.gen, ws.read = v, gen, true
				for c := range ws.set {
					ws.poke(c)
				}
			}
			ws.mu.Unlock()
		}
		if _, ok := <-changes; !ok {
			return
		}
	}
}

// poke has c sent the last v read: by a new goroutine, or by the one
// already sending, which goes round once more. ws.mu is held.
func (ws *watchers) poke(c *conn) {
	w := c.w
	if w.left || (!w.sending && len(ws.v) <= w.shown && ws.gen == w.gen) {
		return // nothing it lacks: no goroutine
	}
	if w.sending {
		w.again = true
		return
	}
	w.sending, w.sent = true, make(chan struct{})
	go ws.send(c, w.sent)
}

// send writes c the 'w' frames of the last v read until c holds it.
func (ws *watchers) send(c *conn, sent chan struct{}) {
	defer close(sent)
	for {
		ws.mu.Lock()
		v, gen := ws.v, ws.gen
		c.w.again = false
		ws.mu.Unlock()
		ok := c.update(v, gen)
		ws.mu.Lock()
		if !ok {
			c.w.left = true // its handler is ending it
		}
		c.w.shown, c.w.gen = max(c.w.shown, len(v)), gen
		if !ok || !c.w.again || c.w.left {
			c.w.sending, c.w.sent = false, nil
			ws.mu.Unlock()
			return
		}
		ws.mu.Unlock()
	}
}

// update sends c a 'w' frame if v has grown beyond what it holds. It
// reports false when the connection is over: a write failed, or v was
// reset (c is told so); its handler is then interrupted, and ends it.
func (c *conn) update(v []byte, gen uint64) bool {
	c.mu.Lock()
	if gen < c.gen {
		v = nil // an answer overtaken by a reset: wait for the next
	} else if c.staleGen(gen) {
		c.endReset(len(v), false)
		c.mu.Unlock()
		server.Interrupt(c.c)
		return false
	}
	var err error
	if len(v) > c.have {
		hdr := appendFrameHeader(nil, KindUpdate, uint64(len(v)), uint32(len(v)-c.have))
		err = c.write([][]byte{hdr, v[c.have:]})
		c.have = len(v)
	}
	c.mu.Unlock()
	if err != nil {
		server.Interrupt(c.c) // the client is gone
		return false
	}
	return true
}
