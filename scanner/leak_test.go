package scanner

import (
	"testing"

	"github.com/walletless/walletless/internal/leakcheck"
)

// TestMain fails the package when a test leaves one of its goroutines behind.
func TestMain(m *testing.M) { leakcheck.Main(m, "walletless/scanner.") }
