package datalog

import (
	"bytes"
	"testing"

	"github.com/tcplab/tcplab/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// Decode never panics and never returns more than the input holds.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(Magic + "\x00\x00\x00\x01\x00\x00\x00\x00a"))
	f.Add([]byte(Magic))
	f.Add([]byte("junk"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, good, err := Decode(bytes.NewReader(b))
		if err != nil {
			return
		}
		if good > int64(len(b)) || len(v) > len(b) {
			t.Fatalf("decoded %d bytes (good %d) from %d", len(v), good, len(b))
		}
	})
}
