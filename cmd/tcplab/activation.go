package main

import (
	"github.com/tcplab/tcplab/internal/endpoint"
	"github.com/tcplab/tcplab/internal/server"
)

// activationHelp ends each server's --help.
const activationHelp = `

Under systemd socket activation (a .socket unit, or systemd-socket-activate)
the listening socket comes from systemd, and PORT may be left out (see
deploy/systemd).`

// parseServerPort parses a server's flags and its PORT, which may be left
// out when systemd passed a listening socket (if given, it must be that
// socket's port), and returns where the server listens.
func (fs *flagSet) parseServerPort(std stdio, args []string) (server.Socket, error) {
	return fs.parseServerPortUnless(std, args, nil)
}

// parseServerPortUnless is parseServerPort for a server with a mode that
// listens nowhere (strsvr --repair): once the flags are parsed,
// portless(pos) says whether that mode is on (then no socket is taken and
// no port returned) and refuses its misuse.
func (fs *flagSet) parseServerPortUnless(std stdio, args []string, portless func(pos []string) (bool, error)) (server.Socket, error) {
	fs.about += activationHelp
	if std.describe != nil { // asked for the flags: take no socket
		_, err := fs.parse(std, args, 0, 1)
		return server.Socket{}, err
	}
	act, err := endpoint.SystemdSockets()
	if err != nil {
		return server.Socket{}, err
	}
	fail := func(err error) (server.Socket, error) {
		if act != nil {
			act.Close()
		}
		return server.Socket{}, err
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
			return server.Socket{Port: port}, nil
		}
		if port != act.Port() {
			return fail(usagef("PORT %d, but systemd passed a socket on port %d: leave PORT out", port, act.Port()))
		}
	}
	return server.Socket{Port: act.Port(), Activated: act}, nil
}
