package main

import (
	"encoding/json"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/tcpsock"
	"github.com/tcplab/tcplab/internal/testkit"
)

// The endings matrix (docs/errors.md): every command × {Ctrl-C at each
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
		cli := startCmd(t, captured, captured, "tmc", "--copies", "0", "127.0.0.1", srv.port(t), "abc")
		cli.waitOut(t, "received ")
		srv.signal(t, syscall.SIGTERM)
		expectEnd(t, srv, exitTerminated, `(?m)msg="transfer reset"`)
		expectEnd(t, cli, exitFailed, `^tcplab tmc: the server reset the connection after \d+ bytes: the answer is incomplete$`)
		if !strings.Contains(cli.stdout.String(), "\nsummary: ") {
			t.Errorf("no summary of what arrived: %q", tail(cli.stdout.String()))
		}
	})
	t.Run("second SIGINT mid-transfer cuts --grace short", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "tms", "--keep", "--grace", "1h", "--copies", "1000000000000", "0")
		cli := startCmd(t, captured, captured, "tmc", "--copies", "0", "127.0.0.1", srv.port(t), "abc")
		cli.waitOut(t, "received ")
		srv.signal(t, syscall.SIGINT)
		srv.waitOut(t, `msg="shutting down"`)
		srv.signal(t, syscall.SIGINT)
		expectEnd(t, srv, exitInterrupted, `(?m)msg="second signal; closed remaining connections"`)
		expectEnd(t, cli, exitFailed, `^tcplab tmc: the server reset the connection after \d+ bytes: the answer is incomplete$`)
	})
	t.Run("stdout closed", func(t *testing.T) {
		srv := startCmd(t, closedOut, captured, "tms", "--no-wait", "0")
		cli := startCmd(t, captured, captured, "tmc", "--quiet", "127.0.0.1", srv.port(t), "abc")
		expectEnd(t, cli, exitOK, quiet)
		expectEnd(t, srv, exitOK, `^tcplab: 2 lines of output were dropped`) // "listening on port N", "client is at ..."
	})
	t.Run("stderr closed", func(t *testing.T) {
		srv := startCmd(t, captured, closedOut, "tms", "--no-wait", "0")
		port := listenPort(t, srv)
		cli := startCmd(t, captured, captured, "tmc", "--quiet", "127.0.0.1", port, "abc")
		expectEnd(t, cli, exitOK, quiet)
		if code := srv.wait(t); code != exitOK {
			t.Errorf("exit %d, want 0", code)
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
	t.Run("client sends past its message: all copies and a FIN", func(t *testing.T) {
		// Unread bytes at close made the kernel reset the connection and
		// drop the copies still queued: tmc.py lost 3 of 8 MB of a
		// transfer tms logged as done.
		srv := startCmd(t, captured, captured, "tms", "--no-wait", "--copies", "2000000", "0")
		c, err := net.Dial("tcp", "127.0.0.1:"+srv.port(t))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("abc\n" + strings.Repeat("x", 40_000))); err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, c)
		if err != nil || n != 8_000_000 {
			t.Errorf("got %d of 8000000 bytes, err %v: want all and a FIN", n, err)
		}
		c.Close()
		expectEnd(t, srv, exitOK, `msg="transfer done" sent_bytes=8000000`)
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
	// to receive. tmc takes any number of copies (--copies 0): by default
	// it expects tms's 10,000 and ends with "received more than the 10000
	// copies" as soon as the 30,001st byte arrives, before the signal.
	tmsSending := func(t *testing.T, tmcOut outputKind) (srv, cli *cmdProc) {
		srv = startCmd(t, captured, captured, "tms", "--no-wait", "--copies", "1000000000000", "0")
		cli = startCmd(t, tmcOut, captured, "tmc", "--copies", "0", "127.0.0.1", srv.port(t), "abc")
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
		p := startPeer(t, resettingPeer("abcabc", true))
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

// classicClient is the tutorial's client at the byte level: it sends
// letters, reads v back after each, and leaves.
func classicClient(t *testing.T, port, letters string) {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range letters {
		c.Write([]byte{letters[i]})
		if _, err := io.ReadFull(c, make([]byte, i+1)); err != nil {
			t.Fatalf("no reply to letter %d: %v", i, err)
		}
	}
}

// listenPort finds the TCP port p listens on from the kernel's tables,
// without its log and without connecting: for a server whose standard
// error goes nowhere, and for strsvr, which would count a probe as a
// client. The server listens on port 0, so no other process can hold
// its port first.
func listenPort(t *testing.T, p *cmdProc) string {
	t.Helper()
	var port string
	// The kernel's socket table gives no event: poll it.
	testkit.Poll(eventWait, func() bool {
		port = testkit.ListeningPort(p.cmd.Process.Pid)
		return port != "" || exited(p)
	})
	if port == "" {
		t.Fatalf("%v: no listening socket within %s: %q %q", p.cmd.Args[1:], eventWait, p.stdout.String(), p.stderr.String())
	}
	return port
}

// exited reports whether p has exited.
func exited(p *cmdProc) bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func TestEndingsStrSvr(t *testing.T) {
	t.Run("SIGINT with no client yet", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "strsvr", "0")
		srv.port(t)
		srv.signal(t, syscall.SIGINT)
		expectEnd(t, srv, exitInterrupted, `msg="shutting down"`)
		if got := srv.stdout.String(); got != "the final value of v is \n" {
			t.Errorf("stdout %q", got)
		}
	})
	t.Run("SIGTERM with a client", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "strsvr", "0")
		cli := startCmd(t, captured, captured, "strclnt", "127.0.0.1", srv.port(t))
		cli.waitOut(t, "enter a letter:")
		io.WriteString(cli.stdin, "ab\n")
		cli.waitOut(t, "ab\n")
		srv.signal(t, syscall.SIGTERM)
		expectEnd(t, srv, exitTerminated, `msg="shutting down"`)
		if got := srv.stdout.String(); got != "the final value of v is ab\n" {
			t.Errorf("stdout %q", got)
		}
	})
	t.Run("stdout closed loses the final v", func(t *testing.T) {
		srv := startCmd(t, closedOut, captured, "strsvr", "--no-discovery", "0")
		classicClient(t, srv.port(t), "a")
		expectEnd(t, srv, exitFailed, `^tcplab strsvr: print the final value of v \(1 bytes\): broken pipe$`)
	})
	t.Run("stdout full loses the final v", func(t *testing.T) {
		srv := startCmd(t, fullOut, captured, "strsvr", "--no-discovery", "0")
		classicClient(t, srv.port(t), "a")
		expectEnd(t, srv, exitFailed, `^tcplab strsvr: print the final value of v \(1 bytes\): no space left on device$`)
	})
	t.Run("stderr closed", func(t *testing.T) {
		srv := startCmd(t, captured, closedOut, "strsvr", "--no-discovery", "0")
		port := listenPort(t, srv)
		classicClient(t, port, "ab")
		if code := srv.wait(t); code != exitOK || srv.stdout.String() != "the final value of v is ab\n" {
			t.Errorf("exit %d, stdout %q", code, srv.stdout.String())
		}
	})
	t.Run("peer killed", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "strsvr", "0")
		cli := startCmd(t, captured, captured, "strclnt", "127.0.0.1", srv.port(t))
		cli.waitOut(t, "enter a letter:")
		io.WriteString(cli.stdin, "x\n")
		cli.waitOut(t, "x\n")
		cli.signal(t, syscall.SIGKILL)
		// The last client has left: the tutorial's normal end.
		expectEnd(t, srv, exitOK, `msg="done: stopping"`)
		if got := srv.stdout.String(); got != "the final value of v is x\n" {
			t.Errorf("stdout %q", got)
		}
	})
	t.Run("peer silent", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "strsvr", "--read-timeout", "300ms", "0")
		c, err := net.Dial("tcp", "127.0.0.1:"+srv.port(t))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		expectEnd(t, srv, exitOK, `(?m)msg="client dropped"`)
	})
}

func TestEndingsStrClnt(t *testing.T) {
	atPrompt := func(t *testing.T, stdout outputKind) (srv, cli *cmdProc) {
		srv = startCmd(t, captured, captured, "strsvr", "--keep", "0")
		cli = startCmd(t, stdout, captured, "strclnt", "127.0.0.1", srv.port(t))
		if stdout == captured {
			cli.waitOut(t, "enter a letter:")
		}
		return srv, cli
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String()+" at the prompt", func(t *testing.T) {
			_, cli := atPrompt(t, captured)
			cli.signal(t, sig)
			expectEnd(t, cli, 128+int(sig), quiet)
		})
		// The tutorial's normal situation (strsvr --clients 2 before the
		// second client joins): a letter sent, no reply yet.
		t.Run(sig.String()+" waiting for the reply", func(t *testing.T) {
			p := startPeer(t, silentPeer)
			cli := startCmd(t, captured, captured, "strclnt", "--classic", "127.0.0.1", p.port)
			cli.waitOut(t, "enter a letter:")
			io.WriteString(cli.stdin, "a\n")
			p.waitRequest(t)
			cli.signal(t, sig)
			expectEnd(t, cli, 128+int(sig), quiet)
		})
	}
	t.Run("SIGINT watching", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "strsvr", "--keep", "0")
		port := srv.port(t)
		watcher := startCmd(t, captured, captured, "strclnt", "--watch", "127.0.0.1", port)
		// The watcher is in place once it shows a letter typed elsewhere
		// (typed before it joined, the letter is in the v it gets first).
		typist := startCmd(t, captured, captured, "strclnt", "127.0.0.1", port)
		typist.waitOut(t, "enter a letter:")
		io.WriteString(typist.stdin, "w\n")
		watcher.waitOut(t, "w")
		watcher.signal(t, syscall.SIGINT)
		expectEnd(t, watcher, exitInterrupted, quiet)
	})
	t.Run("stdout closed", func(t *testing.T) {
		_, cli := atPrompt(t, closedOut)
		expectEnd(t, cli, exitStdoutGone, quiet)
	})
	t.Run("peer killed", func(t *testing.T) {
		srv, cli := atPrompt(t, captured)
		srv.signal(t, syscall.SIGKILL)
		srv.wait(t)
		io.WriteString(cli.stdin, "b\n")
		expectEnd(t, cli, exitFailed, `^tcplab strclnt: (server closed the connection|send: (broken pipe|connection reset by peer))$`)
	})
	t.Run("peer reset", func(t *testing.T) {
		p := startPeer(t, func(c net.Conn, p *peer) {
			p.readSome(c)
			tcpsock.Reset(c)
			c.Close()
		})
		cli := startCmd(t, captured, captured, "strclnt", "--classic", "127.0.0.1", p.port)
		cli.waitOut(t, "enter a letter:")
		io.WriteString(cli.stdin, "a\n")
		expectEnd(t, cli, exitFailed, `^tcplab strclnt: (server closed the connection|[^:]*connection reset by peer)$`)
	})
	t.Run("peer silent", func(t *testing.T) {
		p := startPeer(t, silentPeer)
		cli := startCmd(t, captured, captured, "strclnt", "--classic", "--timeout", "300ms", "127.0.0.1", p.port)
		cli.waitOut(t, "enter a letter:")
		io.WriteString(cli.stdin, "a\n")
		expectEnd(t, cli, exitFailed, `^tcplab strclnt: no reply within 300ms`)
	})
}

func TestEndingsSVR(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String()+" listening", func(t *testing.T) {
			srv := startCmd(t, captured, captured, "svr", "0")
			srv.port(t)
			srv.signal(t, sig)
			expectEnd(t, srv, 128+int(sig), `msg="shutting down"`)
		})
	}
	// "tcplab svr 2000 | head -1": the second client got a close and svr
	// died of SIGPIPE.
	for _, which := range []string{"stdout", "stderr"} {
		t.Run(which+" closed", func(t *testing.T) {
			out, errOut := closedOut, captured
			if which == "stderr" {
				out, errOut = captured, closedOut
			}
			srv := startCmd(t, out, errOut, "svr", "--native", "0")
			port := listenPort(t, srv)
			for i := range 2 {
				cli := startCmd(t, captured, captured, "wps", "127.0.0.1", port, "w")
				expectEnd(t, cli, exitOK, quiet)
				if !strings.Contains(cli.stdout.String(), "load average") {
					t.Errorf("client %d: %q", i, cli.stdout.String())
				}
			}
			srv.signal(t, syscall.SIGTERM)
			if code := srv.wait(t); code != exitTerminated {
				t.Errorf("exit %d, want %d", code, exitTerminated)
			}
		})
	}
	t.Run("peer silent", func(t *testing.T) {
		srv := startCmd(t, captured, captured, "svr", "--read-timeout", "200ms", "0")
		c, err := net.Dial("tcp", "127.0.0.1:"+srv.port(t))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("w")) // a name with no end: svr waits for more, then answers or drops
		c.SetReadDeadline(time.Now().Add(eventWait))
		io.Copy(io.Discard, c) // svr ends the connection; it does not end svr
		srv.signal(t, syscall.SIGTERM)
		expectEnd(t, srv, exitTerminated, `msg="shutting down"`)
	})
}

func TestEndingsWPS(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String()+" waiting for the answer", func(t *testing.T) {
			p := startPeer(t, silentPeer)
			cli := startCmd(t, captured, captured, "wps", "127.0.0.1", p.port, "w")
			p.waitRequest(t)
			cli.signal(t, sig)
			expectEnd(t, cli, 128+int(sig), quiet)
		})
		t.Run(sig.String()+" waiting for a fleet", func(t *testing.T) {
			p := startPeer(t, silentPeer)
			cli := startCmd(t, captured, captured, "wps", "--hosts", "127.0.0.1:"+p.port+",[::1]:"+p.port, "w")
			p.waitRequest(t)
			cli.signal(t, sig)
			expectEnd(t, cli, 128+int(sig), quiet)
			if out := cli.stdout.String(); out != "" {
				t.Errorf("stdout %q after a signal", out)
			}
		})
	}
	t.Run("stdout closed", func(t *testing.T) {
		_, port := startSVR(t, "--native")
		cli := startCmd(t, closedOut, captured, "wps", "127.0.0.1", port, "ps")
		expectEnd(t, cli, exitStdoutGone, quiet)
	})
	// Output that cannot be written is a local failure, named as one:
	// single-host wps said "read from HOST:PORT: no space left on
	// device", blaming the network, and --hosts exited 0 saying nothing.
	for _, args := range [][]string{{"w"}, {"--json", "w"}, {"--hosts", "", "w"}, {"--hosts", ""}, {"--json", "--hosts", ""}} {
		t.Run("stdout full "+strings.Join(args, " "), func(t *testing.T) {
			_, port := startSVR(t, "--native")
			a := append([]string{"wps"}, args...)
			if args[len(args)-1] == "w" && args[0] != "--hosts" {
				a = append(a[:len(a)-1], "127.0.0.1", port, "w")
			}
			for i := range a {
				if a[i] == "" {
					a[i] = "127.0.0.1:" + port
				}
			}
			cli := startCmd(t, fullOut, captured, a...)
			expectEnd(t, cli, exitFailed, `^tcplab wps: write /dev/stdout: no space left on device$`)
		})
	}
	t.Run("peer reset", func(t *testing.T) {
		p := startPeer(t, resettingPeer("partial answ", false))
		cli := startCmd(t, captured, captured, "wps", "127.0.0.1", p.port, "w")
		expectEnd(t, cli, exitFailed, `^tcplab wps: read from 127\.0\.0\.1:\d+: connection reset by peer$`)
	})
	t.Run("peer silent", func(t *testing.T) {
		p := startPeer(t, silentPeer)
		cli := startCmd(t, captured, captured, "wps", "--timeout", "300ms", "127.0.0.1", p.port, "w")
		expectEnd(t, cli, exitFailed, `^tcplab wps: read from 127\.0\.0\.1:\d+: timed out after 300ms$`)
	})
	t.Run("fleet errors on stderr", func(t *testing.T) {
		// The failing host resets rather than stays silent: a short
		// --timeout for a silent one also failed the good host, when a
		// loaded machine's svr took longer than that to answer.
		p := startPeer(t, resettingPeer("", false))
		_, port := startSVR(t, "--native")
		cli := startCmd(t, captured, captured, "wps", "--hosts", "127.0.0.1:"+port+",127.0.0.1:"+p.port, "w")
		expectEnd(t, cli, exitOK, `^127\.0\.0\.1:\d+: error: read from 127\.0\.0\.1:\d+: connection reset by peer$`)
		if out := cli.stdout.String(); strings.Contains(out, "error") || !strings.HasPrefix(out, "== 127.0.0.1:"+port+" ==\n") {
			t.Errorf("stdout %q", out)
		}
	})
}

func TestEndingsDemo(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String()+" mid-tour", func(t *testing.T) {
			cli := startCmd(t, captured, captured, "demo", "--out", t.TempDir())
			cli.waitOut(t, "\n")
			cli.signal(t, sig)
			expectEnd(t, cli, 128+int(sig), quiet)
		})
	}
	t.Run("stdout closed", func(t *testing.T) {
		cli := startCmd(t, closedOut, captured, "demo", "--out", t.TempDir())
		expectEnd(t, cli, exitStdoutGone, quiet)
	})
	t.Run("stdout full", func(t *testing.T) {
		// Every lesson's first line failed to print, and the tour said
		// "11 of 11 lessons failed: ports, chunks, ...".
		cli := startCmd(t, fullOut, captured, "demo", "--out", t.TempDir())
		expectEnd(t, cli, exitFailed, `^tcplab demo: write /dev/stdout: no space left on device$`)
	})
}

// tmc's seconds and bytes_per_second are the transfer's, from the first
// byte; the wait for the go-ahead is wait_seconds. Before, 30 kB that tms
// sent in 223 µs were "in 2.96 s, 10.1 kB/s".
func TestTMCReportsTheGoAheadApart(t *testing.T) {
	srv := startCmd(t, captured, captured, "tms", "0")
	cli := startCmd(t, captured, captured, "tmc", "--json", "127.0.0.1", srv.port(t), "abc")
	srv.waitOut(t, "press Enter")
	time.Sleep(500 * time.Millisecond) // the pause is the point: a go-ahead typed late
	io.WriteString(srv.stdin, "\n")
	expectEnd(t, cli, exitOK, quiet)
	var sum struct {
		Bytes          int64    `json:"bytes"`
		Seconds        float64  `json:"seconds"`
		Chunks         int64    `json:"chunks"`
		BytesPerSecond *float64 `json:"bytes_per_second"` // null for one read
		WaitSeconds    float64  `json:"wait_seconds"`
	}
	if err := json.Unmarshal([]byte(cli.stdout.String()), &sum); err != nil {
		t.Fatalf("%v: %q", err, cli.stdout.String())
	}
	rateWrong := sum.BytesPerSecond == nil && sum.Chunks > 1 || sum.BytesPerSecond != nil && *sum.BytesPerSecond <= 30000/0.5
	if sum.Bytes != 30000 || sum.WaitSeconds < 0.5 || sum.Seconds >= 0.5 || rateWrong {
		t.Fatalf("summary %+v: want the wait (≥ 0.5 s) apart from the transfer", sum)
	}
}
