//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tcplab/tcplab/internal/redisproc"
)

// The idlemem section (issue 13): server memory per idle connection with
// 10,000 clients connected, strsvr against Redis in the same run. Each
// strsvr client sends one letter, reads its reply and then idles (classic
// protocol); each Redis client sends PING, reads PONG and idles. Memory is
// the server process's resident set (VmRSS) after the clients are
// connected, less before, divided by the clients; for Redis also its own
// accounting (INFO used_memory, and CLIENT LIST's tot-mem per client).
// Kernel socket buffers are in neither figure (they are the same for both
// on loopback).
func init() {
	register(section{name: "idlemem", order: 61, run: benchIdleMem})
}

func benchIdleMem(ctx context.Context, env *benchEnv) (string, error) {
	n := 10000
	if env.quick {
		n = 500
	}
	raiseFileLimit(2*n + 1000)

	// strsvr.
	cmd, port, err := startOnFreePort(func(port string) *exec.Cmd {
		c := exec.CommandContext(ctx, env.tcplab, "strsvr", "--keep", "--no-discovery",
			"--max-conns", strconv.Itoa(n+100), "--max-conns-per-addr", "-1", port)
		c.Stderr = io.Discard
		return c
	}, false)
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	settle()
	before := vmRSS(cmd.Process.Pid)
	conns, err := openIdle(addr, n, func(c net.Conn, i int) error {
		if _, err := c.Write([]byte("a")); err != nil {
			return err
		}
		_, err := io.ReadFull(c, make([]byte, i+1)) // v after this letter
		return err
	})
	if err != nil {
		stopProcess(cmd, time.Second)
		return "", fmt.Errorf("strsvr clients: %w", err)
	}
	settle()
	after := vmRSS(cmd.Process.Pid)
	closeAll(conns)
	stopProcess(cmd, 5*time.Second)
	strsvrPer := float64(after-before) / float64(n)
	env.logf("idlemem: strsvr RSS %d -> %d bytes with %d clients", before, after, n)

	// Redis, in the same run.
	redisPort, err := freePort()
	if err != nil {
		return "", err
	}
	rs, err := redisproc.Start(filepath.Join(env.tmp, "redis-idlemem"), redisPort, "--maxclients", strconv.Itoa(n+100))
	if err != nil {
		return "", err
	}
	defer rs.Stop()
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr(), PoolSize: 1})
	defer rdb.Close()
	usedBefore, err := usedMemory(ctx, rdb)
	if err != nil {
		return "", err
	}
	settle()
	rBefore := vmRSS(rs.Pid())
	conns, err = openIdle(rs.Addr(), n, func(c net.Conn, _ int) error {
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil && line != "+PONG\r\n" {
			err = fmt.Errorf("PING answered %q", line)
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("redis clients: %w", err)
	}
	settle()
	rAfter := vmRSS(rs.Pid())
	usedAfter, err := usedMemory(ctx, rdb)
	if err != nil {
		closeAll(conns)
		return "", err
	}
	totMem, clients, err := clientTotMem(ctx, rdb)
	closeAll(conns)
	if err != nil {
		return "", err
	}
	redisRSSPer := float64(rAfter-rBefore) / float64(n)
	redisUsedPer := float64(usedAfter-usedBefore) / float64(n)
	env.logf("idlemem: redis RSS %d -> %d, used_memory %d -> %d, tot-mem %d over %d clients", rBefore, rAfter, usedBefore, usedAfter, totMem, clients)

	var b strings.Builder
	fmt.Fprintf(&b, "Server memory per idle connection with %d clients connected at once, in the same run (strsvr: each sent one letter and read its reply, classic; Redis: each sent PING and read PONG):\n\n", n)
	b.WriteString("| server | resident memory per client | own accounting per client |\n|---|---:|---:|\n")
	fmt.Fprintf(&b, "| strsvr --keep (in-memory v) | %.0f bytes | - |\n", strsvrPer)
	fmt.Fprintf(&b, "| redis-server | %.0f bytes | %.0f bytes (INFO used_memory), %.0f bytes (CLIENT LIST tot-mem) |\n", redisRSSPer, redisUsedPer, float64(totMem)/float64(max(clients, 1)))
	fmt.Fprintf(&b, "\nstrsvr/Redis, resident memory per client: %.2f×. Resident memory is VmRSS after the clients connected, less before, over the clients; it leaves out the kernel's socket buffers, which are the same for both. strsvr holds, per client, one goroutine (its stack) blocked in Read, a 4 KiB read buffer and the connection's state; Redis holds a client structure and its query buffer in one thread's event loop.\n", strsvrPer/redisRSSPer)
	return b.String(), nil
}

// settle lets a server finish what the last clients caused before its
// memory is read.
func settle() { time.Sleep(2 * time.Second) }

// openIdle opens n connections to addr, running hello on each in turn,
// and returns them open.
func openIdle(addr string, n int, hello func(c net.Conn, i int) error) ([]net.Conn, error) {
	conns := make([]net.Conn, 0, n)
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if err := hello(c, i); err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
		c.SetDeadline(time.Time{})
	}
	return conns, nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// vmRSS is a process's resident set in bytes (0 if it cannot be read).
func vmRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}

func usedMemory(ctx context.Context, rdb *redis.Client) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("no used_memory in INFO memory")
}

// clientTotMem sums tot-mem over CLIENT LIST (this connection's own entry
// left out) and returns it with the number of clients.
func clientTotMem(ctx context.Context, rdb *redis.Client) (int64, int, error) {
	list, err := rdb.ClientList(ctx).Result()
	if err != nil {
		return 0, 0, err
	}
	var sum int64
	n := 0
	for _, line := range strings.Split(list, "\n") {
		if line == "" || strings.Contains(line, "cmd=client|list") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "tot-mem="); ok {
				m, _ := strconv.ParseInt(v, 10, 64)
				sum += m
				n++
			}
		}
	}
	return sum, n, nil
}

// raiseFileLimit lifts the soft limit on open files towards want (up to
// the hard limit), for the clients this process holds.
func raiseFileLimit(want int) {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil || l.Cur >= uint64(want) {
		return
	}
	l.Cur = min(uint64(want), l.Max)
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}
