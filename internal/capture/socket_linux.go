package capture

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// packetSocket is an AF_PACKET socket bound to one interface, read through
// Go's poller. gopacket's pcapgo.EthernetHandle is the same, but its
// socket keeps the kernel's default buffer (about 200 kB), which a
// lesson's burst of a few hundred full frames overflows: this one asks
// for socketBuffer.
type packetSocket struct {
	f       *os.File
	buf     []byte
	oob     []byte
	snaplen int
}

// socketBuffer is the capture socket's receive buffer: room for about
// 1,500 full frames (each costs its frame and the kernel's bookkeeping).
const socketBuffer = 8 << 20

func openPacketSocket(iface string, snaplen int) (*packetSocket, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	// Protocol 0: the socket takes no frame until bind names the
	// interface and the protocols (packet(7)). Opened for ETH_P_ALL, it
	// would take every interface's frames until bind, and a capture of
	// the veth would start with some of the namespace's loopback traffic.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	// Bound to the interface's index: never 0, which would be every
	// interface of the namespace.
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind to %s: %w", iface, err)
	}
	// FORCE goes past net.core.rmem_max; it needs CAP_NET_ADMIN, which a
	// capture in a lab namespace has. Without it, the plain size.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, socketBuffer)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("timestamps: %w", err)
	}
	return &packetSocket{
		f:       os.NewFile(uintptr(fd), "packet:"+iface),
		buf:     make([]byte, 1<<16),
		oob:     make([]byte, unix.CmsgSpace(16)),
		snaplen: snaplen,
	}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// read waits for the next frame; after close it returns os.ErrClosed.
func (s *packetSocket) read() (Frame, error) {
	rc, err := s.f.SyscallConn()
	if err != nil {
		return Frame{}, err
	}
	var n, oobn int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		// MSG_TRUNC: n is the frame's whole length, even past the buffer.
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), s.buf, s.oob, unix.MSG_TRUNC)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return Frame{}, err
	}
	if rerr != nil {
		return Frame{}, fmt.Errorf("read frame: %w", rerr)
	}
	f := Frame{Length: n, Data: append([]byte(nil), s.buf[:min(n, s.snaplen, len(s.buf))]...), At: time.Now()}
	if msgs, err := unix.ParseSocketControlMessage(s.oob[:oobn]); err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
				sec, nsec := binary.NativeEndian.Uint64(m.Data), binary.NativeEndian.Uint64(m.Data[8:])
				f.At = time.Unix(int64(sec), int64(nsec))
			}
		}
	}
	return f, nil
}

// drops is the number of frames the kernel dropped for want of room in
// the socket's buffer.
func (s *packetSocket) drops() int {
	rc, err := s.f.SyscallConn()
	if err != nil {
		return 0
	}
	var st *unix.TpacketStats
	rc.Control(func(fd uintptr) {
		st, _ = unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
	})
	if st == nil {
		return 0
	}
	return int(st.Drops)
}

func (s *packetSocket) close() error { return s.f.Close() }
