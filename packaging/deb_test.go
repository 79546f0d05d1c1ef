// The Debian package that scripts/deb.sh builds: installed with dpkg into
// a throw-away root, its files checked, run, removed and purged.
package packaging_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const version = "1.2.3+test"

// buildPackage runs scripts/deb.sh and returns the .deb it made.
func buildPackage(t *testing.T) string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command(filepath.Join(testkit.Root(), "scripts", "deb.sh"), out)
	cmd.Env = append(os.Environ(), "VERSION="+version)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/deb.sh: %v\n%s", err, stderr.String())
	}
	deb := strings.TrimSpace(string(stdout))
	if filepath.Base(deb) != "tcplab_"+version+"_amd64.deb" && !strings.HasSuffix(deb, ".deb") {
		t.Fatalf("scripts/deb.sh printed %q, not the package", deb)
	}
	return deb
}

// dpkgRoot is an empty dpkg database in a throw-away root. Maintainer
// scripts run outside a chroot (the root has no shell), with DPKG_ROOT
// set, which they honour; systemctl there is a stand-in that records its
// arguments, found first on PATH.
type dpkgRoot struct {
	dir, calls string
	path       string
}

func newRoot(t *testing.T, withSystemd bool) *dpkgRoot {
	t.Helper()
	r := &dpkgRoot{dir: t.TempDir()}
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		os.MkdirAll(filepath.Join(r.dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(r.dir, "var/lib/dpkg/status"), nil, 0o644)
	if withSystemd {
		os.MkdirAll(filepath.Join(r.dir, "run/systemd/system"), 0o755)
	}
	bin := t.TempDir()
	r.calls = filepath.Join(bin, "calls")
	os.WriteFile(filepath.Join(bin, "systemctl"), []byte("#!/bin/sh\necho \"$*\" >>"+r.calls+"\n"), 0o755)
	r.path = bin + ":" + os.Getenv("PATH")
	return r
}

func (r *dpkgRoot) dpkg(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("dpkg", append([]string{"--root=" + r.dir, "--force-script-chrootless", "--log=/dev/null"}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+r.path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// systemctl returns what the stand-in systemctl was asked, one call a
// line, and forgets it.
func (r *dpkgRoot) systemctl() []string {
	b, _ := os.ReadFile(r.calls)
	os.Remove(r.calls)
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_"))
}

func (r *dpkgRoot) at(p string) string { return filepath.Join(r.dir, p) }

func gunzip(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

// A new user's way in: dpkg -i gives the binary (with the version it was
// built as), the man pages (those of docs/man), the completions, the
// units with the binary's path, and no running anything; dpkg -r takes
// it all away, and a purge takes strsvr's state too.
func TestDebianPackageInstallsAndRemoves(t *testing.T) {
	for _, tool := range []string{"dpkg", "dpkg-deb", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: no Debian package test here", tool)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("dpkg --root needs root")
	}
	deb := buildPackage(t)
	r := newRoot(t, true)
	r.dpkg(t, "-i", deb)

	out, err := exec.Command(r.at("usr/bin/tcplab"), "--version").Output()
	if err != nil || string(out) != "tcplab "+version+"\n" {
		t.Fatalf("tcplab --version: %q, %v", out, err)
	}
	pages, _ := filepath.Glob(filepath.Join(testkit.Root(), "docs/man/*.1"))
	if len(pages) == 0 {
		t.Fatal("no man pages in docs/man")
	}
	for _, p := range pages {
		want, _ := os.ReadFile(p)
		if got := gunzip(t, r.at("usr/share/man/man1/"+filepath.Base(p)+".gz")); !bytes.Equal(got, want) {
			t.Errorf("installed %s is not docs/man's", filepath.Base(p))
		}
	}
	for _, f := range []string{
		"usr/share/bash-completion/completions/tcplab",
		"usr/share/zsh/vendor-completions/_tcplab",
		"usr/share/fish/vendor_completions.d/tcplab.fish",
		"usr/share/doc/tcplab/README.md",
	} {
		if info, err := os.Stat(r.at(f)); err != nil || info.Size() == 0 || info.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v", f, err)
		}
	}
	// The installed bash completion works.
	complete := exec.Command("bash", "--norc", "-c", `source "$1"; COMP_WORDS=(tcplab tms --log-format ""); COMP_CWORD=3; _tcplab; echo "${COMPREPLY[*]}"`, "bash", r.at("usr/share/bash-completion/completions/tcplab"))
	if out, err := complete.Output(); err != nil || strings.TrimSpace(string(out)) != "text json" {
		t.Errorf("installed bash completion: %q, %v", out, err)
	}
	for _, u := range []string{"tcplab-svr.socket", "tcplab-svr.service", "tcplab-strsvr.socket", "tcplab-strsvr.service"} {
		b, err := os.ReadFile(r.at("usr/lib/systemd/system/" + u))
		if err != nil {
			t.Errorf("%s: %v", u, err)
			continue
		}
		if strings.Contains(string(b), "/usr/local/") || (strings.HasSuffix(u, ".service") && !strings.Contains(string(b), "ExecStart=/usr/bin/tcplab ")) {
			t.Errorf("%s does not run /usr/bin/tcplab:\n%s", u, b)
		}
	}
	if got := r.systemctl(); !slices.Equal(got, []string{"--system_daemon-reload"}) {
		t.Errorf("postinst ran systemctl %q; want only daemon-reload (nothing enabled or started)", got)
	}

	// strsvr's state, as the unit would leave it; a removal keeps it.
	state := r.at("var/lib/private/tcplab-strsvr")
	os.MkdirAll(state, 0o700)
	os.WriteFile(filepath.Join(state, "v.log"), []byte("v"), 0o600)
	r.dpkg(t, "-r", "tcplab")
	if _, err := os.Stat(r.at("usr/bin/tcplab")); !os.IsNotExist(err) {
		t.Errorf("tcplab still there after dpkg -r: %v", err)
	}
	calls := r.systemctl()
	for _, u := range []string{"tcplab-svr.socket", "tcplab-strsvr.socket"} {
		if !slices.Contains(calls, "--system_stop_"+u) || !slices.Contains(calls, "--system_disable_"+u) {
			t.Errorf("prerm did not stop and disable %s: %q", u, calls)
		}
	}
	if calls[len(calls)-1] != "--system_daemon-reload" {
		t.Errorf("postrm did not reload systemd last: %q", calls)
	}
	if _, err := os.Stat(filepath.Join(state, "v.log")); err != nil {
		t.Errorf("dpkg -r removed strsvr's v: %v", err)
	}
	r.dpkg(t, "-P", "tcplab")
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("a purge left strsvr's state: %v", err)
	}
	left, _ := filepath.Glob(r.at("usr/*/*"))
	if len(left) > 0 {
		t.Errorf("left behind: %q", left)
	}
}

// Installed where systemd does not run (a container, a chroot), the
// scripts call no systemctl.
func TestDebianPackageWithoutSystemd(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg not installed: no Debian package test here")
	}
	if os.Geteuid() != 0 {
		t.Skip("dpkg --root needs root")
	}
	deb := buildPackage(t)
	r := newRoot(t, false)
	r.dpkg(t, "-i", deb)
	r.dpkg(t, "-P", "tcplab")
	if calls := r.systemctl(); len(calls) > 0 {
		t.Errorf("systemctl called without systemd: %q", calls)
	}
}
