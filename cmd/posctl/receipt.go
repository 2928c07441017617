package main

import (
	"context"
	"flag"
	"fmt"
	"image/png"
	"io"
	"os"
	"strings"
	"time"

	"github.com/walletless/walletless/printer"
	"github.com/walletless/walletless/printer/emulator"
)

// cmdReceipt renders ESC/POS files and makes sample receipts:
//
//	posctl receipt preview [-profile NAME] [-width DOTS] [-cjk ENC] [-text] IN.bin -o OUT.png
//	posctl receipt sample [-profile NAME] [-lang en|ko|ja|zh] [-status S] [-amount MINOR] [-currency C] [-o OUT.bin]
func cmdReceipt(ctx context.Context, e env) error {
	if len(e.args) == 0 {
		receiptUsage(e.stderr)
		return errUsage
	}
	sub, rest := e.args[0], e.args[1:]
	switch sub {
	case "preview":
		return receiptPreview(e, rest)
	case "sample":
		return receiptSample(e, rest)
	case "-h", "--help", "help":
		receiptUsage(e.stderr)
		return nil
	}
	fmt.Fprintf(e.stderr, "posctl receipt: unknown subcommand %q\n", sub)
	receiptUsage(e.stderr)
	return errUsage
}

func receiptUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: posctl receipt preview [-profile NAME] [-width DOTS] [-cjk ENC] [-text] IN.bin -o OUT.png")
	fmt.Fprintln(w, "       posctl receipt sample [-profile NAME] [-lang en|ko|ja|zh] [-status STATUS] [-amount MINOR] [-currency CODE] [-o OUT.bin]")
	fmt.Fprintln(w, "preview renders any ESC/POS file (- for standard input) as the printer would print it.")
	fmt.Fprintln(w, "sample writes the ESC/POS bytes of a sample receipt. Profiles: "+strings.Join(printer.ProfileNames(), ", "))
}

// parseInterleaved parses flags that may come before or after the positional
// arguments ("preview IN.bin -o OUT.png") and returns the positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func profileFlag(name string) (printer.Profile, error) {
	p, ok := printer.LookupProfile(name)
	if !ok {
		return printer.Profile{}, fmt.Errorf("unknown profile %q (have %s)", name, strings.Join(printer.ProfileNames(), ", "))
	}
	return p, nil
}

func receiptPreview(e env, args []string) error {
	fs := flag.NewFlagSet("receipt preview", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	out := fs.String("o", "", "output PNG `file` (required)")
	profile := fs.String("profile", "epson-80", "printer profile: paper width and CJK encoding")
	width := fs.Int("width", 0, "paper width in `dots`, overriding the profile (576 = 80 mm, 384 = 58 mm)")
	cjk := fs.String("cjk", "", "multibyte `encoding` of FS & mode, overriding the profile: shift_jis, euc-kr, gb18030, big5")
	text := fs.Bool("text", false, "also print the text transcript to standard output")
	fs.Usage = func() { receiptUsage(e.stderr); fs.PrintDefaults() }
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		fs.Usage()
		return errUsage
	}
	p, err := profileFlag(*profile)
	if err != nil {
		return err
	}
	opt := emulator.Options{Width: p.WidthDots, Multibyte: p.CJKEncoding}
	if *width > 0 {
		opt.Width = *width
	}
	if *cjk != "" {
		opt.Multibyte = *cjk
	}
	var data []byte
	if pos[0] == "-" {
		data, err = io.ReadAll(io.LimitReader(e.stdin, 64<<20))
	} else {
		data, err = os.ReadFile(pos[0])
	}
	if err != nil {
		return err
	}
	res := emulator.Render(data, opt)
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := png.Encode(f, res.Image); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
	if res.Dropped > 0 {
		fmt.Fprintf(e.stderr, "warning: %d more warnings not shown\n", res.Dropped)
	}
	if *text {
		fmt.Fprint(e.stdout, res.Text)
	}
	b := res.Image.Bounds()
	fmt.Fprintf(e.stderr, "%s: %dx%d dots (%.0f mm of paper), %d codes, %d cuts, %d warnings\n",
		*out, b.Dx(), b.Dy(), float64(b.Dy())/8, len(res.Symbols), res.Cuts, len(res.Warnings)+res.Dropped)
	return nil
}

func receiptSample(e env, args []string) error {
	fs := flag.NewFlagSet("receipt sample", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	out := fs.String("o", "", "output `file` (default standard output)")
	profile := fs.String("profile", "epson-80", "printer profile")
	lang := fs.String("lang", "en", "receipt language: en, ko, ja, zh")
	status := fs.String("status", "approved", "sale status: approved, declined, stored_offline, cancelled")
	amount := fs.Int64("amount", 12000, "amount in minor units")
	currency := fs.String("currency", "KRW", "ISO 4217 currency")
	fs.Usage = func() { receiptUsage(e.stderr); fs.PrintDefaults() }
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		fs.Usage()
		return errUsage
	}
	p, err := profileFlag(*profile)
	if err != nil {
		return err
	}
	r := printer.Receipt{
		Header:      []string{"Walletless demo shop", "1 Sample Street", "Tel 000-0000"},
		SaleID:      "S-SAMPLE-0001",
		Time:        time.Date(2026, 1, 2, 15, 4, 5, 0, time.Local),
		AmountMinor: *amount,
		Currency:    *currency,
		Scheme:      "alipay",
		Operator:    "Alipay+",
		MaskedCode:  "****4321 #7f3a9c",
		Status:      *status,
		Language:    *lang,
	}
	if *status == "declined" {
		r.Reason = "code expired"
	}
	data, err := printer.EncodeReceipt(r, p)
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = e.stdout.Write(data)
		return err
	}
	return os.WriteFile(*out, data, 0o644)
}
