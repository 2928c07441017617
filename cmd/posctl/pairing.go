package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/walletless/walletless/pairing"
	"github.com/walletless/walletless/store"
)

// cmdPairing shows or removes the terminal's zero-touch pairing (docs/fleet.md,
// "Zero-touch pairing and enrollment"). Both read posd's data directory; reset
// needs posd stopped, which the store's file lock tells.
func cmdPairing(_ context.Context, e env) error {
	if len(e.args) == 0 || (e.args[0] != "status" && e.args[0] != "reset") {
		fmt.Fprintln(e.stderr, "usage: posctl pairing status [-data DIR]")
		fmt.Fprintln(e.stderr, "       posctl pairing reset [-data DIR] [-yes]")
		fmt.Fprintln(e.stderr, "  status: the pairing posd runs with (device id, broker, groups, certificate), or 'not paired'")
		fmt.Fprintln(e.stderr, "  reset:  with posd stopped, removes the pairing and the device's key and certificate so a")
		fmt.Fprintln(e.stderr, "          NEW pairing QR can be scanned; QRs used before stay refused")
		return errUsage
	}
	sub := e.args[0]
	fl := flag.NewFlagSet("pairing "+sub, flag.ContinueOnError)
	fl.SetOutput(e.stderr)
	data := fl.String("data", "/var/lib/walletless", "posd's data directory")
	yes := fl.Bool("yes", false, "reset without asking")
	timeout := fl.Duration("timeout", time.Second, "how long to wait for posd's file lock (reset)")
	args, err := parseInterspersed(fl, e.args[1:])
	if err != nil {
		return err
	}
	if len(args) != 0 {
		return fmt.Errorf("unexpected arguments %q", args)
	}
	st, paired, err := pairing.Load(*data)
	if err != nil {
		return err
	}
	if sub == "status" {
		if !paired {
			fmt.Fprintf(e.stdout, "not paired (%s has no %s): posd waits for a pairing QR\n", *data, pairing.StateFile)
			return nil
		}
		printPairing(e, st)
		return nil
	}
	if !paired {
		if n := leftovers(*data); len(n) == 0 {
			fmt.Fprintln(e.stdout, "not paired: nothing to reset")
			return nil
		}
	}
	// posd holds its store's lock while it runs (paired or not, once it opened it).
	db := filepath.Join(*data, "posd.db")
	if _, err := os.Stat(db); err == nil {
		s, err := store.Open(db, store.Options{Timeout: *timeout, ReadOnly: true})
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("posd is running: stop it first (sudo systemctl stop posd)")
		}
		if err != nil {
			return err
		}
		s.Close()
	}
	if paired {
		printPairing(e, st)
	}
	if !*yes {
		fmt.Fprint(e.stdout, "Remove this pairing, the device key and its certificate? The terminal stops selling until a new pairing QR is scanned. [y/N] ")
		line, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			fmt.Fprintln(e.stdout, "nothing changed")
			return exitCode(1)
		}
	}
	if err := pairing.Reset(*data); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "pairing removed; start posd (sudo systemctl start posd) and scan a NEW pairing QR (used ones stay refused)")
	return nil
}

// leftovers lists the pairing files present without a pairing.json (an interrupted
// pairing or a hand-made mess) that a reset removes.
func leftovers(dir string) []string {
	var out []string
	for _, f := range []string{pairing.CertFile, pairing.KeyFile, pairing.CAFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, fs.ErrNotExist) {
			out = append(out, f)
		}
	}
	return out
}

func printPairing(e env, st pairing.State) {
	fmt.Fprintf(e.stdout, "paired as %s since %s\n", st.DeviceID, st.PairedAt.Format(time.RFC3339))
	fmt.Fprintf(e.stdout, "  broker       %s\n", st.Broker)
	if len(st.Groups) > 0 {
		fmt.Fprintf(e.stdout, "  groups       %s\n", strings.Join(st.Groups, ", "))
	}
	fmt.Fprintf(e.stdout, "  certificate  sha256 %s, valid until %s\n", st.CertFingerprint, st.CertNotAfter.Format(time.RFC3339))
	fmt.Fprintf(e.stdout, "  fleet CA     sha256 %s\n", st.CAFingerprint)
	fmt.Fprintf(e.stdout, "  enrollment   %s\n", st.EnrollURL)
}
