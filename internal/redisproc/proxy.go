package redisproc

import (
	"net"
	"sync"
)

// Proxy forwards TCP connections from a loopback port to a Redis server and
// can be pointed at another one, as a failover moves a virtual address or
// a Sentinel-aware client moves to the new master: Point closes every
// connection forwarded so far, and new ones reach the new target. It can
// also cut the path without closing anything, as a network partition
// does (Partition).
type Proxy struct {
	ln     net.Listener
	mu     sync.Mutex
	target string
	conns  map[net.Conn]struct{}
	closed bool
	cut    chan struct{} // non-nil while partitioned; closed when healed
	wg     sync.WaitGroup
}

// StartProxy starts a proxy to target (host:port) on a loopback port; the
// caller closes it.
func StartProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Partition cuts the path (on) or heals it. While it is cut, nothing
// crosses either way and nothing is closed: bytes sent wait, as in a
// network partition that TCP rides out, and cross when it heals; new
// connections are accepted and wait too.
func (p *Proxy) Partition(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case on && p.cut == nil:
		p.cut = make(chan struct{})
	case !on && p.cut != nil:
		close(p.cut)
		p.cut = nil
	}
}

// pass waits while the path is cut.
func (p *Proxy) pass() {
	p.mu.Lock()
	cut := p.cut
	p.mu.Unlock()
	if cut != nil {
		<-cut
	}
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is the store URL for key through the proxy (see Server.URL).
func (p *Proxy) URL(key string, extra ...string) string {
	u := "redis://" + p.Addr() + "/0?key=" + key
	for _, e := range extra {
		u += "&" + e
	}
	return u
}

// Port is the proxy's port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Point sends new connections to target and closes the current ones.
func (p *Proxy) Point(target string) {
	p.mu.Lock()
	p.target = target
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.Partition(false)
	p.ln.Close()
	p.Point("")
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		target, closed := p.target, p.closed
		p.mu.Unlock()
		if closed {
			c.Close()
			return
		}
		up, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.target != target || p.closed { // pointed elsewhere meanwhile
			p.mu.Unlock()
			c.Close()
			up.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.pass()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}
