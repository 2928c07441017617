package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/paycode"
	"github.com/walletless/walletless/scanner"
)

// cmdScanTest opens the configured (or given) scanner and prints each scan with its
// symbology and timing, masked unless -reveal.
func cmdScanTest(ctx context.Context, e env) error {
	fs := flag.NewFlagSet("scan-test", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	cfgFile := fs.String("config", "", "posd's configuration file; its scanner section is used (default: the documented defaults)")
	source := fs.String("source", "", "scanner source: stdin, a serial device path, usb:VID:PID[:SERIAL], input:PATH|input:usb:VID:PID, camera:/dev/videoN[@WxH] or images:DIR (overrides the config)")
	baud := fs.Int("baud", 0, "baud rate (overrides the config)")
	framing := fs.String("framing", "", "framing: auto, cr, lf, crlf or gap (default auto)")
	gap := fs.Duration("gap", 0, "inter-byte timeout for -framing gap (default 50ms)")
	aim := fs.String("aim", "", "AIM symbology prefix: auto or off (default auto)")
	ean13 := fs.Bool("ean13", false, "also read EAN-13 (camera: and images: sources)")
	keymap := fs.String("keymap", "", "layout a keyboard-wedge scanner (input: source) emulates: us, de or fr (default us)")
	dedup := fs.Duration("dedup", -1, "duplicate-read window (default: the config's; 0 shows every read)")
	reveal := fs.Bool("reveal", false, "print codes in full (they are payment codes: do not share the output)")
	count := fs.Int("n", 0, "stop after this many scans (0: until interrupted)")
	timeout := fs.Duration("timeout", 0, "stop after this long (0: until interrupted)")
	asJSON := fs.Bool("json", false, "print one JSON object per scan")
	verbose := fs.Bool("v", false, "log reconnect attempts and dropped lines in detail")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: posctl scan-test [flags]")
		fmt.Fprintln(e.stderr, "Opens the scanner (stop posd first: a port has one reader) and prints each scan until interrupted.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(e.args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	c := config.Default()
	if *cfgFile != "" {
		var err error
		if c, err = config.Load(*cfgFile); err != nil {
			return err
		}
	}
	cfg := scanner.Config{
		Source:  c.Scanner.Source,
		Baud:    c.Scanner.Baud,
		MaxLine: c.Scanner.MaxLine,
		Dedup:   time.Duration(c.Scanner.Dedup),
		Framing: scanner.Framing(*framing),
		Gap:     *gap,
		AIM:     scanner.AIMMode(*aim),
		Keymap:  scanner.Keymap(*keymap),
		EAN13:   *ean13,
		Status:  new(scanner.Status),
	}
	if *source != "" {
		cfg.Source = *source
	}
	if *baud > 0 {
		cfg.Baud = *baud
	}
	if *dedup >= 0 {
		cfg.Dedup = *dedup
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	// The scanner logs from its own goroutine; e.stderr may be any writer.
	e.stderr = &lockedWriter{w: e.stderr}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))

	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	scans := make(chan scanner.Scan, 16)
	done := make(chan error, 1)
	go func() { done <- scanner.Run(ctx, cfg, e.stdin, log, scans) }()
	fmt.Fprintf(e.stderr, "scan-test: reading %s; scan a code (Ctrl-C to stop)\n", cfg.Source)

	started := time.Now()
	var prev time.Time
	n := 0
	show := func(s scanner.Scan) {
		n++
		text := paycode.Mask(s.Text)
		if *reveal {
			text = s.Text
		}
		sinceStart := s.At.Sub(started)
		var sincePrev time.Duration
		if !prev.IsZero() {
			sincePrev = s.At.Sub(prev)
		}
		prev = s.At
		id, idErr := paycode.Identify(s.Text)
		scheme := id.Scheme
		if idErr != nil || scheme == "" {
			scheme = "-"
		}
		if *asJSON {
			b, _ := json.Marshal(map[string]any{
				"n": n, "at": s.At.Format(time.RFC3339Nano), "code": text, "symbology": s.Symbology,
				"bytes": len(s.Text), "since_start_ms": sinceStart.Milliseconds(),
				"since_prev_ms": sincePrev.Milliseconds(), "scheme": scheme,
			})
			fmt.Fprintln(e.stdout, string(b))
			return
		}
		sym := s.Symbology
		if sym == "" {
			sym = "-"
		}
		fmt.Fprintf(e.stdout, "%3d  %s  +%-9s %-10s %-10s %4d bytes  %s\n", n, s.At.Format("15:04:05.000"),
			sincePrev.Round(time.Millisecond), sym, scheme, len(s.Text), text)
	}
	for {
		select {
		case s := <-scans:
			show(s)
			if *count > 0 && n >= *count {
				cancel()
				<-done
				return nil
			}
		case err := <-done:
			// Drain what Run delivered before it returned (end of input).
			for len(scans) > 0 {
				show(<-scans)
			}
			if err != nil {
				return err
			}
			st := cfg.Status.State()
			fmt.Fprintf(e.stderr, "scan-test: %d scans, %d duplicates suppressed, %d lines dropped\n", st.Scans, st.Duplicates, st.Dropped)
			if n == 0 {
				return exitCode(1)
			}
			return nil
		}
	}
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer // guarded by mu
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
