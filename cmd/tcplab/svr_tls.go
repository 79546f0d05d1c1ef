package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/tcplab/tcplab/internal/endpoint"
)

// svrTLSFlags are svr's TLS flags. Without --tls-cert svr speaks plaintext,
// as the tutorial's svr.py does.
type svrTLSFlags struct{ cert, key, clientCA *string }

func addSVRTLSFlags(fs *flagSet) svrTLSFlags {
	return svrTLSFlags{
		cert:     fs.String("tls-cert", "", "serve over TLS only, with the certificate (chain) in this PEM `file`; reloaded on SIGHUP"),
		key:      fs.String("tls-key", "", "the private key of --tls-cert, a PEM `file`"),
		clientCA: fs.String("tls-client-ca", "", "mutual TLS: serve only clients whose certificate is signed by a CA in this PEM `file`"),
	}
}

// load checks the flags' combination (a usage error, exit 2) and loads the
// files (a one-line error naming the file, exit 1). Without --tls-cert it
// returns nil: plaintext.
func (f svrTLSFlags) load() (*endpoint.TLSServer, error) {
	if err := checkKeyPair(*f.cert, *f.key); err != nil {
		return nil, err
	}
	switch {
	case *f.clientCA != "" && *f.cert == "":
		return nil, usagef("--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS")
	case *f.cert == "":
		return nil, nil
	}
	return endpoint.NewTLSServer(*f.cert, *f.key, *f.clientCA)
}

// tlsMode names how svr serves, for its start-up log.
func tlsMode(s *endpoint.TLSServer) string {
	switch {
	case s == nil:
		return "off"
	case s.MutualTLS():
		return "mutual"
	}
	return "on"
}

// logTLSWarnings logs what the last load of s's files found wrong but
// not fatal (a certificate that expires within a week), as WARN.
func logTLSWarnings(log *slog.Logger, s *endpoint.TLSServer) {
	if s == nil {
		return
	}
	for _, w := range s.Warnings() {
		log.Warn("TLS certificate expires soon", "warning", w)
	}
}

// catchHangups catches SIGHUP from now on, queueing one for
// reloadOnHangup. svr calls it first thing: a SIGHUP not caught ends the
// process, and systemctl reload (or a certificate renewal hook) may send
// one while svr is still loading its files. Stop it with signal.Stop.
func catchHangups() chan os.Signal {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup
}

// reloadOnHangup reloads s's files on each SIGHUP caught on hup (see
// catchHangups) until ctx ends, as daemons do (systemctl reload):
// connections in flight keep the certificate they began with, later
// handshakes get the new one, and a reload that fails keeps the old one
// and logs an ERROR. A SIGHUP caught while svr was starting reloads once
// now. A renewal is refused (ERROR) unless it loads whole and valid (see
// endpoint.TLSServer.Reload); one that expires within a week loads with a
// WARN. Without TLS a SIGHUP is logged and ignored rather than ending the
// server. The returned stop waits for the watcher to end and stops
// catching SIGHUP.
func reloadOnHangup(ctx context.Context, hup chan os.Signal, s *endpoint.TLSServer, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			if s == nil {
				log.Info("SIGHUP: nothing to reload (no --tls-cert)")
				continue
			}
			if err := s.Reload(); err != nil {
				log.Error("SIGHUP: TLS reload failed; keeping the certificate in use", "err", err.Error())
				continue
			}
			leaf := s.Leaf()
			log.Info("SIGHUP: TLS certificate reloaded", "subject", leaf.Subject.String(), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
			logTLSWarnings(log, s)
		}
	})
	return func() {
		signal.Stop(hup)
		cancel()
		wg.Wait()
	}
}
