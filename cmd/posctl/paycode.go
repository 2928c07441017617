package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/walletless/walletless/paycode"
)

// maxCodeBytes bounds one code read from standard input (a QR holds at most ~7 KB).
const maxCodeBytes = 16 << 10

// cmdPaycode is "posctl paycode decode [-json] [-reveal] [-rules FILE] [CODE]".
func cmdPaycode(ctx context.Context, e env) error {
	usage := func() {
		fmt.Fprintln(e.stderr, "usage: posctl paycode decode [-json] [-reveal] [-rules FILE] [CODE]")
		fmt.Fprintln(e.stderr, "Identifies a payment code; without CODE, decodes each line of standard input.")
	}
	if len(e.args) == 0 || e.args[0] != "decode" {
		usage()
		return errUsage
	}
	fs := flag.NewFlagSet("paycode decode", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	asJSON := fs.Bool("json", false, "print one JSON object per code")
	reveal := fs.Bool("reveal", false, "also print the full code and merchant account details (do not share the output)")
	rulesFile := fs.String("rules", "", "wallet rule table (JSON) to use instead of the built-in one")
	fs.Usage = func() {
		usage()
		fs.PrintDefaults()
	}
	// Flags may come before or after CODE (codes never start with '-').
	positional, err := parseInterspersed(fs, e.args[1:])
	if err != nil {
		return err
	}
	if len(positional) > 1 {
		fs.Usage()
		return errUsage
	}
	rules := paycode.DefaultRules()
	if *rulesFile != "" {
		b, err := os.ReadFile(*rulesFile)
		if err != nil {
			return err
		}
		if rules, err = paycode.ParseRules(b); err != nil {
			return err
		}
	}
	invalid := false
	enc := json.NewEncoder(e.stdout)
	enc.SetEscapeHTML(false)
	n := 0
	emit := func(code string) error {
		out := describe(rules, code, *reveal)
		invalid = invalid || !out.Valid
		n++
		if *asJSON {
			return enc.Encode(out)
		}
		if n > 1 {
			fmt.Fprintln(e.stdout)
		}
		printText(e.stdout, out)
		return nil
	}
	if len(positional) == 1 {
		if err := emit(positional[0]); err != nil {
			return err
		}
	} else {
		// Line by line, so a scanner piped in is answered scan by scan.
		sc := bufio.NewScanner(e.stdin)
		sc.Buffer(make([]byte, 0, 4096), maxCodeBytes)
		for sc.Scan() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if line := strings.TrimRight(sc.Text(), "\r"); line != "" {
				if err := emit(line); err != nil {
					return err
				}
			}
		}
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				return fmt.Errorf("a line of standard input is longer than %d bytes", maxCodeBytes)
			}
			return err
		}
		if n == 0 {
			fmt.Fprintln(e.stderr, "posctl paycode: no code on the command line or standard input")
			usage()
			return errUsage
		}
	}
	if invalid {
		return exitCode(1)
	}
	return nil
}

// decodeOutput is the stable JSON shape of "posctl paycode decode -json"; see
// docs/paycode.md. Kind-specific groups are present only for their kind.
type decodeOutput struct {
	Kind       string   `json:"kind"` // mpm, cpm, wallet or unknown
	Scheme     string   `json:"scheme"`
	Operator   string   `json:"operator"`
	Valid      bool     `json:"valid"`
	Error      string   `json:"error,omitempty"`
	Warnings   []string `json:"warnings"`
	Masked     string   `json:"masked"`
	Code       string   `json:"code,omitempty"` // only with -reveal
	Candidates []string `json:"candidates,omitempty"`
	Basis      string   `json:"basis,omitempty"`         // wallet: documented, inferred or guessed
	Rules      string   `json:"rules_version,omitempty"` // wallet: the rule table's version
	*mpmOutput
	*cpmOutput
}

type mpmOutput struct {
	CRC                   string            `json:"crc"`
	PayloadFormat         string            `json:"payload_format"`
	PointOfInitiation     *string           `json:"point_of_initiation"` // static, dynamic or null
	MerchantAccounts      []accountOutput   `json:"merchant_accounts"`
	MCC                   string            `json:"mcc"`
	Currency              string            `json:"currency"`
	CurrencyCode          string            `json:"currency_code"`
	Amount                *string           `json:"amount"`
	AmountMinor           *int64            `json:"amount_minor"`
	TipIndicator          string            `json:"tip_indicator,omitempty"`
	ConvenienceFeeFixed   string            `json:"convenience_fee_fixed,omitempty"`
	ConvenienceFeePercent string            `json:"convenience_fee_percent,omitempty"`
	Country               string            `json:"country"`
	MerchantName          string            `json:"merchant_name"`
	MerchantCity          string            `json:"merchant_city"`
	PostalCode            string            `json:"postal_code"`
	Additional            map[string]string `json:"additional"`
	Language              *languageOutput   `json:"language"`
}

type accountOutput struct {
	ID     string          `json:"id"`
	GUID   string          `json:"guid"`
	Scheme string          `json:"scheme,omitempty"`
	Value  string          `json:"value,omitempty"`  // only with -reveal
	Fields []paycode.Field `json:"fields,omitempty"` // only with -reveal
}

type languageOutput struct {
	Language string `json:"language"`
	Name     string `json:"name"`
	City     string `json:"city"`
}

type cpmOutput struct {
	PayloadFormatCPM string              `json:"cpm_payload_format"`
	Applications     []applicationOutput `json:"applications"`
	MaskedPAN        string              `json:"masked_pan"`
}

type applicationOutput struct {
	AID           string `json:"aid"`
	Label         string `json:"label"`
	MaskedPAN     string `json:"masked_pan,omitempty"`
	HasCryptogram bool   `json:"has_cryptogram"`
}

var kindNames = map[paycode.Kind]string{
	paycode.KindEMVMPM: "mpm",
	paycode.KindEMVCPM: "cpm",
	paycode.KindWallet: "wallet",
}

// describe identifies one code and shapes the result for output.
func describe(rules paycode.Rules, code string, reveal bool) decodeOutput {
	res, err := rules.Identify(code)
	out := decodeOutput{
		Kind: "unknown", Scheme: res.Scheme, Operator: res.Operator, Valid: err == nil,
		Warnings: res.Warnings, Masked: res.Masked, Candidates: res.Candidates, Basis: res.Basis, Rules: res.RulesVersion,
	}
	if k, ok := kindNames[res.Detected]; ok {
		out.Kind = k
	}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	if err != nil {
		out.Error = err.Error()
	}
	if reveal {
		out.Code = code
	}
	if m := res.MPM; m != nil {
		mo := &mpmOutput{
			CRC: strings.ToUpper(code[len(code)-4:]), PayloadFormat: m.PayloadFormat, MCC: m.MCC,
			Currency: m.Currency, TipIndicator: m.TipIndicator, ConvenienceFeeFixed: m.ConvenienceFeeFixed,
			ConvenienceFeePercent: m.ConvenienceFeePercent, Country: m.Country, MerchantName: m.MerchantName,
			MerchantCity: m.MerchantCity, PostalCode: m.PostalCode, Additional: map[string]string{},
			MerchantAccounts: []accountOutput{},
		}
		switch m.PointOfInitiation {
		case paycode.PointStatic:
			mo.PointOfInitiation = ptr("static")
		case paycode.PointDynamic:
			mo.PointOfInitiation = ptr("dynamic")
		}
		if c, ok := paycode.LookupCurrency(m.Currency); ok {
			mo.CurrencyCode = c.Code
		}
		if m.Amount != "" {
			mo.Amount = ptr(m.Amount)
			if v, ok := m.AmountMinor(); ok {
				mo.AmountMinor = &v
			}
		}
		for _, a := range m.MerchantAccounts {
			ao := accountOutput{ID: a.ID, GUID: a.GUI}
			if s := paycode.AccountScheme(a); s != nil {
				ao.Scheme = s.Name
			}
			if reveal {
				ao.Value, ao.Fields = a.Value, a.Fields
			}
			mo.MerchantAccounts = append(mo.MerchantAccounts, ao)
		}
		for _, f := range m.Additional {
			name, ok := paycode.AdditionalNames[f.ID]
			if !ok {
				name = "id_" + f.ID
			}
			mo.Additional[name] = f.Value
		}
		if m.Language != nil {
			l := &languageOutput{}
			l.Language, _ = m.LanguageField("00")
			l.Name, _ = m.LanguageField("01")
			l.City, _ = m.LanguageField("02")
			mo.Language = l
		}
		out.mpmOutput = mo
	}
	if c := res.CPM; c != nil {
		co := &cpmOutput{PayloadFormatCPM: c.PayloadFormat, MaskedPAN: c.MaskedPAN, Applications: []applicationOutput{}}
		for _, a := range c.Applications {
			co.Applications = append(co.Applications, applicationOutput{AID: a.AID, Label: a.Label, MaskedPAN: a.MaskedPAN, HasCryptogram: a.HasCryptogram})
		}
		out.cpmOutput = co
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// printText writes the human-readable form for a technician.
func printText(w io.Writer, o decodeOutput) {
	status := "valid"
	if !o.Valid {
		status = "INVALID"
	}
	line := func(k, format string, args ...any) { fmt.Fprintf(w, "%-23s %s\n", k+":", fmt.Sprintf(format, args...)) }
	line("kind", "%s (%s)", o.Kind, status)
	if o.Scheme != "" {
		line("scheme", "%s — %s", o.Scheme, o.Operator)
	}
	if o.Basis != "" {
		line("rule basis", "%s (table %s)", o.Basis, o.Rules)
	}
	line("masked", "%s", o.Masked)
	if o.Code != "" {
		line("code", "%s", o.Code)
	}
	if o.Error != "" {
		line("error", "%s", o.Error)
	}
	if len(o.Candidates) > 0 {
		line("candidates", "%s", strings.Join(o.Candidates, ", "))
	}
	if m := o.mpmOutput; m != nil {
		poi := "not given"
		if m.PointOfInitiation != nil {
			poi = *m.PointOfInitiation
		}
		line("initiation", "%s", poi)
		for _, a := range m.MerchantAccounts {
			desc := a.GUID
			if a.Scheme != "" {
				desc += " (" + a.Scheme + ")"
			}
			if a.Value != "" {
				desc += " " + a.Value
			}
			for _, f := range a.Fields {
				desc += fmt.Sprintf(" %s=%s", f.ID, f.Value)
			}
			line("account "+a.ID, "%s", strings.TrimSpace(desc))
		}
		place := strings.Join(nonEmpty(m.MerchantCity, m.Country, m.PostalCode), " ")
		line("merchant", "%s", strings.Join(nonEmpty(m.MerchantName, place, "MCC "+m.MCC), ", "))
		switch {
		case m.Amount == nil:
			line("amount", "none (payer enters it), currency %s %s", m.Currency, m.CurrencyCode)
		case m.AmountMinor != nil:
			line("amount", "%s %s (%d minor units)", *m.Amount, m.CurrencyCode, *m.AmountMinor)
		default:
			line("amount", "%s (currency %s)", *m.Amount, m.Currency)
		}
		keys := make([]string, 0, len(m.Additional))
		for k := range m.Additional {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			line(k, "%s", m.Additional[k])
		}
		if m.Language != nil {
			line("language", "%s: %s, %s", m.Language.Language, m.Language.Name, m.Language.City)
		}
		line("crc", "%s", m.CRC)
	}
	if c := o.cpmOutput; c != nil {
		line("format", "%s", c.PayloadFormatCPM)
		for i, a := range c.Applications {
			line(fmt.Sprintf("application %d", i+1), "%s %s %s cryptogram=%v", a.AID, a.Label, a.MaskedPAN, a.HasCryptogram)
		}
	}
	for _, wmsg := range o.Warnings {
		line("warning", "%s", wmsg)
	}
}

func nonEmpty(ss ...string) []string {
	out := ss[:0:0]
	for _, s := range ss {
		if s != "" && s != "MCC " {
			out = append(out, s)
		}
	}
	return out
}

// parseInterspersed parses flags that may stand before or after the positional
// arguments (which never start with '-') and returns those arguments. A parse error
// is errUsage (the flag package has printed the problem and the usage); -h is
// flag.ErrHelp.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
