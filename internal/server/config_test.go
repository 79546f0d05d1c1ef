package server

import (
	"context"
	"errors"
	"net"
	"testing"
)

// validating is a Handler whose own check runs after the Server's.
type validating struct{ err error }

func (validating) ServeConn(context.Context, net.Conn) {}
func (v validating) Validate(*Server) error            { return v.err }

func TestValidateNamesTheField(t *testing.T) {
	own := Invalid("{Mine} is wrong")
	for _, tc := range []struct {
		name string
		s    *Server
		want string // "" for nil
	}{
		{"zero", &Server{}, ""},
		{"no per-address cap", &Server{MaxConnsPerAddr: -1}, ""},
		{"negative MaxConns", &Server{MaxConns: -2}, "MaxConns must be at least 1, not -2"},
		{"per-address below -1", &Server{MaxConnsPerAddr: -2}, "MaxConnsPerAddr must be -1 (no limit), 0 (a quarter of MaxConns) or more, not -2"},
		{"the handler's after the server's", &Server{MaxConns: -1, Handler: validating{own}}, "MaxConns must be at least 1, not -1"},
		{"the handler's", &Server{Handler: validating{own}}, "Mine is wrong"},
	} {
		err := tc.s.Validate()
		if (err == nil) != (tc.want == "") || err != nil && err.Error() != tc.want {
			t.Errorf("%s: Validate() = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// A command writes its flags' names where the message names fields.
func TestConfigErrorText(t *testing.T) {
	err := error(Invalid("{WaitFor} (%d) must not exceed {MaxConns} (%d)", 5, 4))
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatal("not a *ConfigError")
	}
	flags := map[string]string{"WaitFor": "--clients", "MaxConns": "--max-conns"}
	if got, want := ce.Text(func(f string) string { return flags[f] }), "--clients (5) must not exceed --max-conns (4)"; got != want {
		t.Fatalf("Text = %q, want %q", got, want)
	}
}
