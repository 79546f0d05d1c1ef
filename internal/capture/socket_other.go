//go:build !linux

package capture

import (
	"errors"
	"os"
)

// Packet sockets are Linux's: elsewhere Start fails with errNotLinux.

type packetSocket struct{}

var errNotLinux = errors.New("needs Linux (AF_PACKET)")

func openPacketSocket(string, int) (*packetSocket, error) { return nil, errNotLinux }
func (*packetSocket) read() (Frame, error)                { return Frame{}, os.ErrClosed }
func (*packetSocket) drops() int                          { return 0 }
func (*packetSocket) close() error                        { return nil }
