// Command posgw is the reference cloud end of the Walletless MQTT contract: it answers
// payment requests from devices with dedup by idempotency key and keeps a ledger.
//
//	posgw [-broker URL] [-data DIR]
//	posgw ledger [-data DIR] [-json]
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
	clientID := fs.String("client-id", "", "MQTT client id (default posgw-RANDOM)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (did you mean 'posgw ledger'?)", fs.Args())
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
	gw, err := gateway.New(gateway.Config{
		BrokerURL: *broker, Username: *user, Password: os.Getenv("POSGW_MQTT_PASSWORD"),
		ClientID: *clientID, Group: *group, Ledger: ledger, Log: log,
	})
	if err != nil {
		return err
	}
	log.Info("posgw starting", "broker", *broker, "ledger", filepath.Join(*data, ledgerFile))
	return gw.Run(ctx)
}

func runLedger(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("posgw ledger", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "posgw-data", "data directory for the ledger")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	if err := fs.Parse(args); err != nil {
		return err
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
	return ledger.ForEach(func(e gateway.Entry) error {
		if *asJSON {
			return enc.Encode(e)
		}
		_, err := fmt.Fprintf(stdout, "%s  %-12s %14d %s  %-10s %-8s %s\n", e.Key, e.Device, e.AmountMinor, e.Currency, e.Scheme, e.Status, e.Reason)
		return err
	})
}
