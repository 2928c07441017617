package printer

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the flow one way (ARCHITECTURE.md): the encoder and emulator
// import nothing of Walletless, and printer itself only paycode.
func TestImports(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not in PATH")
	}
	const mod = "github.com/walletless/walletless/"
	allowed := map[string][]string{
		"./escpos":   {"printer/escpos"},
		"./emulator": {"printer/emulator", "printer/escpos"},
		".":          {"printer", "printer/escpos", "printer/emulator", "paycode"},
	}
	for pkg, ok := range allowed {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			rest, ours := strings.CutPrefix(dep, mod)
			if !ours {
				continue
			}
			found := false
			for _, a := range ok {
				if rest == a {
					found = true
				}
			}
			if !found {
				t.Errorf("%s imports %s", pkg, dep)
			}
		}
	}
}
