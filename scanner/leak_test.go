package scanner

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the package when a test leaves a goroutine behind: every goroutine
// Run, RunFrames and the readers start must stop.
func TestMain(m *testing.M) {
	base := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > base {
			buf := make([]byte, 1<<20)
			stacks := string(buf[:runtime.Stack(buf, true)])
			// The testing framework's own goroutines are not ours.
			if strings.Contains(stacks, "walletless/scanner.") {
				os.Stderr.WriteString("goroutines left behind:\n" + stacks)
				code = 1
			}
		}
	}
	os.Exit(code)
}
