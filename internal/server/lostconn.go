package server

import (
	"net"
	"time"
)

// lostConn stands for a connection that was lost on its way back from
// parking (see attach): every read and write fails with err, so its
// handler ends it as a failed connection, and is still called.
type lostConn struct {
	err          error
	laddr, raddr net.Addr
}

func (c *lostConn) Read([]byte) (int, error)         { return 0, c.err }
func (c *lostConn) Write([]byte) (int, error)        { return 0, c.err }
func (c *lostConn) Close() error                     { return nil }
func (c *lostConn) LocalAddr() net.Addr              { return c.laddr }
func (c *lostConn) RemoteAddr() net.Addr             { return c.raddr }
func (c *lostConn) SetDeadline(time.Time) error      { return nil }
func (c *lostConn) SetReadDeadline(time.Time) error  { return nil }
func (c *lostConn) SetWriteDeadline(time.Time) error { return nil }
