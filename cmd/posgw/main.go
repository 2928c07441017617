// Command posgw is the reference cloud end of the Walletless MQTT contract: it answers
// payment requests from devices with dedup by idempotency key and keeps a ledger.
//
//	posgw [-broker URL] [-data DIR] [-instances N] [-ca FILE -cert FILE -key FILE]
//	posgw ... -ledger-listen ADDR [-ledger-token-file FILE]   # own the ledger, serve it
//	posgw ... -ledger-url URL [-ledger-token-file FILE]       # use another posgw's ledger
//	posgw ledger [-data DIR | -ledger-url URL] [-json] [-totals] [-attempts] [-batches]
//
// Several posgw processes share one ledger like this: one owns the bbolt file and
// serves it (-ledger-listen), the others decide every message through it
// (-ledger-url), so a resend that the broker hands to another process is answered
// from the same ledger and never decided twice.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/walletless/walletless/gateway"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "posgw:", err)
		}
		os.Exit(1)
	}
}

const ledgerFile = "posgw.db"

const usage = `posgw is the reference cloud end of the Walletless MQTT contract.

Usage:
  posgw [flags]                       run gateways on the ledger in -data
  posgw [flags] -ledger-listen ADDR   also serve that ledger to other posgw processes
  posgw [flags] -ledger-url URL       run gateways on another posgw's ledger (no local file)
  posgw ledger [-data DIR | -ledger-url URL] [-json] [-totals|-attempts|-batches]

Shared ledger: one posgw owns the ledger and serves it (-ledger-listen); the others
use it (-ledger-url); all join the same -group, and every key is decided once, by the
owner's rules. The link carries payment data and is guarded by a bearer token
(-ledger-token-file, the same file on every side; required on a non-loopback
address). Keep it on a private network, or behind a TLS-terminating proxy (the
client accepts https:// URLs).

Flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "ledger" {
		return runLedger(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("posgw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	broker := fs.String("broker", "tcp://127.0.0.1:1883", "MQTT broker URL")
	data := fs.String("data", "posgw-data", "data directory for the ledger")
	user := fs.String("username", "", "MQTT username")
	group := fs.String("group", "posgw", "shared subscription group")
	clientID := fs.String("client-id", "", "MQTT client id (default posgw-RANDOM; with -instances N, ID-1 … ID-N)")
	instances := fs.Int("instances", 1, "gateways in this process sharing the subscription and the ledger (0: with -ledger-listen, serve the ledger only)")
	ledgerListen := fs.String("ledger-listen", "", "serve this process's ledger to other posgw processes on `ADDR` (host:port, e.g. 127.0.0.1:7601)")
	ledgerURL := fs.String("ledger-url", "", "use the ledger served by another posgw at `URL` (http://host:7601) instead of a local file")
	tokenFile := fs.String("ledger-token-file", "", "`FILE` holding the bearer token of the ledger link (at least 16 characters; required to listen on a non-loopback address)")
	ledgerTimeout := fs.Duration("ledger-timeout", 10*time.Second, "bound of every call to the ledger server (-ledger-url)")
	caFile := fs.String("ca", "", "PEM CA bundle for the broker's certificate (turns TLS on)")
	certFile := fs.String("cert", "", "client certificate for mutual TLS")
	keyFile := fs.String("key", "", "client key for mutual TLS")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (did you mean 'posgw ledger'?)", fs.Args())
	}
	if *instances < 0 || *instances > 64 || (*instances == 0 && *ledgerListen == "") {
		return fmt.Errorf("-instances must be 1..64 (0 only with -ledger-listen)")
	}
	if *ledgerURL != "" && *ledgerListen != "" {
		return fmt.Errorf("-ledger-url and -ledger-listen exclude each other: a process either owns the ledger or uses another's")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	var token string
	if *tokenFile != "" {
		var err error
		if token, err = gateway.ReadToken(*tokenFile); err != nil {
			return err
		}
	}
	g, ctx := errgroup.WithContext(ctx)
	var (
		applier gateway.Applier
		where   string
	)
	if *ledgerURL != "" {
		remote, err := gateway.NewRemote(gateway.RemoteConfig{URL: *ledgerURL, Token: token, Timeout: *ledgerTimeout})
		if err != nil {
			return err
		}
		if err := remote.Ping(ctx); err != nil {
			// Not fatal: the owner may start later; until then nothing is answered.
			log.Warn("ledger server not reachable yet; answering nothing until it is", "url", remote.URL(), "err", err)
		}
		applier, where = remote, remote.URL()
	} else {
		where = filepath.Join(*data, ledgerFile)
		ledger, err := gateway.OpenLedger(where, false)
		if err != nil {
			return err
		}
		defer ledger.Close()
		local := gateway.NewLocal(ledger, gateway.Rules{}, log.With("component", "ledger"))
		applier = local
		if *ledgerListen != "" {
			if err := gateway.CheckListen(*ledgerListen, token); err != nil {
				return err
			}
			srv, err := gateway.NewServer(gateway.ServerConfig{Local: local, Token: token, Log: log.With("component", "ledger-server")})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", *ledgerListen)
			if err != nil {
				return fmt.Errorf("-ledger-listen: %w", err)
			}
			if token == "" {
				log.Warn("ledger server without a token: any local process can write the ledger", "addr", *ledgerListen)
			}
			g.Go(func() error { return srv.Serve(ctx, ln) })
		}
	}
	for i := 1; i <= *instances; i++ {
		id := *clientID
		if id != "" && *instances > 1 {
			id = fmt.Sprintf("%s-%d", id, i)
		}
		gw, err := gateway.New(gateway.Config{
			BrokerURL: *broker, Username: *user, Password: os.Getenv("POSGW_MQTT_PASSWORD"),
			CAFile: *caFile, CertFile: *certFile, KeyFile: *keyFile,
			ClientID: id, Group: *group, Applier: applier, Log: log.With("instance", i),
		})
		if err != nil {
			return err
		}
		g.Go(func() error { return gw.Run(ctx) })
	}
	log.Info("posgw starting", "broker", *broker, "ledger", where, "ledger_listen", *ledgerListen, "instances", *instances)
	return g.Wait()
}

// ledgerView is what posgw ledger reads: the local file (*gateway.Ledger) or a
// running owner's ledger server (*gateway.Remote).
type ledgerView interface {
	ForEach(func(gateway.Entry) error) error
	ForEachAttempt(func(gateway.Attempt) error) error
	ForEachBatch(func(gateway.Batch) error) error
	Totals() ([]gateway.Total, error)
}

func runLedger(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("posgw ledger", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "posgw-data", "data directory for the ledger")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	totals := fs.Bool("totals", false, "per-device totals per currency instead of the sales")
	attempts := fs.Bool("attempts", false, "audit records of attempts instead of the sales")
	batches := fs.Bool("batches", false, "settlement batches instead of the sales")
	ledgerURL := fs.String("ledger-url", "", "read the ledger served by a running posgw at `URL` instead of the file in -data")
	tokenFile := fs.String("ledger-token-file", "", "`FILE` holding the ledger server's bearer token")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var ledger ledgerView
	if *ledgerURL != "" {
		var token string
		if *tokenFile != "" {
			var err error
			if token, err = gateway.ReadToken(*tokenFile); err != nil {
				return err
			}
		}
		remote, err := gateway.NewRemote(gateway.RemoteConfig{URL: *ledgerURL, Token: token})
		if err != nil {
			return err
		}
		ledger = remote
	} else {
		path := filepath.Join(*data, ledgerFile)
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("no ledger at %s: %w", path, err)
		}
		local, err := gateway.OpenLedger(path, true)
		if err != nil {
			return fmt.Errorf("%w (while posgw runs, read it with -ledger-url from a posgw started with -ledger-listen)", err)
		}
		defer local.Close()
		ledger = local
	}
	enc := json.NewEncoder(stdout)
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	defer w.Flush()
	switch {
	case *totals:
		ts, err := ledger.Totals()
		if err != nil {
			return err
		}
		if !*asJSON {
			fmt.Fprintln(w, "DEVICE\tCURRENCY\tSALES\tSALES_MINOR\tREFUNDS\tREFUNDS_MINOR\tNET_MINOR\tDECLINED\tREVERSED")
		}
		for _, t := range ts {
			if *asJSON {
				if err := enc.Encode(t); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", t.Device, t.Currency, t.SalesCount, t.SalesMinor, t.RefundsCount, t.RefundsMinor, t.NetMinor, t.Declined, t.Reversed)
		}
		return nil
	case *attempts:
		return ledger.ForEachAttempt(func(a gateway.Attempt) error {
			if *asJSON {
				return enc.Encode(a)
			}
			_, err := fmt.Fprintf(w, "%s\t%s\t%d %s\t%s\t%s\t%s\n", a.Key, a.Device, a.AmountMinor, a.Currency, a.Scheme, a.Outcome, a.Reason)
			return err
		})
	case *batches:
		return ledger.ForEachBatch(func(b gateway.Batch) error {
			if *asJSON {
				return enc.Encode(b)
			}
			_, err := fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", b.Key, b.Device, b.OpenedAt.Format(time.RFC3339), b.ClosedAt.Format(time.RFC3339), b.Status, b.Reason)
			return err
		})
	}
	return ledger.ForEach(func(e gateway.Entry) error {
		if *asJSON {
			return enc.Encode(e)
		}
		typ := e.Type
		if typ == "" {
			typ = gateway.TypeSale
		}
		_, err := fmt.Fprintf(w, "%s\t%s\t%s\t%d %s\t%s\t%s\t%s\n", e.Key, typ, e.Device, e.AmountMinor, e.Currency, e.Scheme, e.Status, e.Reason)
		return err
	})
}
