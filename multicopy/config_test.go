package multicopy

import (
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/internal/server"
)

// Validate names the field out of range, as tms's flags report it; the
// zero value, the defaults, is valid.
func TestValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		s    Server
		want string // "" valid
	}{
		{Server{}, ""},
		{Server{Copies: MaxCopies, QuietGap: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second}, ""},
		{Server{Copies: -1}, "Copies must be at least 1"},
		{Server{Copies: MaxCopies + 1}, "Copies must be at most"},
		{Server{QuietGap: -1}, "QuietGap must be positive"},
		{Server{ReadTimeout: -1}, "ReadTimeout must be positive"},
		{Server{WriteTimeout: -1}, "WriteTimeout must be positive"},
	} {
		err := (&server.Server{Handler: &tc.s}).Validate()
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want %q", tc.s, err, tc.want)
		}
	}
	for _, tc := range []struct {
		o    FetchOptions
		want string
	}{
		{FetchOptions{}, ""},
		{FetchOptions{IdleTimeout: -1, ReadSize: MaxReadSize}, ""},
		{FetchOptions{ReadSize: -1}, "ReadSize must be from 1 to"},
		{FetchOptions{ReadSize: MaxReadSize + 1}, "ReadSize must be from 1 to"},
	} {
		err := tc.o.Validate()
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want %q", tc.o, err, tc.want)
		}
	}
}

// Configure gives tms's caps where the caller left them zero, and One a
// single slot whatever the caller set.
func TestConfigureSetsTMSCaps(t *testing.T) {
	srv := &server.Server{}
	(&Server{WriteTimeout: 2 * time.Minute}).Configure(srv)
	if srv.MaxConns != DefaultMaxConns || srv.Refuse == nil || srv.UserTimeout != server.UserTimeoutFor(2*time.Minute) {
		t.Errorf("Configure: MaxConns %d, Refuse set %v, UserTimeout %s", srv.MaxConns, srv.Refuse != nil, srv.UserTimeout)
	}
	srv = &server.Server{MaxConns: 50}
	NewOne(&Server{}).Configure(srv)
	if srv.MaxConns != 1 {
		t.Errorf("One's Configure: MaxConns %d, want 1", srv.MaxConns)
	}
}
