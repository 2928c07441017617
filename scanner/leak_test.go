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
			// The first block is this goroutine; the testing framework's own
			// goroutines (fuzzing, signals) are not ours.
			blocks := strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
			for _, b := range blocks[1:] {
				if strings.Contains(b, "walletless/scanner.") {
					os.Stderr.WriteString("goroutine left behind:\n" + b + "\n")
					code = 1
				}
			}
		}
	}
	os.Exit(code)
}
