package tcpsock

import (
	"net"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func readStats(conn net.Conn) (Stats, error) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return Stats{}, ErrNoStats
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return Stats{}, err
	}
	var (
		info    *unix.TCPInfo
		mem     [unix.SK_MEMINFO_VARS]uint32
		inq     int
		outq    int
		sockErr error
	)
	err = rc.Control(func(fd uintptr) {
		info, sockErr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if sockErr != nil {
			return
		}
		// SO_MEMINFO: the receive memory in use counts the readable
		// queue and the out-of-order queue together; SIOCINQ counts the
		// readable bytes alone.
		size := uint32(unsafe.Sizeof(mem))
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&size)), 0)
		if errno != 0 {
			sockErr = errno
			return
		}
		if inq, sockErr = unix.IoctlGetInt(int(fd), unix.SIOCINQ); sockErr != nil {
			return
		}
		outq, sockErr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
	})
	if err == nil {
		err = sockErr
	}
	if err != nil {
		return Stats{}, err
	}
	us := func(v uint32) time.Duration { return time.Duration(v) * time.Microsecond }
	return Stats{
		RTT:               us(info.Rtt),
		RcvRTT:            us(info.Rcv_rtt),
		RTO:               us(info.Rto),
		RTTVar:            us(info.Rttvar),
		Backoff:           int(info.Backoff),
		SndMSS:            int(info.Snd_mss),
		RcvMSS:            int(info.Rcv_mss),
		Retransmits:       int64(info.Total_retrans),
		OutOfOrderPackets: int64(info.Rcv_ooopack),
		Readable:          inq,
		OutOfOrderQueued:  inq == 0 && mem[unix.SK_MEMINFO_RMEM_ALLOC] > 0,
		SendQueued:        outq,
		LastAckRecv:       time.Duration(info.Last_ack_recv) * time.Millisecond,
		Open:              info.State == tcpEstablished || info.State == tcpCloseWait,
		Closed:            info.State == tcpClose,
	}, nil
}

// Linux's TCP states (include/net/tcp_states.h).
const (
	tcpEstablished = 1
	tcpClose       = 7
	tcpCloseWait   = 8
)
