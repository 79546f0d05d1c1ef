package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/status"
	"github.com/tcplab/tcplab/stream"
)

// svrTLSFlags are svr's TLS flags. Without --tls-cert svr speaks plaintext,
// as the tutorial's svr.py does.
type svrTLSFlags struct{ cert, key, clientCA *string }

func addSVRTLSFlags(fs *flagSet) svrTLSFlags {
	return svrTLSFlags{
		cert:     fs.String("tls-cert", "", "serve over TLS only, with the certificate (chain) in this PEM `file`; reloaded on SIGHUP"),
		key:      fs.String("tls-key", "", "the private key of --tls-cert, a PEM `file`"),
		clientCA: fs.String("tls-client-ca", "", "mutual TLS: serve only clients whose certificate is signed by a CA in this PEM `file`"),
	}
}

// load checks the flags' combination (a usage error, exit 2) and loads the
// files (a one-line error naming the file, exit 1). Without --tls-cert it
// returns nil: plaintext.
func (f svrTLSFlags) load() (*endpoint.TLSServer, error) {
	if err := checkKeyPair(*f.cert, *f.key); err != nil {
		return nil, err
	}
	switch {
	case *f.clientCA != "" && *f.cert == "":
		return nil, usagef("--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS")
	case *f.cert == "":
		return nil, nil
	}
	return endpoint.NewTLSServer(*f.cert, *f.key, *f.clientCA)
}

// tlsMode names how svr serves, for its start-up log.
func tlsMode(s *endpoint.TLSServer) string {
	switch {
	case s == nil:
		return "off"
	case s.MutualTLS():
		return "mutual"
	}
	return "on"
}

// tlsGate is what withTLS checks before it spends a handshake on a client.
type tlsGate struct {
	nets    []netip.Prefix // --allow; empty: everyone
	timeout time.Duration  // for the handshake; 0: status.DefaultReadTimeout
	perSec  float64        // --rate; 0: no limit
	burst   int            // --burst
}

// withTLS returns h itself without TLS. With TLS, each connection is first
// checked against gate.nets (--allow: a client that will be refused costs
// no handshake) and a handshake rate limit per address, then handshaken
// within gate.timeout, and only then handed to h. The handshake runs in the
// handler, so it holds one of the server's connection slots like any
// client and counts against every cap; a client that fails it (plaintext,
// no certificate, a certificate from another CA) is logged and closed
// without a word from h, and nothing runs for it.
//
// The handshake limit is twice --rate and --burst, per IPv4 address or
// IPv6 /64 (see handshakeSource): a client a little over the request limit
// still gets svr's readable "rate limit exceeded" (which needs a handshake
// to be sent), while a flood from one address, each connection costing a
// public-key signature, is closed before any.
func withTLS(h server.Handler, s *endpoint.TLSServer, gate tlsGate, log *slog.Logger) server.Handler {
	if s == nil {
		return h
	}
	timeout := gate.timeout
	if timeout <= 0 {
		timeout = status.DefaultReadTimeout
	}
	var limiter *status.ClientLimiter
	if gate.perSec > 0 {
		limiter = status.NewClientLimiter(2*gate.perSec, 2*gate.burst)
	}
	return server.HandlerFunc(func(ctx context.Context, conn net.Conn) {
		addr := peerAddr(conn)
		if !inNets(addr, gate.nets) {
			h.ServeConn(ctx, conn) // svr's own --allow refusal, before any handshake
			return
		}
		if limiter != nil && !limiter.Allow(handshakeSource(addr)) {
			log.Info("client refused", "addr", conn.RemoteAddr().String(), "err", "over the handshake rate limit")
			return
		}
		tc, err := s.Handshake(ctx, conn, timeout)
		if err != nil {
			log.Info("client refused", "addr", conn.RemoteAddr().String(), "err", err.Error())
			if errors.Is(err, endpoint.ErrNotTLS) {
				// One plaintext line, so a plaintext wps prints why
				// instead of an empty answer. The request was only
				// peeked at: read it before the close, or the kernel
				// makes the close a reset.
				conn.SetWriteDeadline(time.Now().Add(timeout))
				if stream.WriteFinal(conn, []byte(notTLSAnswer)) == nil {
					conn.SetReadDeadline(time.Now().Add(time.Second))
					io.CopyN(io.Discard, conn, 4096)
				}
			}
			return
		}
		h.ServeConn(ctx, tc)
	})
}

// handshakeSource is what the handshake rate limit counts for a client at
// addr: an IPv4 address, or the /64 of an IPv6 one, since a host is
// routinely given a whole /64 and could otherwise take a fresh burst of
// handshakes from each of its addresses.
func handshakeSource(addr netip.Addr) netip.Addr {
	if addr.Is6() {
		return netip.PrefixFrom(addr, 64).Masked().Addr()
	}
	return addr
}

// notTLSAnswer is what a plaintext client of a TLS svr reads.
const notTLSAnswer = "this server speaks TLS only (tcplab wps --tls-ca FILE)\n"

// peerAddr is conn's peer address, IPv4 in IPv6 unmapped, as svr's
// --allow and rate limit see it.
func peerAddr(conn net.Conn) netip.Addr {
	ap, err := netip.ParseAddrPort(conn.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// inNets reports whether addr is in nets (everyone when nets is empty), as
// svr's --allow decides.
func inNets(addr netip.Addr, nets []netip.Prefix) bool {
	if len(nets) == 0 {
		return true
	}
	for _, n := range nets {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

// catchHangups catches SIGHUP from now on, queueing one for
// reloadOnHangup. svr calls it first thing: a SIGHUP not caught ends the
// process, and systemctl reload (or a certificate renewal hook) may send
// one while svr is still loading its files. Stop it with signal.Stop.
func catchHangups() chan os.Signal {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup
}

// reloadOnHangup reloads s's files on each SIGHUP caught on hup (see
// catchHangups) until ctx ends, as daemons do (systemctl reload):
// connections in flight keep the certificate they began with, later
// handshakes get the new one, and a reload that fails keeps the old one
// and logs an ERROR. A SIGHUP caught while svr was starting reloads once
// now. Without TLS a SIGHUP is logged and ignored rather than ending the
// server. The returned stop waits for the watcher to end and stops
// catching SIGHUP.
func reloadOnHangup(ctx context.Context, hup chan os.Signal, s *endpoint.TLSServer, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			if s == nil {
				log.Info("SIGHUP: nothing to reload (no --tls-cert)")
				continue
			}
			if err := s.Reload(); err != nil {
				log.Error("SIGHUP: TLS reload failed; keeping the certificate in use", "err", err.Error())
				continue
			}
			leaf := s.Leaf()
			log.Info("SIGHUP: TLS certificate reloaded", "subject", leaf.Subject.String(), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
		}
	})
	return func() {
		signal.Stop(hup)
		cancel()
		wg.Wait()
	}
}
