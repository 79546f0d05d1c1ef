package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/tcplab/tcplab/internal/endpoint"
)

// serverPort is where a server listens: the PORT the user typed or, under
// systemd socket activation, the socket systemd passed, in which case PORT
// may be left out (if given, it must be that socket's port).
type serverPort struct {
	port int
	act  *endpoint.Activated // nil without socket activation
}

// activationHelp ends each server's --help.
const activationHelp = `

Under systemd socket activation (a .socket unit, or systemd-socket-activate)
the listening socket comes from systemd, and PORT may be left out (see
deploy/systemd).`

// parseServerPort parses a server's flags and its PORT, which may be left
// out when systemd passed a listening socket (if given, it must be that
// socket's port).
func (fs *flagSet) parseServerPort(std stdio, args []string) (serverPort, error) {
	return fs.parseServerPortUnless(std, args, nil)
}

// parseServerPortUnless is parseServerPort for a server with a mode that
// listens nowhere (strsvr --repair): once the flags are parsed,
// portless(pos) says whether that mode is on (then no socket is taken and
// no port returned) and refuses its misuse.
func (fs *flagSet) parseServerPortUnless(std stdio, args []string, portless func(pos []string) (bool, error)) (serverPort, error) {
	fs.about += activationHelp
	act, err := endpoint.SystemdSockets()
	if err != nil {
		return serverPort{}, err
	}
	fail := func(err error) (serverPort, error) {
		if act != nil {
			act.Close()
		}
		return serverPort{}, err
	}
	pos, err := fs.parse(std, args, 0, 1)
	if err != nil {
		return fail(err)
	}
	if portless != nil {
		if on, err := portless(pos); on || err != nil {
			return fail(err)
		}
	}
	if act == nil && len(pos) == 0 {
		return fail(usagef("missing arguments: usage: tcplab %s %s", fs.name, fs.synopsis))
	}
	if len(pos) == 1 {
		port, err := endpoint.ParsePort(pos[0])
		if err != nil {
			return fail(usageError{err.Error()})
		}
		if act == nil {
			return serverPort{port: port}, nil
		}
		if port != act.Port() {
			return fail(usagef("PORT %d, but systemd passed a socket on port %d: leave PORT out", port, act.Port()))
		}
	}
	return serverPort{port: act.Port(), act: act}, nil
}

// listen is endpoint.Listen on the port, or the socket from systemd with
// the same options.
func (p serverPort) listen(ctx context.Context) (net.Listener, error) {
	if p.act != nil {
		return p.act.Listen()
	}
	return endpoint.Listen(ctx, ":"+strconv.Itoa(p.port))
}

// listenForRequests is endpoint.ListenForRequests on the port, or the
// socket from systemd with the same options.
func (p serverPort) listenForRequests(ctx context.Context) (net.Listener, error) {
	if p.act != nil {
		return p.act.ListenForRequests()
	}
	return endpoint.ListenForRequests(ctx, ":"+strconv.Itoa(p.port))
}

// listenDiscovery is the UDP socket of strsvr's discovery on port (the
// TCP port it serves). Under socket activation it is the datagram socket
// systemd passed (ListenDatagram= on the same port in the .socket unit):
// strsvr then opens no socket of its own, and without one discovery is off
// and every client is classic.
func (p serverPort) listenDiscovery(port int) (net.PacketConn, error) {
	if p.act == nil {
		return net.ListenPacket("udp", ":"+strconv.Itoa(port))
	}
	pc := p.act.PacketConn()
	if pc == nil {
		return nil, errors.New("systemd passed no datagram socket (ListenDatagram= in the .socket unit)")
	}
	if got := pc.LocalAddr().(*net.UDPAddr).Port; got != port {
		pc.Close()
		return nil, fmt.Errorf("systemd's datagram socket is on port %d, not %d where strclnt probes", got, port)
	}
	return pc, nil
}
