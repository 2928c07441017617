// Command posgw is the reference cloud end of the Walletless MQTT contract: it answers
// payment requests from devices with dedup by idempotency key and keeps a ledger.
//
//	posgw [-broker URL] [-data DIR] [-instances N] [-max-age 60s] [-ca FILE -cert FILE -key FILE]
//	posgw ... -ledger-listen ADDR [-ledger-token-file FILE] [-ledger-cert FILE -ledger-key FILE [-ledger-client-ca FILE]]
//	posgw ... -ledger-url URL [-ledger-token-file FILE] [-ledger-ca FILE] [-ledger-client-cert FILE -ledger-client-key FILE]
//	posgw ledger [-data DIR | -ledger-url URL ...] [-json] [-totals] [-attempts] [-batches]
//
// Several posgw processes share one ledger like this: one owns the bbolt file and
// serves it (-ledger-listen), the others decide every message through it
// (-ledger-url), so a resend that the broker hands to another process is answered
// from the same ledger and never decided twice. The link can run over TLS, with
// client certificates (mutual TLS), and carries a bearer token.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
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
  posgw ledger [-data DIR | -ledger-url URL [-ledger-ca FILE] ...] [-json] [-totals|-attempts|-batches]

Shared ledger: one posgw owns the ledger and serves it (-ledger-listen); the others
use it (-ledger-url); all join the same -group, and every key is decided once, by the
owner's rules. The link carries payment data. Protect it with:
  - a bearer token: -ledger-token-file, the same file on every side;
  - TLS: -ledger-cert and -ledger-key on the owner, an https:// -ledger-url and
    -ledger-ca (the CA that signed the owner's certificate) on the others;
  - mutual TLS: -ledger-client-ca on the owner, -ledger-client-cert and
    -ledger-client-key on the others.
A listener on a non-loopback address needs a token or mutual TLS; use TLS and a
token (and client certificates where you can) whenever the link leaves the machine.

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
	ledgerURL := fs.String("ledger-url", "", "use the ledger served by another posgw at `URL` (https://host:7601 for TLS, http://host:7601) instead of a local file")
	tokenFile := fs.String("ledger-token-file", "", "`FILE` holding the bearer token of the ledger link (at least 16 characters; to listen on a non-loopback address, this or -ledger-client-ca is required)")
	ledgerTimeout := fs.Duration("ledger-timeout", 10*time.Second, "bound of every call to the ledger server (-ledger-url)")
	ledgerCert := fs.String("ledger-cert", "", "PEM certificate `FILE` of the ledger server: serve -ledger-listen over TLS (with -ledger-key)")
	ledgerKey := fs.String("ledger-key", "", "PEM private key `FILE` of -ledger-cert")
	ledgerClientCA := fs.String("ledger-client-ca", "", "PEM CA bundle `FILE`: the ledger server requires client certificates signed by it (mutual TLS; needs -ledger-cert)")
	ledgerTLS := clientTLSFlags(fs)
	caFile := fs.String("ca", "", "PEM CA bundle for the broker's certificate (turns TLS on)")
	certFile := fs.String("cert", "", "client certificate for mutual TLS")
	keyFile := fs.String("key", "", "client key for mutual TLS")
	maxAge := fs.Duration("max-age", gateway.DefaultMaxAge, "decline a payment request whose created_at is older than this when it first arrives (sales stored offline are exempt; negative: never)")
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
	// Every ledger-link setting is checked before anything is opened.
	clientTLS, err := ledgerTLS.config(*ledgerURL)
	if err != nil {
		return err
	}
	var serverTLS *tls.Config
	if *ledgerCert != "" || *ledgerKey != "" || *ledgerClientCA != "" {
		if *ledgerListen == "" {
			return fmt.Errorf("-ledger-cert, -ledger-key and -ledger-client-ca are for the ledger server: they need -ledger-listen")
		}
		if *ledgerClientCA != "" && *ledgerCert == "" && *ledgerKey == "" {
			return fmt.Errorf("-ledger-client-ca needs -ledger-cert and -ledger-key: mutual TLS runs over TLS")
		}
		if serverTLS, err = gateway.ServerTLSConfig(*ledgerCert, *ledgerKey, *ledgerClientCA); err != nil {
			return fmt.Errorf("-ledger-cert/-ledger-key/-ledger-client-ca: %w", err)
		}
	}
	mutualTLS := *ledgerClientCA != ""
	if *ledgerListen != "" {
		if err := gateway.CheckListen(*ledgerListen, token, mutualTLS); err != nil {
			return fmt.Errorf("%w (give -ledger-token-file, or -ledger-client-ca for mutual TLS)", err)
		}
	}
	g, ctx := errgroup.WithContext(ctx)
	var (
		applier gateway.Applier
		where   string
	)
	if *ledgerURL != "" {
		remote, err := gateway.NewRemote(gateway.RemoteConfig{URL: *ledgerURL, Token: token, Timeout: *ledgerTimeout, TLS: clientTLS})
		if err != nil {
			return err
		}
		if !isLoopbackURL(*ledgerURL) && clientTLS == nil && !isHTTPS(*ledgerURL) {
			log.Warn("ledger link over plain HTTP: the token and payment data cross the network in clear text (use an https:// -ledger-url)", "url", remote.URL())
		}
		switch err := remote.Ping(ctx); {
		case errors.Is(err, gateway.ErrLedgerTLS), errors.Is(err, gateway.ErrUnauthorized):
			// Not fatal either (the owner's files may be being replaced), but nothing
			// works until the certificates or tokens agree.
			log.Error("ledger server refuses this process; answering nothing until it accepts it (check -ledger-ca, -ledger-client-cert and -ledger-token-file)", "url", remote.URL(), "err", err)
		case err != nil:
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
		local := gateway.NewLocal(ledger, gateway.Rules{MaxAge: *maxAge}, log.With("component", "ledger"))
		applier = local
		if *ledgerListen != "" {
			srv, err := gateway.NewServer(gateway.ServerConfig{Local: local, Token: token, TLS: serverTLS, Log: log.With("component", "ledger-server")})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", *ledgerListen)
			if err != nil {
				return fmt.Errorf("-ledger-listen: %w", err)
			}
			switch loopback := gateway.CheckListen(*ledgerListen, "", false) == nil; {
			case token == "" && !mutualTLS:
				log.Warn("ledger server without a token: any local process can write the ledger", "addr", *ledgerListen)
			case token == "":
				log.Warn("ledger server authenticates by client certificate alone; a token as well is recommended", "addr", *ledgerListen)
			case serverTLS == nil && !loopback:
				log.Warn("ledger server over plain HTTP: the token and payment data cross the network in clear text (use -ledger-cert and -ledger-key)", "addr", *ledgerListen)
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
	ledgerTLS := clientTLSFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	clientTLS, err := ledgerTLS.config(*ledgerURL)
	if err != nil {
		return err
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
		remote, err := gateway.NewRemote(gateway.RemoteConfig{URL: *ledgerURL, Token: token, TLS: clientTLS})
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

// tlsFlags are the TLS settings of a ledger client (-ledger-url).
type tlsFlags struct{ ca, cert, key *string }

func clientTLSFlags(fs *flag.FlagSet) tlsFlags {
	return tlsFlags{
		ca:   fs.String("ledger-ca", "", "PEM CA bundle `FILE` to verify the ledger server of an https:// -ledger-url (default: the system's roots)"),
		cert: fs.String("ledger-client-cert", "", "PEM client certificate `FILE` for a ledger server that requires mutual TLS (with -ledger-client-key)"),
		key:  fs.String("ledger-client-key", "", "PEM private key `FILE` of -ledger-client-cert"),
	}
}

// config checks the flags against the ledger URL and reads the files: nil when no
// file is given.
func (f tlsFlags) config(ledgerURL string) (*tls.Config, error) {
	if *f.ca == "" && *f.cert == "" && *f.key == "" {
		return nil, nil
	}
	if ledgerURL == "" {
		return nil, fmt.Errorf("-ledger-ca, -ledger-client-cert and -ledger-client-key are for a ledger client: they need -ledger-url")
	}
	if !isHTTPS(ledgerURL) {
		return nil, fmt.Errorf("-ledger-ca, -ledger-client-cert and -ledger-client-key need an https:// -ledger-url, not %q: they would not be used", ledgerURL)
	}
	c, err := gateway.ClientTLSConfig(*f.ca, *f.cert, *f.key)
	if err != nil {
		return nil, fmt.Errorf("-ledger-ca/-ledger-client-cert/-ledger-client-key: %w", err)
	}
	return c, nil
}

func isHTTPS(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && u.Scheme == "https"
}

// isLoopbackURL reports whether the URL's host is a loopback address.
func isLoopbackURL(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
