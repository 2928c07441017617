package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFlagsRefused: combinations that must not start fail before anything is opened.
func TestFlagsRefused(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-ledger-url", "http://127.0.0.1:7601", "-ledger-listen", "127.0.0.1:7601"}, "exclude"},
		{[]string{"-data", dir, "-ledger-listen", "0.0.0.0:0"}, "non-loopback"},
		{[]string{"-data", dir, "-ledger-listen", ":0"}, "non-loopback"},
		{[]string{"-instances", "0"}, "-instances"},
		{[]string{"-ledger-url", "http://127.0.0.1:7601", "-ledger-token-file", short}, "token"},
		{[]string{"-ledger-url", "ftp://x"}, "ledger URL"},
		{[]string{"ledger", "-ledger-url", "ftp://x"}, "ledger URL"},
		{[]string{"ledger", "-data", filepath.Join(dir, "none")}, "no ledger"},
	} {
		err := run(context.Background(), c.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error with %q", c.args, err, c.want)
		}
	}
}
