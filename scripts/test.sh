#!/usr/bin/env bash
# scripts/test.sh: the whole test suite, from a fresh machine.
#
# Installs (Debian packages, via apt-get, only where missing) or finds what
# the tests need beside Go:
#   python3        the tutorial's own programs, ported to Python 3, as peers
#   redis-server   the Redis store of strsvr and the Redis comparison
#   nc             netcat, a classic client for svr
#   w, ps          (procps) the commands svr serves
#   ip, tc         (iproute2) and iptables: the fault lab (internal/netlab),
#                  two network namespaces joined by a veth pair; its tests
#                  skip with one line when not run as root
#   tcpdump        reads back the pcap files the lab lessons write
#                  (internal/capture, demo), as a learner's Wireshark would
#   openssl        a TLS peer (s_client) for svr's TLS, and the README's
#                  certificate recipe
#   bash, zsh,     the shells whose completion "tcplab completion" writes:
#   fish           each runs it (fish and bash for real, zsh -n)
#   groff          checks that the man pages render without a warning
#   dpkg           (dpkg-deb) installs the package scripts/deb.sh builds
#                  into a throw-away root (packaging/)
#   systemd        systemd-analyze (verify the units in deploy/systemd) and
#                  systemd-socket-activate (socket activation); systemd need
#                  not be running
# then runs go test -race over every package. Extra arguments are passed to
# go test (e.g. scripts/test.sh -run TestTMS -v).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v python3 >/dev/null || need+=(python3)
command -v redis-server >/dev/null || need+=(redis-server)
command -v nc >/dev/null || need+=(netcat-openbsd)
command -v ps >/dev/null && command -v w >/dev/null || need+=(procps)
command -v ip >/dev/null && command -v tc >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
command -v openssl >/dev/null || need+=(openssl)
command -v tcpdump >/dev/null || [ -x /usr/sbin/tcpdump ] || need+=(tcpdump)
command -v zsh >/dev/null || need+=(zsh)
command -v fish >/dev/null || need+=(fish)
command -v groff >/dev/null || need+=(groff-base)
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v systemd-analyze >/dev/null && command -v systemd-socket-activate >/dev/null || need+=(systemd)
if ((${#need[@]})); then
	echo "scripts/test.sh: installing ${need[*]}" >&2
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

go version
go vet ./...
# tcplab runs on Linux (the demo shows epoll and the kernel's queues; svr
# reads /proc). The libraries keep Linux-only code behind build tags, so
# they still build on other Unix systems: checked here, without running.
libs=$(go list ./... | grep -v -e /demo$ -e /bench$ -e /cmd/tcplab$)
for os in darwin freebsd; do
	GOOS=$os go vet $libs
done
# Fuzz targets run a bounded number of inputs on each request parser
# (3 to 20 s each here). A count, not a duration: with -fuzztime 15s, Go
# 1.26's fuzz coordinator sometimes fails a target with a bare "context
# deadline exceeded" at the deadline (golang/go#75804, fixed in Go 1.27).
if [ -z "${TCPLAB_NO_FUZZ:-}" ]; then
	for target in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -r -n1 dirname | sort -u); do
		for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$target"/*_test.go | sed 's/^func //'); do
			go test -run '^$' -fuzz "^${f}\$" -fuzztime 100000x "$target"
		done
	done
fi
exec go test -race -count=1 -timeout 15m "$@" ./...
