package status

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/tcplab/tcplab/internal/server"
)

// maxTracked bounds the addresses a ClientLimiter remembers, so a flood
// from many addresses cannot grow it without limit.
const maxTracked = 65536

// ClientLimiter allows each client address Rate requests a second on
// average, in bursts of up to Burst: one busy client cannot make the server
// spend its capacity on it alone. An address is what server.Source says:
// an IPv4 address, or an IPv6 /64, so a host cannot take a fresh burst
// from each address of its /64. Memory is bounded: addresses idle for a
// minute are forgotten, and at most maxTracked are kept.
type ClientLimiter struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	clients map[netip.Prefix]*clientRate
	swept   time.Time
}

type clientRate struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewClientLimiter allows perSecond requests a second per address, in
// bursts of burst (at least 1).
func NewClientLimiter(perSecond float64, burst int) *ClientLimiter {
	return &ClientLimiter{rate: rate.Limit(perSecond), burst: max(burst, 1), clients: make(map[netip.Prefix]*clientRate)}
}

// Allow reports whether addr (its IPv4 address or IPv6 /64) may make a
// request now, and counts it.
func (l *ClientLimiter) Allow(addr netip.Addr) bool {
	src := server.Source(addr)
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.clients[src]
	if !ok {
		if len(l.clients) >= maxTracked/2 && now.Sub(l.swept) > time.Second {
			l.sweep(now)
		}
		if len(l.clients) >= maxTracked {
			// Still full of active addresses: start afresh rather than grow.
			// Everyone gets a new burst, which is the lesser harm.
			clear(l.clients)
		}
		c = &clientRate{lim: rate.NewLimiter(l.rate, l.burst)}
		l.clients[src] = c
	}
	c.seen = now
	return c.lim.AllowN(now, 1)
}

func (l *ClientLimiter) sweep(now time.Time) {
	l.swept = now
	for a, c := range l.clients {
		if now.Sub(c.seen) > time.Minute {
			delete(l.clients, a)
		}
	}
}

// tracked reports how many addresses are remembered (for tests).
func (l *ClientLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}
