package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/tcplab/tcplab/internal/endpoint"
)

// Socket is where a server listens: Port on every interface (IPv4 and
// IPv6, as the tutorial's empty host), or the socket systemd passed
// (socket activation), given the same options as one of its own.
type Socket struct {
	Port      int
	Activated *endpoint.Activated // nil without socket activation
}

// Listen is endpoint.Listen on the port, or the socket from systemd with
// the same options.
func (s Socket) Listen(ctx context.Context) (net.Listener, error) {
	if s.Activated != nil {
		return s.Activated.Listen()
	}
	return endpoint.Listen(ctx, ":"+strconv.Itoa(s.Port))
}

// ListenForRequests is endpoint.ListenForRequests on the port, or the
// socket from systemd with the same options.
func (s Socket) ListenForRequests(ctx context.Context) (net.Listener, error) {
	if s.Activated != nil {
		return s.Activated.ListenForRequests()
	}
	return endpoint.ListenForRequests(ctx, ":"+strconv.Itoa(s.Port))
}

// ListenDatagram is the UDP socket on port (strsvr's discovery, on the TCP
// port it serves). Under socket activation it is the datagram socket
// systemd passed (ListenDatagram= on the same port in the .socket unit):
// strsvr then opens no socket of its own, and without one discovery is off
// and every client is classic.
func (s Socket) ListenDatagram(port int) (net.PacketConn, error) {
	if s.Activated == nil {
		return net.ListenPacket("udp", ":"+strconv.Itoa(port))
	}
	pc := s.Activated.PacketConn()
	if pc == nil {
		return nil, errors.New("systemd passed no datagram socket (ListenDatagram= in the .socket unit)")
	}
	if got := pc.LocalAddr().(*net.UDPAddr).Port; got != port {
		pc.Close()
		return nil, fmt.Errorf("systemd's datagram socket is on port %d, not %d where strclnt probes", got, port)
	}
	return pc, nil
}
