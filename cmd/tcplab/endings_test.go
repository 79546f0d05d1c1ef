package main

import (
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/tcplab/tcplab/internal/testkit"
)

// The endings matrix (README, "Errors"): every command × {Ctrl-C at each
// stage, SIGTERM, standard output closed, peer killed, peer reset, peer
// silent}, each row checking the exit status and the one line printed.
// Bad flag values are TestEveryBadFlagNamesItself's rows.

// Quiet ends: a signal or a closed standard output prints nothing of its
// own; a failure is one line "tcplab CMD: ...".
const quiet = ""

func TestEndingsTMS(t *testing.T) {
	t.Run("SIGINT waiting for a client", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "tms", "0")
		srv.port(t)
		srv.signal(t, syscall.SIGINT)
		expectEnd(t, srv, exitInterrupted, `msg="tms listening"`)
	})
	t.Run("SIGTERM waiting for a client", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "tms", "0")
		srv.port(t)
		srv.signal(t, syscall.SIGTERM)
		expectEnd(t, srv, exitTerminated, `msg="tms listening"`)
	})
	t.Run("SIGINT at the go-ahead resets the client", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "tms", "0")
		cli := startCmd(t, captured, captured, "tmc", "127.0.0.1", srv.port(t), "abc")
		srv.waitOut(t, "press Enter")
		srv.signal(t, syscall.SIGINT)
		expectEnd(t, srv, exitInterrupted, `(?m)msg="transfer reset"`)
		expectEnd(t, cli, exitFailed, `^tcplab tmc: the server reset the connection before sending anything$`)
	})
	t.Run("SIGTERM mid-transfer past --grace resets the client", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "tms", "--keep", "--grace", "1ms", "--copies", "1000000000000", "0")
		cli := startCmd(t, captured, captured, "tmc", "127.0.0.1", srv.port(t), "abc")
		cli.waitOut(t, "received ")
		srv.signal(t, syscall.SIGTERM)
		expectEnd(t, srv, exitTerminated, `(?m)msg="transfer reset"`)
		expectEnd(t, cli, exitFailed, `^tcplab tmc: the server reset the connection after \d+ bytes: the answer is incomplete$`)
		if !strings.Contains(cli.stdout.String(), "\nsummary: ") {
			t.Errorf("no summary of what arrived: %q", tail(cli.stdout.String()))
		}
	})
	t.Run("stdout closed", func(t *testing.T) {
		srv := startCmd(t, closedOut, captured, "tms", "--no-wait", "0")
		cli := startCmd(t, captured, captured, "tmc", "--quiet", "127.0.0.1", srv.port(t), "abc")
		expectEnd(t, cli, exitOK, quiet)
		expectEnd(t, srv, exitOK, `^tcplab: 1 lines of output were dropped`)
	})
	t.Run("stderr closed", func(t *testing.T) {
		port := strconv.Itoa(testkit.FreePort(t))
		// --keep: the probe that finds the port listening is a client too.
		srv := startCmd(t, captured, closedOut, "tms", "--keep", port)
		testkit.WaitListening(t, "127.0.0.1:"+port, eventWait)
		cli := startCmd(t, captured, captured, "tmc", "--quiet", "127.0.0.1", port, "abc")
		expectEnd(t, cli, exitOK, quiet)
		srv.signal(t, syscall.SIGTERM)
		if code := srv.wait(t); code != exitTerminated {
			t.Errorf("exit %d, want %d", code, exitTerminated)
		}
	})
	t.Run("peer killed mid-transfer", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "tms", "--no-wait", "--copies", "1000000000000", "0")
		cli := startCmd(t, captured, captured, "tmc", "127.0.0.1", srv.port(t), "abc")
		cli.waitOut(t, "received ")
		cli.signal(t, syscall.SIGKILL)
		cli.wait(t)
		expectEnd(t, srv, exitFailed, `^tcplab tms: send to 127\.0\.0\.1:\d+ after \d+ of 3000000000000 bytes: (connection reset by peer|broken pipe)$`)
	})
	t.Run("peer silent", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "tms", "--read-timeout", "200ms", "0")
		c, err := net.Dial("tcp", "127.0.0.1:"+srv.port(t))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte{}) // connected, says nothing
		expectEnd(t, srv, exitFailed, `^tcplab tms: read message from 127\.0\.0\.1:\d+: client sent no message within 200ms$`)
	})
}

func TestEndingsTMC(t *testing.T) {
	// tmsAtGoAhead is a tms holding tmc's message, waiting for Enter.
	tmsAtGoAhead := func(t *testing.T) (srv, cli *cmdProc) {
		srv = startCmd(t, captured, captured, "tms", "0")
		cli = startCmd(t, captured, captured, "tmc", "127.0.0.1", srv.port(t), "abc")
		srv.waitOut(t, "press Enter")
		return srv, cli
	}
	// tmsSending is a tms that sends for ever, and a tmc that has begun
	// to receive.
	tmsSending := func(t *testing.T, tmcOut outputKind) (srv, cli *cmdProc) {
		srv = startCmd(t, captured, captured, "tms", "--no-wait", "--copies", "1000000000000", "0")
		cli = startCmd(t, tmcOut, captured, "tmc", "127.0.0.1", srv.port(t), "abc")
		return srv, cli
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String()+" waiting for the go-ahead", func(t *testing.T) {
			_, cli := tmsAtGoAhead(t)
			cli.signal(t, sig)
			expectEnd(t, cli, 128+int(sig), quiet)
		})
		t.Run(sig.String()+" mid-transfer", func(t *testing.T) {
			_, cli := tmsSending(t, captured)
			cli.waitOut(t, "received ")
			cli.signal(t, sig)
			expectEnd(t, cli, 128+int(sig), quiet)
		})
	}
	t.Run("stdout closed", func(t *testing.T) {
		_, cli := tmsSending(t, closedOut)
		expectEnd(t, cli, exitStdoutGone, quiet)
	})
	t.Run("stdout full", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "tms", "--no-wait", "0")
		cli := startCmd(t, fullOut, captured, "tmc", "127.0.0.1", srv.port(t), "abc")
		expectEnd(t, cli, exitFailed, `^tcplab tmc: .*no space left on device$`)
	})
	t.Run("peer killed at the go-ahead", func(t *testing.T) {
		srv, cli := tmsAtGoAhead(t)
		srv.signal(t, syscall.SIGKILL)
		// tms holds SO_LINGER 0 until its last copy: its death is a reset.
		expectEnd(t, cli, exitFailed, `^tcplab tmc: the server reset the connection before sending anything$`)
	})
	t.Run("peer reset mid-answer", func(t *testing.T) {
		p := startPeer(t, resettingPeer("abcabc"))
		cli := startCmd(t, captured, captured, "tmc", "127.0.0.1", p.port, "abc")
		expectEnd(t, cli, exitFailed, `^tcplab tmc: the server reset the connection after 6 bytes: the answer is incomplete$`)
		if !strings.HasPrefix(cli.stdout.String(), "abcabc\nreceived 6 bytes\n") || !strings.Contains(cli.stdout.String(), "summary: 6 bytes in 1 chunk") {
			t.Errorf("stdout %q: want the reads and the summary of what arrived", cli.stdout.String())
		}
	})
	t.Run("peer closes before any byte", func(t *testing.T) {
		p := startPeer(t, closingPeer)
		cli := startCmd(t, captured, captured, "tmc", "127.0.0.1", p.port, "abc")
		expectEnd(t, cli, exitFailed, `^tcplab tmc: the server closed the connection without sending anything$`)
	})
	t.Run("peer silent", func(t *testing.T) {
		p := startPeer(t, silentPeer)
		cli := startCmd(t, captured, captured, "tmc", "--timeout", "300ms", "127.0.0.1", p.port, "abc")
		expectEnd(t, cli, exitFailed, `^tcplab tmc: no data for 300ms after 0 bytes: timed out$`)
	})
	t.Run("SIGINT with a silent peer", func(t *testing.T) {
		p := startPeer(t, silentPeer)
		cli := startCmd(t, captured, captured, "tmc", "127.0.0.1", p.port, "abc")
		p.waitRequest(t)
		cli.signal(t, syscall.SIGINT)
		expectEnd(t, cli, exitInterrupted, quiet)
	})
}
