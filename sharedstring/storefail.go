package sharedstring

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/tcplab/tcplab/store"
)

// What a client is told when the store cannot do its part: letters that
// could not be stored, and a v that the store lost and began again.
//
// Letters the store refused are never answered. A framed client gets an
// 'e' frame saying why, then the connection closes; a classic client has
// no way to be told, so its connection closes. Either way the client knows
// its last letters are not in v, and may reconnect once the store works.
//
// A store.Generational store (Redis) can lose v and begin it again. A
// framed client holds a copy of v and is sent only what it lacks, so after
// a reset it would be shown its old copy's bytes as v: instead it gets an
// 'e' frame saying v was reset, and reconnecting shows it the true v. A
// classic client is sent all of v with every reply, so it sees the true v
// anyway.

// appendGen is Store.Append with the generation of the answer.
func (s *Server) appendGen(ctx context.Context, p []byte) ([]byte, uint64, error) {
	if s.gens != nil {
		return s.gens.AppendGen(ctx, p)
	}
	v, err := s.Store.Append(ctx, p)
	return v, 0, err
}

// valueGen is Store.Value with the generation of the answer.
func (s *Server) valueGen(ctx context.Context) ([]byte, uint64, error) {
	if s.gens != nil {
		return s.gens.ValueGen(ctx)
	}
	v, err := s.Store.Value(ctx)
	return v, 0, err
}

// staleGen reports whether an answer of generation gen belongs to another
// v than the one the client holds; a client that holds nothing yet takes
// the answer's generation as its own. c.mu must be held.
func (c *conn) staleGen(gen uint64) bool {
	if c.have == 0 {
		c.gen = gen
		return false
	}
	return gen != c.gen
}

// endReset tells a framed client that v was reset (c.mu held) and returns
// the reason the connection ends. After letters, those letters are in the
// new v: only their 'r' frames are not sent.
func (c *conn) endReset(now int, letters bool) error {
	stored := ""
	if letters {
		stored = "; your last letters are in it"
	}
	msg := fmt.Sprintf("v was reset: the store lost the v you hold (%d bytes) and began again (now %d bytes%s); reconnect to see it", c.have, now, stored)
	c.sendError(msg)
	return errors.New(msg)
}

// notStored turns the error of an append into the reason the connection
// ends, telling a framed client why first. An append cut short by the
// server closing is not the client's business.
func (c *conn) notStored(ctx context.Context, err error) error {
	if ctx.Err() != nil || !c.framed {
		return err
	}
	var msg string
	switch {
	case errors.Is(err, store.ErrFull):
		msg = fmt.Sprintf("letters not stored: v has reached its size limit of %d bytes", c.s.maxValue())
	case diskErrno(err) != 0:
		msg = "letters not stored: the server cannot write its data file (" + diskErrno(err).Error() + "); try again later"
	default:
		// Store errors name files and addresses: the log has them.
		msg = "letters not stored: the server's store failed; try again later"
	}
	c.mu.Lock()
	c.sendError(msg)
	c.mu.Unlock()
	return err
}

// sendError writes an 'e' frame carrying msg (c.mu held); the caller then
// closes the connection.
func (c *conn) sendError(msg string) {
	c.write([][]byte{errorFrame(msg)})
}

// diskErrno returns the errno of a disk that refused a write (full, over
// quota, failing, read-only), or 0: those a client may be told, unlike the
// rest of a store's error, which names files and hosts.
func diskErrno(err error) syscall.Errno {
	for _, e := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS, syscall.EFBIG} {
		if errors.Is(err, e) {
			return e
		}
	}
	return 0
}
