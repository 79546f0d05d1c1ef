package procps

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tcplab/tcplab/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// toolPath and toolEnv are how svr runs the installed tools (status's
// FixedPath and fixed environment), so that the tests compare the
// renderer with the output svr would send.
const toolPath = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"

var toolEnv = []string{"PATH=" + toolPath, "LC_ALL=C", "LANG=C", "HOME=/", "TERM=dumb"}

// lookPath finds an installed tool in toolPath, or returns "".
func lookPath(prog string) string {
	for _, dir := range filepath.SplitList(toolPath) {
		if p, err := exec.LookPath(filepath.Join(dir, prog)); err == nil {
			return p
		}
	}
	return ""
}
