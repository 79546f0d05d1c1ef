package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tcplab/tcplab/internal/redistest"
	"github.com/tcplab/tcplab/internal/testkit"
	"github.com/tcplab/tcplab/store/redisstore"
)

func TestPasswordFromEnv(t *testing.T) {
	env := func(v string, set bool) func(string) (string, bool) {
		return func(k string) (string, bool) {
			if k != "REDISCLI_AUTH" {
				t.Errorf("read $%s", k)
			}
			return v, set
		}
	}
	for _, tc := range []struct {
		raw   string
		env   func(string) (string, bool)
		want  string // the password go-redis gets
		user  string
		inURL bool
	}{
		{"redis://127.0.0.1:6379/0?key=v", env("s3cret", true), "s3cret", "", false},
		{"redis://127.0.0.1:6379/0?key=v", env("", false), "", "", false},
		{"redis://127.0.0.1:6379/0?key=v", env("", true), "", "", false},
		{"redis://alice@127.0.0.1:6379/0", env("p@ss:/word", true), "p@ss:/word", "alice", false},
		{"redis://:inurl@127.0.0.1:6379/0", env("s3cret", true), "inurl", "", true},
		{"rediss://localhost:6380/0", env("s3cret", true), "s3cret", "", false},
		// An empty password in the URL (":@", or a template's empty
		// ${PASSWORD}) is none: the environment's is taken, and no warning.
		{"redis://:@127.0.0.1:6379/0", env("s3cret", true), "s3cret", "", false},
		{"redis://alice:@127.0.0.1:6379/0", env("s3cret", true), "s3cret", "alice", false},
	} {
		cfg, err := redisstore.ParseURL(tc.raw)
		if err != nil {
			t.Errorf("%s: %v", tc.raw, err)
			continue
		}
		inURL := passwordFromEnv(cfg.Options, tc.env)
		if cfg.Options.Password != tc.want || cfg.Options.Username != tc.user || inURL != tc.inURL {
			t.Errorf("%s: user %q password %q inURL %v; want %q %q %v", tc.raw, cfg.Options.Username, cfg.Options.Password, inURL, tc.user, tc.want, tc.inURL)
		}
	}
}

// strsvr --store takes the password of a Redis that requires one from
// REDISCLI_AUTH, so it is not on the command line that ps shows; without
// it, strsvr says in one line that Redis wants a password.
func TestStrsvrStorePasswordFromEnvironment(t *testing.T) {
	const pw = "pw-" + "not-in-argv-41"
	r := redistest.New(t, "--requirepass", pw)
	p, port := startStrsvrEnv(t, append(os.Environ(), "REDISCLI_AUTH="+pw), "0", "--store", r.URL("authkey"))
	c := dialFramed(t, port)
	v, err := c.Send([]byte("a"))
	c.Close()
	if err != nil || string(v) != "a" {
		t.Fatalf("send a: %q, %v", v, err)
	}
	rc := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: pw})
	defer rc.Close()
	if got, err := rc.Get(context.Background(), "authkey").Result(); err != nil || got != "a" {
		t.Fatalf("v in Redis: %q, %v", got, err)
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(p.Cmd.Process.Pid) + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cmdline), pw) {
		t.Fatalf("the password is on strsvr's command line: %q", cmdline)
	}

	env := []string{}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "REDISCLI_AUTH=") {
			env = append(env, e)
		}
	}
	for _, tc := range []struct {
		name    string
		env     []string
		refusal string
	}{
		{"without the password", env, "NOAUTH"},
		{"with a wrong password", append(env[:len(env):len(env)], "REDISCLI_AUTH=wrong"), "WRONGPASS"},
	} {
		np := testkit.StartEnv(t, tc.env, nil, testkit.Binary(t), "strsvr", "--store", r.URL("authkey"), "0")
		code := np.Wait(t, 30*time.Second)
		if code == 0 || !strings.Contains(np.Stderr.String(), tc.refusal) || !strings.Contains(np.Stderr.String(), "(give the password in REDISCLI_AUTH)") || strings.Count(np.Stderr.String(), "\n") != 1 {
			t.Fatalf("%s: exit %d, %q", tc.name, code, np.Stderr.String())
		}
	}
}
