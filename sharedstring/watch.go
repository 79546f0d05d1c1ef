package sharedstring

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/store"
)

// Watchers wait for changes of v, not for bytes: a watcher whose client
// says nothing is parked like any silent client (see conn.serve), and what
// sends it the 'w' frames must not hold a goroutine for it either. So one
// goroutine per server takes the store's change signals for every watcher
// (watchers.run), reads v once per signal, and starts, for each watcher
// that lacks bytes of it, a goroutine that writes the frame and ends
// (watcher.send). A watcher of a v that does not change costs no
// goroutine; one of a v that changes costs one while its frame is being
// written, as many at once as there are watchers to write to. Nor a
// net.Conn: a quiet watcher is parked as a bare socket like any quiet
// client (server.ParkSocket), and its frames are written through the
// server, on the bare descriptor (server.Write).
//
// A watcher is current or told, never connected and silent on a stale v:
// when the store cannot be read (Redis stalled, lost, partitioned away),
// run reads again at the store's next signal (a store that finds Redis
// again signals at once) or after watchRetry, and catches every watcher
// up when it answers; if reading has failed for WatchOutage, every
// watcher is ended with an 'e' frame saying why. A store that cannot be
// watched at all ends its watchers at once. The waiting holds no
// goroutine per watcher either: run's one timer serves them all.

// watchers is a Server's watch connections and its one subscription to
// the store's changes, held while there is a watcher.
type watchers struct {
	mu   sync.Mutex
	set  map[*conn]struct{}
	v    []byte // the last v read for them, and its generation
	gen  uint64
	read bool // v has been read since the subscription began, and since the last failed read
	// end is the 'e' frame's message for watchers being ended (reading v
	// failed for too long, or v cannot be watched); watchers marked end
	// get it. ended: v cannot be watched, so whoever joins is ended too.
	end     string
	ended   bool
	stop    context.CancelFunc
	stopped chan struct{} // closed when run has returned
}

// watcher is a watch connection's state beside conn's.
type watcher struct {
	ctx     context.Context // its handler's: to write and end it while parked (server.Write)
	shown   int             // how much of v it has been sent, as far as the watchers know
	gen     uint64          // of that v
	sending bool            // a send goroutine runs
	again   bool            // v changed while it ran: it goes round once more
	left    bool            // the client left: no more sends
	end     bool            // it is to be sent watchers.end and ended
	sent    chan struct{}   // closed when the send goroutine ends
}

// join signs c up for changes, and sends it v now if it lacks bytes of it.
func (ws *watchers) join(ctx context.Context, c *conn) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.set == nil {
		ws.set = make(map[*conn]struct{})
	}
	ws.set[c] = struct{}{}
	c.w.ctx = ctx
	if ws.stop == nil {
		ctx, stop := context.WithCancel(ctx)
		ws.stop, ws.stopped, ws.read = stop, make(chan struct{}), false
		go ws.run(ctx, c.s, ws.stopped)
	} else if ws.ended {
		c.w.end = true
		ws.poke(c)
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
		ws.stop, ws.v, ws.end, ws.ended = nil, nil, "", false
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
// sent what it lacks, until ctx ends or the store closes. A read that
// fails is tried again at the next signal or after watchRetry; after
// WatchOutage of failed reads every watcher is told and ended, and the
// time counts again for those who join later.
func (ws *watchers) run(ctx context.Context, s *Server, stopped chan struct{}) {
	defer close(stopped)
	changes, err := s.Store.Changes(ctx)
	if err != nil {
		if ctx.Err() == nil {
			ws.mu.Lock()
			ws.ended = true
			ws.endAll("the server cannot watch v for changes; try again later")
			ws.mu.Unlock()
		}
		return
	}
	var failing time.Time // since when reads fail; zero while they work
	var retry *time.Timer // made at the first failed read
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		v, gen, err := s.valueGen(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, store.ErrClosed) {
				return
			}
			now := time.Now()
			ws.mu.Lock()
			if ctx.Err() != nil { // the last watcher left meanwhile
				ws.mu.Unlock()
				return
			}
			ws.read = false // a watcher who joins now waits for a read that works
			if failing.IsZero() {
				failing = now
			}
			if outage := s.watchOutage(); now.Sub(failing) >= outage {
				if len(ws.set) > 0 {
					s.log.Warn("ending watchers: v could not be read", "watchers", len(ws.set), "for", now.Sub(failing).Round(time.Second), "err", err)
				}
				ws.endAll(fmt.Sprintf("the server could not read v from its store for %s: v may have changed since what you were shown; try again later", outage))
				failing = now
			}
			ws.mu.Unlock()
			if retry == nil {
				retry = time.NewTimer(watchRetry)
			} else {
				retry.Reset(watchRetry)
			}
			select {
			case _, ok := <-changes:
				if !ok {
					return
				}
			case <-retry.C:
			case <-ctx.Done():
				return
			}
			continue
		}
		failing = time.Time{}
		ws.mu.Lock()
		if ctx.Err() == nil {
			ws.v, ws.gen, ws.read = v, gen, true
			for c := range ws.set {
				ws.poke(c)
			}
		}
		ws.mu.Unlock()
		if _, ok := <-changes; !ok {
			return
		}
	}
}

// endAll has every watcher now signed up sent msg in an 'e' frame and
// ended. ws.mu is held.
func (ws *watchers) endAll(msg string) {
	ws.end = msg
	for c := range ws.set {
		c.w.end = true
		ws.poke(c)
	}
}

// poke has c sent the last v read: by a new goroutine, or by the one
// already sending, which goes round once more. ws.mu is held.
func (ws *watchers) poke(c *conn) {
	w := c.w
	if w.left || (!w.sending && !w.end && len(ws.v) <= w.shown && ws.gen == w.gen) {
		return // nothing it lacks: no goroutine
	}
	if w.sending {
		w.again = true
		return
	}
	w.sending, w.sent = true, make(chan struct{})
	go ws.send(c, w.sent)
}

// send writes c the 'w' frames of the last v read until c holds it, or
// the 'e' frame that ends it.
func (ws *watchers) send(c *conn, sent chan struct{}) {
	defer close(sent)
	for {
		ws.mu.Lock()
		v, gen := ws.v, ws.gen
		end, msg := c.w.end, ws.end
		c.w.again = false
		ws.mu.Unlock()
		if end {
			c.endWatch(msg)
			ws.mu.Lock()
			c.w.left = true // its handler is ending it
			c.w.sending, c.w.sent = false, nil
			ws.mu.Unlock()
			return
		}
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
		server.InterruptServed(c.w.ctx, false)
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
		server.InterruptServed(c.w.ctx, false) // the client is gone
		return false
	}
	return true
}

// endWatch ends a watcher with an 'e' frame carrying msg; its handler is
// interrupted, and ends the connection.
func (c *conn) endWatch(msg string) {
	c.mu.Lock()
	c.sendError(msg)
	c.mu.Unlock()
	server.InterruptServed(c.w.ctx, false)
}

// watchRetry bounds how long the watchers wait to read v again after a
// read failed, when the store does not signal first.
const watchRetry = time.Second

func (s *Server) watchOutage() time.Duration {
	if s.WatchOutage > 0 {
		return s.WatchOutage
	}
	return DefaultWatchOutage
}
