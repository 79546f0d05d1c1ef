package sharedstring

import (
	"io"
	"net"
	"strings"
	"time"

	"github.com/tcplab/tcplab/internal/server"
)

// refuse is the server.Server Refuse hook: it tells a client that arrives
// when every slot (or its address's share) is taken why it is not served,
// in the client's own mode. A framed client sends its hello as soon as it
// has connected, so the first bytes are read (within half the refusal's time,
// server.RefuseTimeout): a hello is answered with an 'e' frame, which
// strclnt prints as its one error line; letters, or silence (the
// tutorial's strclnt.py says nothing until a letter is typed), with the
// line "busy: ...; try again later", which strclnt.py prints as it would
// print v.
func (s *Server) refuse(conn net.Conn, reason string) {
	line := server.BusyLine(reason)
	// Half the refusal's time to wait for a hello; the rest is for the
	// answer.
	conn.SetReadDeadline(time.Now().Add(server.RefuseTimeout / 2))
	buf := make([]byte, HelloLen)
	n := 0
	for n < len(buf) {
		m, err := conn.Read(buf[n:])
		n += m
		full, _, partial := helloMatch(buf[:n])
		if full {
			answerIn(conn)
			conn.Write(errorFrame(strings.TrimSuffix(line, "\n")))
			return
		}
		if !partial || err != nil {
			break
		}
	}
	answerIn(conn)
	io.WriteString(conn, line)
}

// answerIn gives the refusal's answer the other half of its time from
// now, not from when the server began refusing: on a loaded machine the
// wait for a hello can end after the whole refusal's time, and the answer
// would then never be written (the client saw the connection close with
// no word; TestFullServerRefusesAClassicClient, 2 of 50 runs at a load
// average of 30).
func answerIn(conn net.Conn) {
	conn.SetWriteDeadline(time.Now().Add(server.RefuseTimeout / 2))
}
