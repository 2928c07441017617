package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/printer"
)

// cmdPrintTest prints a self-test page on the configured printer: posctl's version,
// the config version, serial ports, posd's receipt queue depth (when posd answers), the
// printer's status, every text style and a QR code.
func cmdPrintTest(ctx context.Context, e env) error {
	fs := flag.NewFlagSet("print-test", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	cfgFile := fs.String("config", "", "posd's configuration `file`; its printer.target is used")
	spec := fs.String("printer", "", "printer `spec`, overriding the config: none, emulator:DIR, tcp:HOST[:PORT], /dev/usb/lp0, /dev/ttyUSB0[:BAUD], FILE")
	profile := fs.String("profile", "epson-80", "printer profile: "+strings.Join(printer.ProfileNames(), ", "))
	af := addAPIFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: posctl print-test [-config FILE] [-printer SPEC] [-profile NAME] [-api URL] [-token-file FILE]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(e.args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	p, err := profileFlag(*profile)
	if err != nil {
		return err
	}
	cfgVersion := "-"
	target := *spec
	if *cfgFile != "" {
		cfg, err := config.Load(*cfgFile)
		if err != nil {
			return err
		}
		cfgVersion = fmt.Sprintf("schema %d (%s)", cfg.Version, *cfgFile)
		if *af.data == "" {
			*af.data = cfg.DataDir // where posd wrote admin.token
		}
		if target == "" {
			target = cfg.Printer.Target
		}
	}
	if target == "" {
		fmt.Fprintln(e.stderr, "posctl print-test: which printer? give -printer SPEC or -config FILE")
		return errUsage
	}
	prn, err := printer.OpenWith(target, printer.Options{Profile: p})
	if err != nil {
		return err
	}
	defer prn.Close()

	host, _ := os.Hostname()
	fields := [][2]string{
		{"posctl", version},
		{"Host", host},
		{"Time", time.Now().Format("2006-01-02 15:04:05 MST")},
		{"Config", cfgVersion},
		{"Printer", target},
		{"Ports", portsLine()},
	}
	fields = append(fields, posdFields(ctx, af)...)
	statusLine := "not reported by this transport"
	if sr, ok := prn.(printer.StatusReader); ok {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := sr.Status(sctx)
		cancel()
		if err != nil {
			statusLine = "unknown: " + err.Error()
		} else {
			statusLine = st.String()
		}
	}
	fields = append(fields, [2]string{"Status", statusLine})
	fmt.Fprintf(e.stdout, "printer status: %s\n", statusLine)

	data, err := printer.EncodeTestPage(printer.TestPage{
		Title:  "Walletless printer test",
		Fields: fields,
		QR:     "walletless print-test " + host + " " + time.Now().UTC().Format(time.RFC3339),
	}, p)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	name := "print-test-" + time.Now().UTC().Format("20060102-150405")
	if err := prn.Print(pctx, name, data); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "test page sent to %s (%d bytes, job %s)\n", target, len(data), name)
	return nil
}

// portsLine lists the serial ports' names, or why there are none.
func portsLine() string {
	ports, err := listPorts()
	if err != nil {
		return "error: " + err.Error()
	}
	if len(ports) == 0 {
		return "none"
	}
	names := make([]string, 0, len(ports))
	for _, p := range ports {
		names = append(names, p.Name)
	}
	return strings.Join(names, " ")
}

// posdFields asks posd's API for its status and returns the fields worth printing,
// the API certificate's fingerprint among them (a register pins it); posd not running
// or no token is itself worth a line.
func posdFields(ctx context.Context, af *apiFlags) [][2]string {
	c, err := af.client()
	if err != nil {
		return [][2]string{{"posd", "no API token (-token-file)"}}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	code, raw, err := c.call(ctx, http.MethodGet, "/v1/status", nil)
	if err != nil {
		return [][2]string{{"posd", "not reachable at " + c.base}}
	}
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil || code != http.StatusOK {
		return [][2]string{{"posd", fmt.Sprintf("answered %d", code)}}
	}
	out := [][2]string{{"posd", "running"}}
	if fp, ok := st["tls_fingerprint"].(string); ok {
		out = append(out, [2]string{"API TLS", "SHA-256 " + groupsOf4(fp)})
	}
	for _, k := range []string{"version", "config_version", "receipt_queue", "printer_queue", "outbox"} {
		if v, ok := st[k]; ok {
			out = append(out, [2]string{k, fmt.Sprint(v)})
		}
	}
	return out
}

// groupsOf4 writes a fingerprint in groups of four, so it wraps on paper and reads
// aloud.
func groupsOf4(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}
