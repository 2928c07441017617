package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/walletless/walletless/store"
)

// cmdStore runs offline maintenance on posd's database file. posd must be stopped:
// the file lock makes the command fail fast while posd runs.
func cmdStore(_ context.Context, e env) error {
	if len(e.args) == 0 || (e.args[0] != "compact" && e.args[0] != "check" && e.args[0] != "salvage" && e.args[0] != "backup") {
		fmt.Fprintln(e.stderr, "usage: posctl store compact|check [-data DIR | -db FILE] [-timeout 1s]")
		fmt.Fprintln(e.stderr, "       posctl store backup [-data DIR | -db FILE] [-timeout 1s] OUT")
		fmt.Fprintln(e.stderr, "       posctl store salvage IN OUT")
		fmt.Fprintln(e.stderr, "  compact: rewrites posd's bbolt file without free pages and atomically replaces it")
		fmt.Fprintln(e.stderr, "  check:   verifies the file's pages and the store's invariants (outbox counter, in-doubt index)")
		fmt.Fprintln(e.stderr, "  backup:  checks the file, then writes a consistent copy to OUT (which must not exist)")
		fmt.Fprintln(e.stderr, "  salvage: copies every readable record of a damaged file IN into a new file OUT (IN is only read)")
		fmt.Fprintln(e.stderr, "  posd must be stopped for all four; see docs/operations.md")
		return errUsage
	}
	sub := e.args[0]
	if sub == "salvage" {
		return cmdStoreSalvage(e)
	}
	fs := flag.NewFlagSet("store "+sub, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	data := fs.String("data", "/var/lib/walletless", "posd's data directory")
	db := fs.String("db", "", "the database file (default DIR/posd.db)")
	timeout := fs.Duration("timeout", time.Second, "how long to wait for the file lock")
	args, err := parseInterspersed(fs, e.args[1:])
	if err != nil {
		return err
	}
	want := 0 // positional arguments: backup takes OUT
	if sub == "backup" {
		want = 1
	}
	if len(args) != want {
		if sub == "backup" {
			fmt.Fprintln(e.stderr, "usage: posctl store backup [-data DIR | -db FILE] OUT")
			return errUsage
		}
		return fmt.Errorf("unexpected arguments %q", args)
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
	if sub == "backup" {
		n, err := store.Backup(path, args[0], *timeout)
		if err != nil {
			return locked(err)
		}
		fmt.Fprintf(e.stdout, "%s: checked and copied to %s (%d bytes)\n", path, args[0], n)
		return nil
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

// cmdStoreSalvage copies what can be read of a damaged database into a new file and
// prints what was kept and what was lost.
func cmdStoreSalvage(e env) error {
	if len(e.args) != 3 {
		fmt.Fprintln(e.stderr, "usage: posctl store salvage IN OUT   (OUT must not exist; stop posd first)")
		return errUsage
	}
	in, out := e.args[1], e.args[2]
	if _, err := os.Stat(in); err != nil {
		return err
	}
	rep, err := store.Salvage(in, out)
	if rep != nil {
		printSalvage(e.stdout, in, out, rep)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\n%s passes the check. Keep %s; to use the new file, with posd stopped:\n  mv %s %s.damaged && mv %s %s\n", out, in, in, in, out, in)
	return nil
}

func printSalvage(w io.Writer, in, out string, rep *store.SalvageReport) {
	fmt.Fprintf(w, "salvaged %s into %s\n", in, out)
	names := make([]string, 0, len(rep.Sequences))
	for n := range rep.Sequences { // every bucket written
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "kept (records, next sequence):")
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %7d  %d\n", n, rep.Kept[n], rep.Sequences[n])
	}
	if rep.Orphans > 0 {
		fmt.Fprintf(w, "  (%d of them found on pages cut off from their bucket's tree)\n", rep.Orphans)
	}
	section := func(title string, lines []string) {
		if len(lines) == 0 {
			return
		}
		fmt.Fprintln(w, title)
		for _, l := range lines {
			fmt.Fprintln(w, "  "+l)
		}
	}
	if len(rep.Lost) == 0 {
		fmt.Fprintln(w, "lost: nothing found damaged")
	}
	section("lost (damaged pages and the keys they held):", rep.Lost)
	section("repaired so the new file passes the check:", rep.Dropped)
	section("notes:", rep.Notes)
}
