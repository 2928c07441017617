package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/walletless/walletless/conformance"
	wsync "github.com/walletless/walletless/sync"
)

func init() {
	commands["conformance"] = command{"check a cloud against the MQTT contract: posctl conformance -broker URL [-device-id ID] [-json] [-run PATTERN]", cmdConformance}
}

const conformanceUsage = `usage: posctl conformance -broker URL [flags]

Acts as two devices (-device-id and -device-id2) against the cloud behind the
broker and runs the contract's scenarios (docs/protocol.md, "Conformance").
Prints one line per scenario and the evidence (what was sent, what came back)
of every failed one; exits 1 when a scenario failed.

The MQTT password comes from POSCTL_MQTT_PASSWORD (both devices use it).
The restart scenario runs only with -stop-cmd and -start-cmd: shell commands
that stop the cloud and start it again (its ledger must survive), e.g.
  -stop-cmd 'systemctl stop posgw' -start-cmd 'systemctl start posgw'

flags:
`

func cmdConformance(ctx context.Context, e env) error {
	fs := flag.NewFlagSet("posctl conformance", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, conformanceUsage); fs.PrintDefaults() }
	broker := fs.String("broker", "", "MQTT broker `URL` of the cloud under test (tcp://, ssl://)")
	dev := fs.String("device-id", "conformance-1", "the first simulated device's `ID`")
	dev2 := fs.String("device-id2", "", "the second device's `ID` (cross-device scenario; default ID-b)")
	user := fs.String("username", "", "MQTT user name of the first device (default its device id)")
	user2 := fs.String("username2", "", "MQTT user name of the second device (default its device id)")
	ca := fs.String("ca", "", "PEM CA bundle for the broker's certificate (turns TLS on)")
	cert := fs.String("cert", "", "client certificate for mutual TLS (CN = device id on the deploy broker)")
	key := fs.String("key", "", "client key for mutual TLS")
	asJSON := fs.Bool("json", false, "print the results (with all evidence) as JSON")
	evidence := fs.Bool("evidence", false, "print the evidence of every scenario, not only of failed ones")
	runPat := fs.String("run", "", "run only scenarios whose name matches this regular expression")
	list := fs.Bool("list", false, "list the scenarios and exit")
	timeout := fs.Duration("timeout", 10*time.Second, "bound of every wait for an answer")
	maxAge := fs.Duration("max-age", 60*time.Second, "the cloud's staleness limit (the contract's is 60s)")
	stopCmd := fs.String("stop-cmd", "", "shell command that stops the cloud (restart scenario)")
	startCmd := fs.String("start-cmd", "", "shell command that starts the cloud again (restart scenario)")
	if err := fs.Parse(e.args); err != nil {
		return err
	}
	if *list {
		w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		for _, s := range conformance.Scenarios() {
			fmt.Fprintf(w, "%s\t%s\n", s.Name, s.About)
		}
		return w.Flush()
	}
	if *broker == "" || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	var pattern *regexp.Regexp
	if *runPat != "" {
		var err error
		if pattern, err = regexp.Compile(*runPat); err != nil {
			return fmt.Errorf("-run: %w", err)
		}
	}
	if (*stopCmd == "") != (*startCmd == "") {
		return fmt.Errorf("-stop-cmd and -start-cmd go together")
	}
	if err := wsync.CheckTLSURL(*broker, nil, *ca, *cert, *key); err != nil {
		return err
	}
	tc, err := wsync.TLSConfig(nil, *ca, *cert, *key)
	if err != nil {
		return err
	}
	cfg := conformance.Config{BrokerURL: *broker, DeviceID: *dev, DeviceID2: *dev2, Username: *user, Username2: *user2,
		Password: os.Getenv("POSCTL_MQTT_PASSWORD"), TLS: tc, Timeout: *timeout, MaxAge: *maxAge}
	if *stopCmd != "" {
		cfg.StopCloud = shellHook(*stopCmd, e.stderr)
		cfg.StartCloud = shellHook(*startCmd, e.stderr)
	}
	results, err := conformance.Run(ctx, cfg, pattern)
	if err != nil && results == nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	} else {
		printConformance(e.stdout, results, *evidence)
	}
	if conformance.Failed(results) {
		return exitCode(1)
	}
	return err
}

// shellHook runs cmd with sh -c, its output going to w.
func shellHook(cmd string, w io.Writer) func(context.Context) error {
	return func(ctx context.Context) error {
		c := exec.CommandContext(ctx, "sh", "-c", cmd)
		c.Stdout, c.Stderr = w, w
		if err := c.Run(); err != nil {
			return fmt.Errorf("%q: %w", cmd, err)
		}
		return nil
	}
}

func printConformance(w io.Writer, results []conformance.Result, all bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tVERDICT\tDETAIL")
	var passed, failed, skipped int
	for _, r := range results {
		switch r.Verdict {
		case conformance.Pass:
			passed++
		case conformance.Fail:
			failed++
		default:
			skipped++
		}
		detail := r.Detail
		if detail == "" {
			detail = r.About
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, strings.ToUpper(r.Verdict), detail)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	for _, r := range results {
		if r.Verdict != conformance.Fail && !all {
			continue
		}
		fmt.Fprintf(w, "\n== %s (%s): %s\n", r.Name, r.Verdict, r.About)
		if r.Detail != "" {
			fmt.Fprintf(w, "   %s\n", r.Detail)
		}
		for _, x := range r.Evidence {
			arrow := "→"
			if x.Dir == "got" {
				arrow = "←"
			}
			fmt.Fprintf(w, "   %s %s %s\n", arrow, x.Topic, x.Payload)
		}
	}
}
