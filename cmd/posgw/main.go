// Command posgw is the reference cloud end of the Walletless MQTT contract: it answers
// payment requests from devices with dedup by idempotency key and keeps a ledger.
//
//	posgw [-broker URL] [-data DIR | -ledger postgres://…] [-instances N] [-max-age 60s] [-ca FILE -cert FILE -key FILE]
//	posgw migrate -ledger postgres://…
//	posgw ledger [-data DIR | -ledger postgres://…] [-json | -csv] [-totals | -attempts | -batches]
//
// The ledger is a bbolt file in -data (one process: the embedded default) or a
// PostgreSQL database (-ledger), which any number of posgw processes share: each key
// is decided once, by the database's unique key inside the transaction that stores
// it, so a resend that the broker hands to another process gets the stored answer.
// See docs/deploy.md.
package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/walletless/walletless/gateway"
	wsync "github.com/walletless/walletless/sync"
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
  posgw [flags]                        run gateways on the bbolt ledger in -data (one process)
  posgw [flags] -ledger postgres://…   run gateways on a PostgreSQL ledger (any number of processes)
  posgw migrate -ledger postgres://…   create or upgrade the PostgreSQL ledger's schema
  posgw ledger [-data DIR | -ledger postgres://…] [-json | -csv] [-totals | -attempts | -batches]

On PostgreSQL, every posgw joins the same -group (a shared subscription) and every key
is decided once by the database. Keep the password out of the URL (and so out of ps):
PGPASSWORD or ~/.pgpass are read as libpq reads them. See docs/deploy.md.

Flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "ledger":
			return runLedger(args[1:], stdout, stderr)
		case "migrate":
			return runMigrate(ctx, args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("posgw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	broker := fs.String("broker", "tcp://127.0.0.1:1883", "MQTT broker URL")
	data := fs.String("data", "posgw-data", "data directory for the bbolt ledger (without -ledger)")
	ledgerURL := fs.String("ledger", "", "PostgreSQL ledger `URL` (postgres://user@host:5432/db?sslmode=verify-full) instead of the bbolt file in -data")
	conns := fs.Int("ledger-conns", 0, "PostgreSQL connections of this process (default 4 or the CPU count)")
	user := fs.String("username", "", "MQTT username")
	group := fs.String("group", "posgw", "shared subscription group")
	clientID := fs.String("client-id", "", "MQTT client id (default posgw-RANDOM; with -instances N, ID-1 … ID-N)")
	instances := fs.Int("instances", 1, "gateways in this process sharing the subscription and the ledger")
	caFile := fs.String("ca", "", "PEM CA bundle for the broker's certificate (turns TLS on)")
	certFile := fs.String("cert", "", "client certificate for mutual TLS")
	keyFile := fs.String("key", "", "client key for mutual TLS")
	maxAge := fs.Duration("max-age", gateway.DefaultMaxAge, "decline a payment request whose created_at is older than this when it first arrives (sales stored offline are exempt; negative: never)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (did you mean 'posgw ledger' or 'posgw migrate'?)", fs.Args())
	}
	if *instances < 1 || *instances > 64 {
		return fmt.Errorf("-instances must be 1..64")
	}
	if *conns < 0 || *conns > 1000 {
		return fmt.Errorf("-ledger-conns must be 0..1000")
	}
	if err := checkLedgerURL(*ledgerURL); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	var (
		store gateway.Store
		where string
	)
	if *ledgerURL != "" {
		pg, err := openPG(ctx, log, gateway.PGConfig{URL: *ledgerURL, MaxConns: int32(*conns), Log: log.With("component", "ledger")})
		if err != nil {
			return err
		}
		if pg == nil {
			return nil // stopped while waiting for the database
		}
		store, where = pg, "postgresql"
	} else {
		where = filepath.Join(*data, ledgerFile)
		ledger, err := gateway.OpenLedger(where, false)
		if err != nil {
			return err
		}
		store = ledger
	}
	defer store.Close()
	applier := gateway.NewLocal(store, gateway.Rules{MaxAge: *maxAge}, log.With("component", "ledger"))
	g, ctx := errgroup.WithContext(ctx)
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
	log.Info("posgw starting", "broker", *broker, "ledger", where, "instances", *instances)
	return g.Wait()
}

// openPG opens the PostgreSQL ledger, waiting (with backoff and jitter) while the
// database cannot be reached: posgw may start before it. A bad URL or schema is
// fatal. It returns nil, nil when ctx ends first.
func openPG(ctx context.Context, log *slog.Logger, cfg gateway.PGConfig) (*gateway.PGLedger, error) {
	b := wsync.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}
	for attempt := 1; ; attempt++ {
		pg, err := gateway.OpenPG(ctx, cfg)
		switch {
		case err == nil:
			return pg, nil
		case errors.Is(err, gateway.ErrSchemaMissing), errors.Is(err, gateway.ErrSchemaNewer), errors.Is(err, gateway.ErrLedgerURL):
			return nil, err
		case ctx.Err() != nil:
			return nil, nil
		}
		d := b.Next()
		if attempt == 1 || attempt%10 == 0 {
			log.Warn("ledger database unreachable; waiting for it", "attempt", attempt, "in", d.Round(time.Millisecond), "err", err)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil
		case <-t.C:
		}
	}
}

// checkLedgerURL refuses a -ledger that is not a PostgreSQL URL.
func checkLedgerURL(u string) error {
	if u == "" || strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://") {
		return nil
	}
	return fmt.Errorf("-ledger wants a postgres:// URL (the bbolt ledger is chosen with -data)")
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("posgw migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ledgerURL := fs.String("ledger", "", "PostgreSQL ledger `URL` to create or upgrade")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *ledgerURL == "" {
		return fmt.Errorf("posgw migrate needs -ledger postgres://… (the bbolt ledger needs no migration)")
	}
	if err := checkLedgerURL(*ledgerURL); err != nil {
		return err
	}
	applied, err := gateway.Migrate(ctx, *ledgerURL)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(stdout, "ledger schema is at version %d; nothing to do\n", gateway.SchemaVersion())
		return nil
	}
	for _, v := range applied {
		fmt.Fprintf(stdout, "applied migration %d\n", v)
	}
	fmt.Fprintf(stdout, "ledger schema is at version %d\n", gateway.SchemaVersion())
	return nil
}

func runLedger(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("posgw ledger", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "posgw-data", "data directory of the bbolt ledger")
	ledgerURL := fs.String("ledger", "", "read the PostgreSQL ledger at `URL` instead of the file in -data")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	asCSV := fs.Bool("csv", false, "CSV with a header line, for accounting (amounts in minor units)")
	totals := fs.Bool("totals", false, "per-device totals per currency instead of the sales")
	attempts := fs.Bool("attempts", false, "audit records of attempts instead of the sales")
	batches := fs.Bool("batches", false, "settlement batches instead of the sales")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *asJSON && *asCSV {
		return fmt.Errorf("-json and -csv exclude each other")
	}
	if n := btoi(*totals) + btoi(*attempts) + btoi(*batches); n > 1 {
		return fmt.Errorf("-totals, -attempts and -batches exclude each other")
	}
	if err := checkLedgerURL(*ledgerURL); err != nil {
		return err
	}
	var ledger gateway.LedgerReader
	if *ledgerURL != "" {
		pg, err := gateway.OpenPG(context.Background(), gateway.PGConfig{URL: *ledgerURL, MaxConns: 2})
		if err != nil {
			return err
		}
		defer pg.Close()
		ledger = pg
	} else {
		path := filepath.Join(*data, ledgerFile)
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("no ledger at %s: %w", path, err)
		}
		local, err := gateway.OpenLedger(path, true)
		if err != nil {
			return fmt.Errorf("%w (the bbolt ledger is read while posgw is stopped; a PostgreSQL ledger can be read at any time)", err)
		}
		defer local.Close()
		ledger = local
	}
	var out writer
	switch {
	case *asJSON:
		out = &jsonWriter{enc: json.NewEncoder(stdout)}
	case *asCSV:
		out = &csvWriter{w: csv.NewWriter(stdout)}
	default:
		out = &tableWriter{w: tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)}
	}
	err := export(ledger, out, *totals, *attempts, *batches)
	if ferr := out.flush(); err == nil {
		err = ferr
	}
	return err
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// export writes the chosen records of ledger to out.
func export(ledger gateway.LedgerReader, out writer, totals, attempts, batches bool) error {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
	switch {
	case totals:
		tot, err := ledger.Totals()
		if err != nil {
			return err
		}
		out.header("device", "currency", "sales", "sales_minor", "refunds", "refunds_minor", "net_minor", "declined", "reversed")
		for _, t := range tot {
			if err := out.row(t, t.Device, t.Currency, i64(t.SalesCount), i64(t.SalesMinor), i64(t.RefundsCount), i64(t.RefundsMinor),
				i64(t.NetMinor), i64(t.Declined), i64(t.Reversed)); err != nil {
				return err
			}
		}
		return nil
	case attempts:
		out.header("key", "device", "amount_minor", "currency", "kind", "scheme", "masked_code", "outcome", "reason", "created_at", "recorded_at")
		return ledger.ForEachAttempt(func(a gateway.Attempt) error {
			return out.row(a, a.Key, a.Device, i64(a.AmountMinor), a.Currency, a.Kind, a.Scheme, a.MaskedCode, a.Outcome, a.Reason,
				ts(a.CreatedAt), ts(a.RecordedAt))
		})
	case batches:
		out.header("key", "device", "opened_at", "closed_at", "status", "reason", "recorded_at")
		return ledger.ForEachBatch(func(b gateway.Batch) error {
			return out.row(b, b.Key, b.Device, ts(b.OpenedAt), ts(b.ClosedAt), b.Status, b.Reason, ts(b.RecordedAt))
		})
	}
	out.header("key", "type", "device", "amount_minor", "currency", "scheme", "masked_code", "status", "reason",
		"created_at", "batch", "decided_at", "requests", "original_key", "refunded_minor", "reversed_at")
	return ledger.ForEach(func(e gateway.Entry) error {
		typ := e.Type
		if typ == "" {
			typ = gateway.TypeSale
		}
		return out.row(e, e.Key, typ, e.Device, i64(e.AmountMinor), e.Currency, e.Scheme, e.MaskedCode, e.Status, e.Reason,
			ts(e.CreatedAt), e.Batch, ts(e.DecidedAt), strconv.Itoa(e.Requests), e.OriginalKey, i64(e.RefundedMinor), ts(e.ReversedAt))
	})
}

// writer is one output format of posgw ledger: a record as JSON, or its fields as a
// CSV or table row.
type writer interface {
	header(cols ...string)
	row(v any, fields ...string) error
	flush() error
}

type jsonWriter struct{ enc *json.Encoder }

func (w *jsonWriter) header(...string)             {}
func (w *jsonWriter) row(v any, _ ...string) error { return w.enc.Encode(v) }
func (w *jsonWriter) flush() error                 { return nil }

type csvWriter struct{ w *csv.Writer }

func (w *csvWriter) header(cols ...string) { _ = w.w.Write(cols) }
func (w *csvWriter) row(_ any, fields ...string) error {
	for i, f := range fields {
		fields[i] = csvSafe(f)
	}
	return w.w.Write(fields)
}
func (w *csvWriter) flush() error { w.w.Flush(); return w.w.Error() }

// csvSafe keeps a spreadsheet from reading a text field as a formula: a device's
// reversal reason or batch id starting with = + - @ (or a tab or carriage return)
// gets a leading apostrophe. Numbers are written by us and never start so, except a
// negative net, which stays a number.
func csvSafe(f string) string {
	if f == "" {
		return f
	}
	if _, err := strconv.ParseInt(f, 10, 64); err == nil {
		return f
	}
	switch f[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + f
	}
	return f
}

type tableWriter struct{ w *tabwriter.Writer }

func (w *tableWriter) header(cols ...string) {
	fmt.Fprintln(w.w, strings.ToUpper(strings.Join(cols, "\t")))
}
func (w *tableWriter) row(_ any, fields ...string) error {
	for i, f := range fields {
		fields[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(f)
	}
	_, err := fmt.Fprintln(w.w, strings.Join(fields, "\t"))
	return err
}
func (w *tableWriter) flush() error { return w.w.Flush() }
