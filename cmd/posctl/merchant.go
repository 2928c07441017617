package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/paycode"
	"github.com/walletless/walletless/payment"
)

// exampleReference stands in for a sale's reference label (62.05) in the example code.
const exampleReference = "000000000000000000EXAMPLE"

// cmdMerchant is "posctl merchant check [-config FILE] [-device-id ID] [-amount N]
// [-currency CUR] [PAYLOAD]": it checks the merchant's static EMVCo QR the way posd
// will at startup (merchant.emv_qr), says what posd will use, and prints an example
// dynamic code. The merchant's code is public (it is printed on the counter), so it is
// shown in full; a customer's code given by mistake is never echoed.
func cmdMerchant(ctx context.Context, e env) error {
	usage := func() {
		fmt.Fprintln(e.stderr, "usage: posctl merchant check [-config FILE] [-device-id ID] [-amount MINOR] [-currency CUR] [PAYLOAD]")
		fmt.Fprintln(e.stderr, "Checks the shop's static EMVCo merchant-presented QR (config key merchant.emv_qr) as posd will;")
		fmt.Fprintln(e.stderr, "without PAYLOAD, reads it from -config FILE or from the first line of standard input.")
	}
	if len(e.args) == 0 || e.args[0] != "check" {
		usage()
		return errUsage
	}
	fs := flag.NewFlagSet("merchant check", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	cfgFile := fs.String("config", "", "posd's configuration file: check its merchant.emv_qr and use its device_id")
	deviceID := fs.String("device-id", "", "the terminal's device_id (posd adds it as terminal label 62.07 when the QR has none)")
	amount := fs.Int64("amount", 1000, "amount of the example dynamic code, in minor units")
	currency := fs.String("currency", "", "currency of the example code (default: the QR's)")
	fs.Usage = func() {
		usage()
		fs.PrintDefaults()
	}
	// Flags may come before or after PAYLOAD (payloads start with "00").
	positional, err := parseInterspersed(fs, e.args[1:])
	if err != nil {
		return err
	}
	if len(positional) > 1 {
		fs.Usage()
		return errUsage
	}
	cfg := config.Default()
	if *cfgFile != "" {
		var err error
		if cfg, err = config.Load(*cfgFile); err != nil {
			return err
		}
	}
	if *deviceID != "" {
		cfg.DeviceID = *deviceID
	}
	var payload string
	switch {
	case len(positional) == 1:
		payload = positional[0]
	case *cfgFile != "":
		if payload = cfg.Merchant.EMVQR; payload == "" {
			return fmt.Errorf("%s has no merchant.emv_qr: the merchant-presented flow is off", *cfgFile)
		}
	default:
		sc := bufio.NewScanner(io.LimitReader(e.stdin, maxCodeBytes))
		sc.Buffer(make([]byte, 0, 1024), maxCodeBytes)
		if !sc.Scan() {
			if err := sc.Err(); err != nil {
				return err
			}
			fmt.Fprintln(e.stderr, "posctl merchant: no payload on the command line, in -config or on standard input")
			usage()
			return errUsage
		}
		payload = strings.TrimRight(sc.Text(), "\r")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return checkMerchant(e.stdout, payload, cfg.DeviceID, *amount, *currency)
}

// checkMerchant prints what posd will use from payload, or the reason it will not
// start with it (exit status 1).
func checkMerchant(w io.Writer, payload, deviceID string, amount int64, currency string) error {
	line := func(k, format string, args ...any) { fmt.Fprintf(w, "%-23s %s\n", k+":", fmt.Sprintf(format, args...)) }
	// Config's own shape check first, so the answer is the one posd would give.
	probe := config.Default()
	probe.Merchant.EMVQR = payload
	err := probe.Validate()
	var tmpl *paycode.MPM
	if err == nil {
		tmpl, err = payment.ParseMerchantCode(payload, deviceID)
	}
	if err != nil {
		line("merchant.emv_qr", "INVALID: posd will not start with it")
		line("error", "%s", err)
		return exitCode(1)
	}
	_, warnings, _ := paycode.Decode(payload)
	line("merchant.emv_qr", "valid")
	place := strings.Join(nonEmpty(tmpl.MerchantCity, tmpl.Country, tmpl.PostalCode), " ")
	line("merchant", "%s", strings.Join(nonEmpty(tmpl.MerchantName, place, "MCC "+tmpl.MCC), ", "))
	scheme := "emvco (scheme not recognised)"
	if s := tmpl.Scheme(); s != nil {
		scheme = s.Name + " — " + s.Operator
	}
	line("scheme", "%s", scheme)
	for _, a := range tmpl.MerchantAccounts {
		desc := a.GUI
		if desc == "" {
			desc = "(card network id) " + a.Value
		}
		if s := paycode.AccountScheme(a); s != nil {
			desc += " (" + s.Name + ")"
		}
		line("account "+a.ID, "%s", desc)
	}
	cur, _ := paycode.LookupCurrency(tmpl.Currency) // ParseMerchantCode checked it
	line("currency", "%s (%s): sales in other currencies are refused", cur.Code, cur.Numeric)
	initiation := "static"
	if tmpl.Dynamic() {
		initiation = "dynamic (posd makes each sale's code dynamic anyway)"
	}
	line("initiation", "%s", initiation)
	if l, ok := tmpl.AdditionalField(paycode.AddTerminalLabel); ok {
		line("terminal_label", "%s", l)
	}
	if tmpl.Language != nil {
		lang, _ := tmpl.LanguageField("00")
		name, _ := tmpl.LanguageField("01")
		city, _ := tmpl.LanguageField("02")
		line("language", "%s: %s, %s", lang, name, city)
	}
	for _, wmsg := range warnings {
		line("warning", "%s", wmsg)
	}
	line("posd sets per sale", "initiation 12 (dynamic), amount (54), currency (53), reference_label (62.05: the sale id)")
	if currency == "" {
		currency = cur.Code
	}
	qr, err := payment.PresentCode(tmpl, amount, currency, exampleReference)
	if err != nil {
		line("example", "none: %s", err)
		return exitCode(1)
	}
	c, _ := paycode.LookupCurrency(strings.ToUpper(currency))
	line("example", "%s %s, reference %s", paycode.FormatAmount(amount, c), c.Code, exampleReference)
	fmt.Fprintln(w, qr)
	return nil
}
