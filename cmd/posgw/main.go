// Command posgw is the reference cloud end of the Walletless MQTT contract: it answers
// payment requests from devices with dedup by idempotency key and keeps a ledger.
//
//	posgw [-broker URL] [-data DIR] [-instances N] [-ca FILE -cert FILE -key FILE]
//	posgw ledger [-data DIR] [-json] [-totals] [-attempts] [-batches]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
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

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "ledger" {
		return runLedger(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("posgw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	broker := fs.String("broker", "tcp://127.0.0.1:1883", "MQTT broker URL")
	data := fs.String("data", "posgw-data", "data directory for the ledger")
	user := fs.String("username", "", "MQTT username")
	group := fs.String("group", "posgw", "shared subscription group")
	clientID := fs.String("client-id", "", "MQTT client id (default posgw-RANDOM; with -instances N, ID-1 … ID-N)")
	instances := fs.Int("instances", 1, "gateways in this process sharing the subscription and the ledger")
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
	if *instances < 1 || *instances > 64 {
		return fmt.Errorf("-instances must be 1..64")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ledger, err := gateway.OpenLedger(filepath.Join(*data, ledgerFile), false)
	if err != nil {
		return err
	}
	defer ledger.Close()
	g, ctx := errgroup.WithContext(ctx)
	for i := 1; i <= *instances; i++ {
		id := *clientID
		if id != "" && *instances > 1 {
			id = fmt.Sprintf("%s-%d", id, i)
		}
		gw, err := gateway.New(gateway.Config{
			BrokerURL: *broker, Username: *user, Password: os.Getenv("POSGW_MQTT_PASSWORD"),
			CAFile: *caFile, CertFile: *certFile, KeyFile: *keyFile,
			ClientID: id, Group: *group, Ledger: ledger, Log: log.With("instance", i),
		})
		if err != nil {
			return err
		}
		g.Go(func() error { return gw.Run(ctx) })
	}
	log.Info("posgw starting", "broker", *broker, "ledger", filepath.Join(*data, ledgerFile), "instances", *instances)
	return g.Wait()
}

func runLedger(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("posgw ledger", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "posgw-data", "data directory for the ledger")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	totals := fs.Bool("totals", false, "per-device totals per currency instead of the sales")
	attempts := fs.Bool("attempts", false, "audit records of attempts instead of the sales")
	batches := fs.Bool("batches", false, "settlement batches instead of the sales")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	path := filepath.Join(*data, ledgerFile)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no ledger at %s: %w", path, err)
	}
	ledger, err := gateway.OpenLedger(path, true)
	if err != nil {
		return err
	}
	defer ledger.Close()
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
