package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/walletless/walletless/store"
)

// cmdStore runs offline maintenance on posd's database file. posd must be stopped:
// the file lock makes the command fail fast while posd runs.
func cmdStore(_ context.Context, e env) error {
	if len(e.args) == 0 || (e.args[0] != "compact" && e.args[0] != "check") {
		fmt.Fprintln(e.stderr, "usage: posctl store compact|check [-data DIR | -db FILE] [-timeout 1s]")
		fmt.Fprintln(e.stderr, "  compact: rewrites posd's bbolt file without free pages and atomically replaces it")
		fmt.Fprintln(e.stderr, "  check:   verifies the file's pages and the store's invariants (outbox counter, in-doubt index)")
		fmt.Fprintln(e.stderr, "  posd must be stopped for both")
		return errUsage
	}
	sub := e.args[0]
	fs := flag.NewFlagSet("store "+sub, flag.ContinueOnError)
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
	locked := func(err error) error {
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("%s is in use: stop posd first (systemctl stop posd): %w", path, err)
		}
		return err
	}
	if sub == "check" {
		if _, err := os.Stat(path); err != nil {
			return err
		}
		s, err := store.Open(path, store.Options{Timeout: *timeout, ReadOnly: true})
		if err != nil {
			return locked(err)
		}
		defer s.Close()
		if err := s.Check(); err != nil {
			return err
		}
		v, _ := s.Version()
		depth, _, _ := s.OutboxStats()
		fmt.Fprintf(e.stdout, "%s: ok (schema %d, %d outbox entries)\n", path, v, depth)
		return nil
	}
	before, after, err := store.Compact(path, *timeout)
	if err != nil {
		return locked(err)
	}
	fmt.Fprintf(e.stdout, "%s: %d → %d bytes\n", path, before, after)
	return nil
}
