package endpoint

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/coreos/go-systemd/v22/activation"
)

// Activated is what systemd passed to this process under socket activation
// (a .socket unit, or systemd-socket-activate): one TCP listening socket
// and, optionally, one UDP socket (strsvr's discovery). systemd owns the
// port: it binds it before the server starts (a privileged port needs no
// privilege in the server) and keeps it across restarts, so clients queue
// in its backlog instead of being refused.
type Activated struct {
	stream   *net.TCPListener
	datagram *net.UDPConn
}

// SystemdSockets takes the sockets systemd passed to this process (the
// LISTEN_PID and LISTEN_FDS protocol, sd_listen_fds(3)), once: it unsets
// the variables, so a second call, and any program this process starts,
// finds none. It returns nil, nil when nothing was passed. More than one
// socket of a kind, a socket that is not listening (a .socket unit with
// Accept=yes), or one that is not TCP or UDP is an error: tcplab serves
// exactly one port.
func SystemdSockets() (*Activated, error) {
	return activated(activation.Files(true))
}

// activated sorts files, sockets passed by systemd, into an Activated. It
// takes ownership of files: they are closed, their sockets kept as
// duplicates in the net types.
func activated(files []*os.File) (*Activated, error) {
	if len(files) == 0 {
		return nil, nil
	}
	a := &Activated{}
	var err error
	for _, f := range files {
		if err == nil {
			err = a.add(f)
		}
		f.Close()
	}
	if err == nil && a.stream == nil {
		err = errors.New("no TCP listening socket among them (ListenStream= in the .socket unit)")
	}
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("sockets from systemd: %w", err)
	}
	return a, nil
}

func (a *Activated) add(f *os.File) error {
	if ln, err := net.FileListener(f); err == nil {
		tl, ok := ln.(*net.TCPListener)
		switch {
		case !ok:
			ln.Close()
			return fmt.Errorf("%s is a %s socket, not TCP", f.Name(), ln.Addr().Network())
		case a.stream != nil:
			ln.Close()
			return errors.New("more than one TCP socket: tcplab serves one port")
		}
		a.stream = tl
		if listening, err := isListening(tl); err != nil || !listening {
			return fmt.Errorf("%s is a TCP connection, not a listening socket (Accept=yes in the .socket unit? tcplab needs Accept=no)", f.Name())
		}
		return nil
	}
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name(), Cause(err))
	}
	uc, ok := pc.(*net.UDPConn)
	switch {
	case !ok:
		pc.Close()
		return fmt.Errorf("%s is a %s socket, not UDP", f.Name(), pc.LocalAddr().Network())
	case a.datagram != nil:
		pc.Close()
		return errors.New("more than one UDP socket: tcplab serves one port")
	}
	a.datagram = uc
	return nil
}

// Port is the TCP listening socket's port.
func (a *Activated) Port() int { return a.stream.Addr().(*net.TCPAddr).Port }

// Listen hands over the TCP listening socket with the options Listen sets
// on its own listeners.
func (a *Activated) Listen() (net.Listener, error) { return a.take(streamConfig) }

// ListenForRequests hands over the TCP listening socket with the options
// ListenForRequests sets on its own listeners (deferred accept, no
// keep-alive probes).
func (a *Activated) ListenForRequests() (net.Listener, error) { return a.take(requestsConfig) }

// take applies lc to the listening socket: its Control to the socket
// itself (options such as TCP_DEFER_ACCEPT hold on a socket already
// listening, and accepted sockets inherit them), its keep-alive settings to
// each accepted connection, as Go does for listeners it opens.
func (a *Activated) take(lc net.ListenConfig) (net.Listener, error) {
	ln := a.stream
	addr := ln.Addr().String()
	if lc.Control != nil {
		rc, err := ln.SyscallConn()
		if err != nil {
			return nil, fmt.Errorf("socket from systemd %s: %w", addr, Cause(err))
		}
		if err := lc.Control("tcp", addr, rc); err != nil {
			return nil, fmt.Errorf("socket from systemd %s: %w", addr, Cause(err))
		}
	}
	// Go's accept on a listener it did not open turns keep-alive on with
	// its defaults, which is Listen's setting: only other settings need a
	// call per connection.
	if lc.KeepAlive == 0 && !lc.KeepAliveConfig.Enable {
		return ln, nil
	}
	return &keepAliveListener{TCPListener: ln, lc: lc}, nil
}

// PacketConn is the UDP socket systemd passed, or nil.
func (a *Activated) PacketConn() net.PacketConn {
	if a.datagram == nil {
		return nil
	}
	return a.datagram
}

// Close closes the sockets. A server closes what it serves itself; Close
// is for giving up before serving.
func (a *Activated) Close() {
	if a.stream != nil {
		a.stream.Close()
	}
	if a.datagram != nil {
		a.datagram.Close()
	}
}

// keepAliveListener applies a ListenConfig's keep-alive settings to each
// connection it accepts, exactly as net's own listeners do.
type keepAliveListener struct {
	*net.TCPListener
	lc net.ListenConfig
}

func (l *keepAliveListener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	cfg := l.lc.KeepAliveConfig
	if !cfg.Enable && l.lc.KeepAlive >= 0 {
		cfg = net.KeepAliveConfig{Enable: true, Idle: l.lc.KeepAlive}
	}
	if cfg.Enable {
		c.SetKeepAliveConfig(cfg)
	} else {
		c.SetKeepAlive(false)
	}
	return c, nil
}
