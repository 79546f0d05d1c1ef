//go:build linux

// Command bench measures tcplab against the best alternatives on this
// machine, in one sitting, and writes the results to docs/benchmarks.md.
//
//	go run ./bench                 # every section
//	go run ./bench -only multicopy # one section; the others in the file stay
//	go run ./bench -only nemesis   # random fault schedules: counts in docs/reliability.md
//
// Each section lives in its own file and registers itself in init. Sections
// compare ratios measured in the same run, never absolute times against a
// fixed target, because the machines are shared and noisy. All traffic goes
// to loopback, except the faults section's, which stays inside the network
// namespaces of internal/netlab (root only).
package main

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"log"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"
)

// A section is one benchmark: it runs, and returns Markdown for
// docs/benchmarks.md (a table and a few lines on what it shows), or for
// the file doc names.
type section struct {
	name  string
	order int // position in docs/benchmarks.md
	run   func(ctx context.Context, env *benchEnv) (markdown string, err error)
	// doc is the Markdown file the section's results go to (default
	// docs/benchmarks.md; -out overrides it for every section).
	doc string
	// also names other documents whose block for this section (between
	// the same markers) is replaced with the result too.
	also []string
}

var sections []section

func register(s section) { sections = append(sections, s) }

// benchEnv is what every section gets.
type benchEnv struct {
	tcplab string // path to a freshly built tcplab binary
	root   string // repository root
	tmp    string // scratch directory, removed afterwards
	quick  bool   // smaller runs, for checking the harness itself
	// baseline, if set (-baseline), is another tcplab binary that the
	// sections comparing builds (idlemem, tmsprompt) measure in the same
	// run; baselineRev names it in their tables.
	baseline, baselineRev string
	logf                  func(format string, args ...any)
}

func main() {
	only := flag.String("only", "", "comma-separated sections to run (default all)")
	out := flag.String("out", "", "Markdown file to update (default docs/benchmarks.md, or the section's own: nemesis writes docs/reliability.md)")
	quick := flag.Bool("quick", false, "small runs, to check the harness (results not written)")
	binary := flag.String("binary", "", "measure this tcplab binary instead of building one (another build: the figures before a change)")
	baseline := flag.String("baseline", "", "another tcplab to measure in the same run, in the sections that compare builds (idlemem, tmsprompt): a binary's path, or a git revision to build")
	floorPort := flag.Int("floor-server", 0, "serve the sharedstring section's floor server on this port and do nothing else (the section starts it)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("bench: ")
	if *floorPort != 0 {
		log.Fatal(floorServe(*floorPort))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	root, err := os.Getwd()
	if err != nil {
		log.Fatal(err)
	}
	tmp, err := os.MkdirTemp("", "tcplab-bench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	bin := *binary
	if bin == "" {
		bin = filepath.Join(tmp, "tcplab")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/tcplab")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			log.Fatalf("build tcplab: %v", err)
		}
	}
	env := &benchEnv{tcplab: bin, root: root, tmp: tmp, quick: *quick, logf: log.Printf}
	if *baseline != "" {
		env.baselineRev = *baseline
		if st, serr := os.Stat(*baseline); serr == nil && !st.IsDir() {
			env.baseline = *baseline
		} else if env.baseline, err = buildRevision(ctx, root, tmp, *baseline); err != nil {
			log.Fatalf("build tcplab at %s: %v", *baseline, err)
		}
	}

	slices.SortFunc(sections, func(a, b section) int { return a.order - b.order })
	want := map[string]bool{}
	for _, n := range strings.Split(*only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	results := map[string]map[string]string{} // file → section → Markdown
	failed := false
	for _, s := range sections {
		if len(want) > 0 && !want[s.name] {
			continue
		}
		log.Printf("running %s", s.name)
		start := time.Now()
		md, err := s.run(ctx, env)
		if err != nil {
			log.Printf("%s: %v", s.name, err)
			failed = true
			continue
		}
		log.Printf("%s done in %s", s.name, time.Since(start).Round(time.Second))
		fmt.Println(md)
		file := *out
		if file == "" {
			file = cmp.Or(s.doc, "docs/benchmarks.md")
		}
		if results[file] == nil {
			results[file] = map[string]string{}
		}
		results[file][s.name] = fmt.Sprintf("%s\n\nMeasured %s on %s.\n", strings.TrimSpace(md), time.Now().UTC().Format("2006-01-02 15:04 MST"), machine())
	}
	for _, file := range slices.Sorted(maps.Keys(results)) {
		if *quick {
			log.Printf("-quick: %s left unchanged", file)
			continue
		}
		if err := update(file, results[file]); err != nil {
			log.Fatal(err)
		}
		log.Printf("wrote %s", file)
	}
	for _, s := range sections {
		md, ok := results[cmp.Or(*out, s.doc, "docs/benchmarks.md")][s.name]
		if !ok || *quick {
			continue
		}
		for _, doc := range s.also {
			if err := updateExisting(doc, s.name, md); err != nil {
				log.Fatal(err)
			}
			log.Printf("wrote %s", doc)
		}
	}
	if failed {
		os.Exit(1)
	}
}

// buildRevision builds tcplab from revision rev of the repository at root
// (git archive, so the work tree is not touched) and returns the binary.
func buildRevision(ctx context.Context, root, tmp, rev string) (string, error) {
	src := filepath.Join(tmp, "baseline-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	archive := exec.CommandContext(ctx, "sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", root, rev, src)
	archive.Stderr = os.Stderr
	if err := archive.Run(); err != nil {
		return "", fmt.Errorf("git archive: %w", err)
	}
	bin := filepath.Join(tmp, "tcplab-baseline")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/tcplab")
	build.Dir, build.Stdout, build.Stderr = src, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", err
	}
	return bin, nil
}

// update replaces, in the Markdown file at path, the block of each section
// in results, keeping the other sections as they were.
func update(path string, results map[string]string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if len(old) == 0 {
		old = []byte(header)
	}
	doc := string(old)
	for _, s := range sections {
		md, ok := results[s.name]
		if !ok {
			continue
		}
		block := fmt.Sprintf("<!-- bench:%s -->\n%s<!-- /bench:%s -->", s.name, md, s.name)
		re := regexp.MustCompile(`(?s)<!-- bench:` + regexp.QuoteMeta(s.name) + ` -->.*?<!-- /bench:` + regexp.QuoteMeta(s.name) + ` -->`)
		if re.MatchString(doc) {
			doc = re.ReplaceAllLiteralString(doc, block)
		} else {
			doc = strings.TrimRight(doc, "\n") + "\n\n" + block + "\n"
		}
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

const header = `# Benchmarks

Reproduce with one command from the repository root: ` + "`go run ./bench`" + `
(or ` + "`go run ./bench -only NAME`" + ` for one section). Every comparison is a
ratio measured in the same run on the same machine; all traffic is loopback,
except the faults section's, which stays inside network namespaces the bench
makes and removes.
The machine is shared, so expect a few percent of noise between runs.
`

// updateExisting replaces the block of section name in the document at
// path; the document must already have the block's markers.
func updateExisting(path, name, md string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	re := regexp.MustCompile(`(?s)<!-- bench:` + regexp.QuoteMeta(name) + ` -->.*?<!-- /bench:` + regexp.QuoteMeta(name) + ` -->`)
	if !re.Match(old) {
		return fmt.Errorf("%s has no <!-- bench:%s --> block", path, name)
	}
	block := fmt.Sprintf("<!-- bench:%s -->\n%s<!-- /bench:%s -->", name, md, name)
	return os.WriteFile(path, re.ReplaceAllLiteral(old, []byte(block)), 0o644)
}

// machine describes this computer in one line: CPU model, cores, memory,
// kernel, Go version.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(string(bytes.TrimPrefix(b, []byte("MemTotal:"))), "%d", &kb)
		mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%s, %d cores%s, Linux %s, %s", cpu, runtime.NumCPU(), mem, strings.TrimSpace(string(kernel)), runtime.Version())
}
