package sharedstring_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tcplab/tcplab/internal/redistest"
	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/sharedstring"
	"github.com/tcplab/tcplab/store"
	"github.com/tcplab/tcplab/store/redisstore"
)

// On a full disk, letters that cannot be stored are never answered: a
// framed client gets an 'e' frame saying why, a classic client's
// connection closes. Once space is freed, clients are served again with no
// restart, and v holds exactly the answered letters. (Before: a bare close
// for everyone, for good, and only an INFO "client dropped" line.)
func TestFullDiskTellsClients(t *testing.T) {
	dir := testkit.SmallDisk(t, 128<<10)
	st, err := store.OpenFile(filepath.Join(dir, "v.log"), store.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, port := startServer(t, st, nil)
	framed := dial(t, port, sharedstring.Options{})
	if !framed.Framed() {
		t.Fatal("not framed")
	}
	if v, err := framed.Send([]byte("a")); err != nil || string(v) != "a" {
		t.Fatalf("Send a: %q %v", v, err)
	}
	filler := testkit.FillDisk(t, dir)
	big := bytes.Repeat([]byte("x"), 64<<10) // more than the log's last page holds
	_, err = framed.Send(big)
	if err == nil || !strings.Contains(err.Error(), "letters not stored") || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("framed client on a full disk: %v, want an error frame naming the cause", err)
	}

	// A classic client: the connection closes, and every reply it got is
	// for a letter that is in v.
	before, _ := st.Value(context.Background())
	classic := dialRaw(t, port)
	go classic.Write(big) // the server may close before reading it all
	classic.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(classic)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("classic client on a full disk: %v, want a close", err)
	}
	stored, _ := st.Value(context.Background())
	if k := len(stored) - len(before); !bytes.Equal(got, classicReplies(before, big[:k])) {
		t.Fatalf("classic client got %d reply bytes, want the replies to the %d letters stored", len(got), k)
	}

	os.Remove(filler)
	again := dial(t, port, sharedstring.Options{})
	if v, err := again.Send([]byte("b")); err != nil || !bytes.Equal(v, append(stored, 'b')) {
		t.Fatalf("after space was freed: %d bytes, %v, want the %d stored and b", len(v), err, len(stored))
	}
}

// When Redis loses v, a framed client holding the old v is told so and
// ended, never shown its old copy's bytes as v; a watcher too; a classic
// client sees the true v, as it is sent all of it with every reply; a new
// client sees the true v. (Before: typing Z after DEL printed "h".)
func TestRedisResetTellsFramedClients(t *testing.T) {
	r := redistest.New(t)
	ctx := context.Background()
	st, err := redisstore.Open(ctx, r.URL("v"))
	if err != nil {
		t.Fatal(err)
	}
	_, port := startServer(t, st, nil)
	typist := dial(t, port, sharedstring.Options{})
	watcher := dial(t, port, sharedstring.Options{Watch: true})
	classic := dialRaw(t, port)
	if _, err := typist.Send([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if v, err := typist.Send([]byte("world")); err != nil || string(v) != "helloworld" {
		t.Fatalf("Send world: %q %v", v, err)
	}
	classic.Write([]byte("!"))
	readExactly(t, classic, []byte("helloworld!"))
	for { // the watcher holds v
		_, v, err := watcher.Next()
		if err != nil {
			t.Fatal(err)
		}
		if string(v) == "helloworld!" {
			break
		}
	}
	rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rc.Close()
	if err := rc.Del(ctx, "v").Err(); err != nil {
		t.Fatal(err)
	}

	_, err = typist.Send([]byte("Z"))
	if err == nil || !strings.Contains(err.Error(), "v was reset") {
		t.Fatalf("framed client after DEL: %v, want the 'v was reset' error frame", err)
	}
	_, v, err := watcher.Next()
	if err == nil || !strings.Contains(err.Error(), "v was reset") {
		t.Fatalf("watcher after DEL: %q %v, want the 'v was reset' error frame", v, err)
	}
	classic.Write([]byte("Y"))
	readExactly(t, classic, []byte("ZY"))
	fresh := dial(t, port, sharedstring.Options{})
	if v, err := fresh.Send([]byte("X")); err != nil || string(v) != "ZYX" {
		t.Fatalf("new client: %q %v, want ZYX", v, err)
	}
}
