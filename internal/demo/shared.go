package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tcplab/tcplab/internal/server"
	"github.com/tcplab/tcplab/sharedstring"
	"github.com/tcplab/tcplab/store"
)

// lessonShared takes strsvr beyond the tutorial's two clients: many clients type
// into one v at once and every reply is consistent, and v kept in a file
// survives a server restart.
var lessonShared = Lesson{
	Name:    "shared",
	Title:   "one v for many clients at once, and a v that survives a restart",
	Section: "6, 6.1",
	Run:     runShared,
}

// sharedObservations is what the shared lesson measured.
type sharedObservations struct {
	// Clients typed Letters letters each, at the same time.
	Clients, Letters int
	// Final is v after they left.
	Final string
	// Inconsistent counts replies that were not a prefix of Final ending
	// in the letter just sent (0: every reply was v right after its append).
	Inconsistent int
	// Switches counts the places in Final where one client's letter
	// follows another's: how finely the clients interleaved.
	Switches int
	// Elapsed is how long the crowd took.
	Elapsed time.Duration

	// BeforeRestart is the reply to "abc" from a server keeping v in a
	// file; AfterRestart the reply to "d" from a new server on that file.
	BeforeRestart, AfterRestart string
}

// Summary implements Observations.
func (o *sharedObservations) Summary() string {
	return fmt.Sprintf("%d clients x %d letters: v of %d bytes, %d inconsistent replies; restart: %q then %q",
		o.Clients, o.Letters, len(o.Final), o.Inconsistent, o.BeforeRestart, o.AfterRestart)
}

// sharedClients and sharedLetters size the crowd: enough clients to
// interleave, few enough to take a moment.
const (
	sharedClients = 50
	sharedLetters = 20
)

func runShared(ctx context.Context, w io.Writer, _ Options) (Observations, error) {
	ctx, cancel := context.WithTimeout(ctx, lessonTimeout)
	defer cancel()
	p := &page{w: w}
	obs := &sharedObservations{Clients: sharedClients, Letters: sharedLetters}

	p.tutorial("strsvr.py serves a fixed two clients, and v lives only as long as the server (section 6.1).")
	if err := sharedCrowd(ctx, obs); err != nil {
		return nil, err
	}
	p.do("%d clients connect to tcplab's strsvr at once; each types its own letter %d times.", sharedClients, sharedLetters)
	p.saw("v grew to %d bytes in %s; replies that were not v right after their letter: %d.",
		len(obs.Final), ms(obs.Elapsed), obs.Inconsistent)
	p.saw("v begins %q: the clients' letters interleave (%d switches in all).", obs.Final[:min(40, len(obs.Final))], obs.Switches)

	if err := sharedRestart(ctx, obs); err != nil {
		return nil, err
	}
	p.do("keep v in an append-only file (store.File); send \"abc\", stop the server, start a new one, send \"d\".")
	p.saw("before the restart the reply was %q; after it, %q.", obs.BeforeRestart, obs.AfterRestart)
	p.note("every client has its own goroutine; the Store puts the appends in one order, and each reply")
	p.note("is v right after its own append. By hand: tcplab strsvr 2000, then tcplab strclnt localhost 2000.")
	return obs, p.err()
}

// sharedCrowd has sharedClients clients type into one server at once.
func sharedCrowd(ctx context.Context, obs *sharedObservations) error {
	st := store.NewMemory()
	defer st.Close()
	addr, stop, err := startStrsvr(ctx, st)
	if err != nil {
		return err
	}
	defer stop()
	host, port, _ := net.SplitHostPort(addr)

	var mu sync.Mutex
	var replies []reply
	errs := make(chan error, sharedClients)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range sharedClients {
		letter := crowdLetter(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := sharedstring.Dial(ctx, host, port, sharedstring.Options{Mode: sharedstring.Framed, ReplyTimeout: 5 * time.Second})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			var mine []reply
			for range sharedLetters {
				v, err := c.Send([]byte{letter})
				if err != nil {
					errs <- fmt.Errorf("client %c: %w", letter, err)
					return
				}
				mine = append(mine, reply{letter, string(v)})
			}
			mu.Lock()
			replies = append(replies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	obs.Elapsed = time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	v, err := st.Value(ctx)
	if err != nil {
		return err
	}
	obs.Final = string(v)
	for i := 1; i < len(v); i++ {
		if v[i] != v[i-1] {
			obs.Switches++
		}
	}
	for _, r := range replies {
		if !strings.HasPrefix(obs.Final, r.v) || !strings.HasSuffix(r.v, string(r.letter)) {
			obs.Inconsistent++
		}
	}
	return nil
}

type reply struct {
	letter byte
	v      string
}

// crowdLetter is client i's letter: A-Z, then a-z.
func crowdLetter(i int) byte {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	return letters[i%len(letters)]
}

// sharedRestart sends "abc" to a server keeping v in a file, replaces the
// server and its store with new ones on the same file, and sends "d".
func sharedRestart(ctx context.Context, obs *sharedObservations) error {
	dir, err := os.MkdirTemp("", "tcplab-demo-shared-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "v.log")
	send := func(letters string) (string, error) {
		st, err := store.OpenFile(path, store.FileOptions{})
		if err != nil {
			return "", err
		}
		defer st.Close()
		addr, stop, err := startStrsvr(ctx, st)
		if err != nil {
			return "", err
		}
		defer stop()
		host, port, _ := net.SplitHostPort(addr)
		c, err := sharedstring.Dial(ctx, host, port, sharedstring.Options{Mode: sharedstring.Framed, ReplyTimeout: 5 * time.Second})
		if err != nil {
			return "", err
		}
		defer c.Close()
		v, err := c.Send([]byte(letters))
		return string(bytes.Clone(v)), err
	}
	if obs.BeforeRestart, err = send("abc"); err != nil {
		return fmt.Errorf("first server: %w", err)
	}
	if obs.AfterRestart, err = send("d"); err != nil {
		return fmt.Errorf("restarted server: %w", err)
	}
	return nil
}

// startStrsvr serves st with tcplab's strsvr on a loopback port.
func startStrsvr(ctx context.Context, st store.Store) (addr string, stop func(), err error) {
	ln, err := listenLoopback(ctx)
	if err != nil {
		return "", nil, err
	}
	srv := &sharedstring.Server{Store: st, Keep: true}
	runCtx, cancel := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Run(runCtx, &server.Server{}, ln, nil)
	}()
	return ln.Addr().String(), func() {
		cancel()
		<-served
	}, nil
}
