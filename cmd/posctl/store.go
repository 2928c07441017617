package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/walletless/walletless/store"
)

// cmdStore runs offline maintenance on posd's database file. posd must be stopped:
// the file lock makes the command fail fast while posd runs.
func cmdStore(_ context.Context, e env) error {
	if len(e.args) == 0 || e.args[0] != "compact" {
		fmt.Fprintln(e.stderr, "usage: posctl store compact [-data DIR | -db FILE] [-timeout 1s]")
		fmt.Fprintln(e.stderr, "  rewrites posd's bbolt file without free pages and atomically replaces it; posd must be stopped")
		return errUsage
	}
	fs := flag.NewFlagSet("store compact", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	data := fs.String("data", "/var/lib/walletless", "posd's data directory")
	db := fs.String("db", "", "the database file (default DIR/posd.db)")
	timeout := fs.Duration("timeout", time.Second, "how long to wait for the file lock")
	if err := fs.Parse(e.args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	path := *db
	if path == "" {
		path = filepath.Join(*data, "posd.db")
	}
	before, after, err := store.Compact(path, *timeout)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%s is in use: stop posd first (systemctl stop posd): %w", path, err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: %d → %d bytes\n", path, before, after)
	return nil
}
