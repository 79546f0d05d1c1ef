#!/usr/bin/env bash
# scripts/deb.sh [OUTDIR]: builds the Debian package of tcplab into OUTDIR
# (default dist/), with nfpm (run through the Go module proxy, version
# pinned below; nothing to install but Go). The package holds:
#   /usr/bin/tcplab                              the binary (static, CGO off)
#   /usr/share/man/man1/tcplab*.1.gz             the man pages (tcplab man)
#   /usr/share/bash-completion/completions/tcplab
#   /usr/share/zsh/vendor-completions/_tcplab
#   /usr/share/fish/vendor_completions.d/tcplab.fish   (tcplab completion)
#   /usr/lib/systemd/system/tcplab-{svr,strsvr}.{socket,service}
#                                                the units of deploy/systemd,
#                                                ExecStart=/usr/bin/tcplab,
#                                                installed but not enabled
#   /usr/share/doc/tcplab/README.md
# The units run as a DynamicUser: the package creates no system user.
# VERSION (default: 0.0.0+git<date>.<commit>) is the package's version and
# what tcplab --version prints; GOARCH (default: this machine's) its
# architecture.
set -euo pipefail
cd "$(dirname "$0")/.."
nfpm_version=v2.48.0
out=$(realpath -m "${1:-dist}")

if [ -z "${VERSION:-}" ]; then
	VERSION=0.0.0
	if rev=$(git log -1 --format='%cd.%h' --date=format:%Y%m%d 2>/dev/null); then
		VERSION="0.0.0+git$rev"
		git diff --quiet HEAD 2>/dev/null || VERSION="$VERSION.dirty"
	fi
fi
case "$VERSION" in
[0-9]*) ;;
*) echo "scripts/deb.sh: VERSION must start with a digit (Debian's rule), not $VERSION" >&2; exit 2 ;;
esac
export GOARCH="${GOARCH:-$(go env GOARCH)}"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$stage/tcplab" ./cmd/tcplab

# Made by the binary itself, from its own flags (it runs here only when
# GOARCH is this machine's: otherwise the checked-in man pages are used).
mkdir -p "$stage/man" "$stage/completion" "$stage/systemd"
if [ "$GOARCH" = "$(go env GOHOSTARCH)" ]; then
	"$stage/tcplab" man --dir "$stage/man"
	for sh in bash zsh fish; do "$stage/tcplab" completion "$sh" >"$stage/completion/$sh"; done
else
	go run ./cmd/tcplab man --dir "$stage/man"
	for sh in bash zsh fish; do go run ./cmd/tcplab completion "$sh" >"$stage/completion/$sh"; done
fi
gzip -9n "$stage"/man/*.1
for u in deploy/systemd/*.socket deploy/systemd/*.service; do
	sed 's|/usr/local/bin/tcplab|/usr/bin/tcplab|g' "$u" >"$stage/systemd/$(basename "$u")"
done

{
	cat <<YAML
name: tcplab
arch: $GOARCH
platform: linux
version: $VERSION
version_schema: none
section: net
priority: optional
maintainer: tcplab maintainers <maintainers@tcplab.invalid>
homepage: https://github.com/tcplab/tcplab
description: |-
  Network Programming with Python tutorial's TCP pairs, built in Go
  The three client/server pairs of N. Matloff's tutorial (multicopy echo,
  remote w/ps, shared string), production grade, and every lesson of the
  tutorial runnable on real sockets (tcplab demo). svr and strsvr come with
  sandboxed, socket-activated systemd units, installed but not enabled.
recommends:
  - procps
suggests:
  - redis-server
contents:
  - src: $stage/tcplab
    dst: /usr/bin/tcplab
    file_info: {mode: 0755}
  - src: $stage/completion/bash
    dst: /usr/share/bash-completion/completions/tcplab
    file_info: {mode: 0644}
  - src: $stage/completion/zsh
    dst: /usr/share/zsh/vendor-completions/_tcplab
    file_info: {mode: 0644}
  - src: $stage/completion/fish
    dst: /usr/share/fish/vendor_completions.d/tcplab.fish
    file_info: {mode: 0644}
  - src: README.md
    dst: /usr/share/doc/tcplab/README.md
    file_info: {mode: 0644}
YAML
	for f in "$stage"/man/*.gz; do
		printf '  - src: %s\n    dst: /usr/share/man/man1/%s\n    file_info: {mode: 0644}\n' "$f" "$(basename "$f")"
	done
	for f in "$stage"/systemd/*; do
		printf '  - src: %s\n    dst: /usr/lib/systemd/system/%s\n    file_info: {mode: 0644}\n' "$f" "$(basename "$f")"
	done
	cat <<YAML
scripts:
  postinstall: packaging/debian/postinst
  preremove: packaging/debian/prerm
  postremove: packaging/debian/postrm
YAML
} >"$stage/nfpm.yaml"

mkdir -p "$out"
GOARCH= go run "github.com/goreleaser/nfpm/v2/cmd/nfpm@$nfpm_version" package \
	--config "$stage/nfpm.yaml" --packager deb --target "$out" >&2
ls "$out"/tcplab_"${VERSION//+/?}"_*.deb 2>/dev/null | head -1 || ls -t "$out"/*.deb | head -1
