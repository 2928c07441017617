// Package leakcheck fails a test binary whose tests leave goroutines of the package
// under test running. Use it from TestMain:
//
//	func TestMain(m *testing.M) { leakcheck.Main(m, "walletless/device.") }
package leakcheck

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Main runs the tests, then waits up to ten seconds for the goroutine count to fall
// back to where it started. Goroutines still running code whose stack mentions marker
// (for example "walletless/device.") are printed and fail the run; the testing
// framework's own goroutines (fuzzing, signals) are not counted. It does not return.
func Main(m *testing.M, marker string) {
	base := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if runtime.NumGoroutine() > base {
			buf := make([]byte, 1<<20)
			// The first block is this goroutine.
			blocks := strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
			for _, b := range blocks[1:] {
				if strings.Contains(b, marker) {
					os.Stderr.WriteString("goroutine left behind:\n" + b + "\n")
					code = 1
				}
			}
		}
	}
	os.Exit(code)
}
