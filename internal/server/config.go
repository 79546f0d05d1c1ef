package server

import (
	"fmt"
	"regexp"
)

// The conventions of every tcplab config (server.Server,
// sharedstring.Server, status.Service, status.Runner, multicopy.Server,
// and the clients' options), as net/http's:
//
//   - A field's zero value is its documented default.
//   - "None" (no timeout, no cap, no reuse) is spelled as a negative
//     value: any negative duration, or -1 for a count. A count below -1
//     is an error.
//   - Timeouts are named ReadTimeout, WriteTimeout and IdleTimeout.
//   - Validate() error checks a config before it is used and names the
//     field that is out of range (a ConfigError); a command reports it
//     under the name of the flag that set the field.

// Setting is a config field v resolved by these conventions: zero is
// def, and a negative value is none, returned as 0.
func Setting[T ~int | ~int64](v, def T) T {
	switch {
	case v < 0:
		return 0
	case v == 0:
		return def
	}
	return v
}

// ConfigError is a config field out of range, as Validate reports it.
// Its message names fields in braces ("{MaxConns} must be at least 1");
// Error writes the Go field names, and a command writes the names of its
// flags instead (Text).
type ConfigError struct{ msg string }

// Invalid returns a *ConfigError; format names fields in braces.
func Invalid(format string, args ...any) *ConfigError {
	return &ConfigError{fmt.Sprintf(format, args...)}
}

var fieldRef = regexp.MustCompile(`\{([A-Za-z]+)\}`)

// Error is the message with the Go field names.
func (e *ConfigError) Error() string { return e.Text(func(f string) string { return f }) }

// Text is the message with each field written as name(field).
func (e *ConfigError) Text(name func(field string) string) string {
	return fieldRef.ReplaceAllStringFunc(e.msg, func(ref string) string {
		return name(ref[1 : len(ref)-1])
	})
}

// Validator is implemented by a Handler whose fields are checked with the
// Server's: Validate(s) may compare them with s's caps.
type Validator interface {
	Validate(s *Server) error
}

// Validate checks the Server's fields, then the Handler's (Validator).
// The caps' zero values are defaults; -1 means no per-address cap.
func (s *Server) Validate() error {
	switch {
	case s.MaxConns < 0:
		return Invalid("{MaxConns} must be at least 1, not %d", s.MaxConns)
	case s.MaxConnsPerAddr < -1:
		return Invalid("{MaxConnsPerAddr} must be -1 (no limit), 0 (a quarter of {MaxConns}) or more, not %d", s.MaxConnsPerAddr)
	}
	if v, ok := s.Handler.(Validator); ok {
		return v.Validate(s)
	}
	return nil
}
