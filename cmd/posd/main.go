// Command posd is the Walletless point-of-sale daemon: it reads the customer's payment
// code from a scanner, commits each sale to bbolt, syncs it to the cloud over MQTT and
// prints the receipt. `posd -demo` runs the whole product on one machine with nothing
// but Go.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/daemon"
	"github.com/walletless/walletless/firmware"
	"github.com/walletless/walletless/internal/sdnotify"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, daemon.ErrRestart) {
		// The supervisor (systemd's Restart=always, posctl firmware supervise) starts
		// current/posd again: the new version on trial, or the old one after a rollback.
		fmt.Fprintln(os.Stderr, "posd: firmware slot changed; exiting for a restart")
		os.Exit(firmware.ExitRestart)
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "posd:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("posd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfgFile  = fs.String("config", "", "configuration file (JSON); without it the documented defaults apply")
		dataDir  = fs.String("data", "", "data directory for the bbolt database (overrides data_dir)")
		apiAddr  = fs.String("api", "", "local API address host:port (overrides api.addr)")
		brokerU  = fs.String("broker", "", "MQTT broker URL, e.g. tcp://127.0.0.1:1883 (overrides mqtt.broker)")
		deviceID = fs.String("device-id", "", "device id used in MQTT topics (overrides device_id)")
		scanSrc  = fs.String("scanner", "", "scanner: stdin, a serial device path or usb:VID:PID (overrides scanner.source)")
		prnTgt   = fs.String("printer", "", "printer: none, a file or device path, or emulator:DIR (overrides printer.target)")
		demo     = fs.Bool("demo", false, "demo mode: embedded MQTT broker and posgw, scans from stdin, receipts as PNG")
		logLevel = fs.String("log-level", "info", "log level: debug, info, warn, error")
		showVer  = fs.Bool("version", false, "print the version and exit")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *showVer {
		fmt.Fprintln(stdout, "posd", version)
		return nil
	}
	cfg := config.Default()
	if *cfgFile != "" {
		c, err := config.Load(*cfgFile)
		if err != nil {
			return err
		}
		cfg = c
	}
	if *demo {
		cfg.DataDir = "demo"
		cfg.Scanner.Source = "stdin"
		cfg.Printer.Target = "emulator:" + filepath.Join("demo", "receipts")
		cfg.DeviceID = "demo-1"
		cfg.Merchant.Name = "Walletless Demo Mart"
		cfg.Merchant.Lines = []string{"1 Counter Street, Seoul"}
		if len(cfg.Page.Currencies) == 0 {
			cfg.Page.Currencies = []string{"KRW", "JPY", "HKD"} // the page's languages can be tried with their money
		}
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.DataDir, *dataDir)
	set(&cfg.API.Addr, *apiAddr)
	set(&cfg.MQTT.Broker, *brokerU)
	set(&cfg.DeviceID, *deviceID)
	set(&cfg.Scanner.Source, *scanSrc)
	set(&cfg.Printer.Target, *prnTgt)
	if err := cfg.Validate(); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	// Under systemd (Type=notify, WatchdogSec=) the environment names the socket.
	notify, err := sdnotify.FromEnv()
	if err != nil {
		return err
	}
	wd, err := sdnotify.WatchdogInterval()
	if err != nil && !errors.Is(err, sdnotify.ErrNoWatchdog) {
		return err
	}
	return daemon.Run(ctx, daemon.Options{
		Notify:   notify,
		Watchdog: wd,
		Config:   cfg,
		Demo:     *demo,
		Stdin:    stdin,
		Log:      log,
		Version:  version,
		Ready: func(i daemon.Info) {
			if *demo {
				fmt.Fprint(stdout, banner(i))
			}
		},
	})
}

// SampleAlipay and SampleWeChat are demo codes that match the built-in wallet rules.
const (
	SampleAlipay = "281234567890123456"
	SampleWeChat = "134567890123456789"
)

func banner(i daemon.Info) string {
	var b strings.Builder
	receipts := strings.TrimPrefix(i.Printer, "emulator:")
	auth := `-H "Authorization: Bearer ` + i.Token + `"`
	curl := "curl -s"
	tlsLine := ""
	if i.TLSFingerprint != "" {
		// The demo's certificate is self-signed: curl trusts it as its own CA file.
		curl = "curl -s --cacert " + filepath.Join(i.DataDir, daemon.APICertFile)
		tlsLine = "\n   API TLS       SHA-256 " + i.TLSFingerprint
	}
	fmt.Fprintf(&b, `
=====================================================================
 Walletless posd — demo mode
   counter page  %s
                 sign in with the API token below; "Demo customer" gives a
                 fresh sample code for every sale
   local API     %s%s
   API token     %s (manager; also in %s)
   MQTT broker   %s (embedded; posgw runs in-process)
   receipts      %s
   data          %s
---------------------------------------------------------------------
 1. In another terminal, start a sale of 12,000 won:

    %s -X POST %s/v1/sales \
         %s \
         -H 'Content-Type: application/json' \
         -d '{"amount_minor": 12000, "currency": "KRW"}'

 2. Type the customer's code here and press Enter (this window is the
    scanner). Each sample works once (a code is one-time); the page's
    "Demo customer" button makes a fresh one every time.
                 Alipay sample:      %s
                 WeChat Pay sample:  %s

 3. See the result:
    %s %s %s/v1/sales/SALE_ID
    and the receipt PNG in %s

 posgw approves up to ₩1,000,000 and declines above. Ctrl-C stops.
=====================================================================
`, i.PageURL, i.APIURL, tlsLine, i.Token, filepath.Join(i.DataDir, daemon.AdminTokenFile), i.BrokerURL, receipts, i.DataDir,
		curl, i.APIURL, auth, SampleAlipay, SampleWeChat, curl, auth, i.APIURL, receipts)
	return b.String()
}
