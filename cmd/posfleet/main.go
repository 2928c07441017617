// Command posfleet is the fleet manager's tool: it signs configuration documents with
// minisign, pushes them to a device, a group or the whole fleet over MQTT (in canary
// waves when asked), and shows what every device reports: presence, health and the
// fate of each config version.
//
//	posfleet keygen -o DIR
//	posfleet config sign -key FILE (-device ID|-group G|-all) -version N [-not-before T] [-not-after T] -o OUT FILE
//	posfleet config push -broker URL [-key FILE] (-device ID|-group G|-all) [-version N] [-canary N -wait D] FILE
//	posfleet config status -broker URL [-version N] [-group G|-device ID]
//	posfleet status -broker URL [-group G]
//	posfleet provision -device-id ID -broker URL -enroll-url URL -key FILE -ca CA.crt -secrets FILE -o QR.png
//	posfleet enroll-server -listen ADDR -ca CA.crt -ca-key CA.key -cert SERVER.crt -key SERVER.key -secrets FILE [-legacy-pem]
//
// It speaks the wire contract of docs/protocol.md (fleet section) and needs nothing
// from the device side but that contract. The manager's guide is docs/fleet.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

var version = "dev"

// Exit codes; docs/fleet.md lists them for scripts.
const (
	exitOK      = 0 // done: pushed, every waited-for device applied, or printed
	exitError   = 1 // could not do it: bad file, key, broker, ACL…
	exitUsage   = 2 // bad command line
	exitHalted  = 3 // a device rejected (400) or failed (500), or a canary went unhealthy: rollout stopped
	exitPending = 4 // the wait ended with devices that have not reported the version yet
)

// exitError carries an exit code other than 1 together with the message to print.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

// halted returns an error that makes posfleet exit with code.
func withCode(code int, format string, args ...any) error {
	return &exitErr{code: code, err: fmt.Errorf(format, args...)}
}

// errUsage marks a command line error: posfleet prints it and exits 2.
var errUsage = errors.New("usage")

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// env is what a command may touch.
type env struct {
	args           []string
	stdout, stderr io.Writer
}

const usage = `posfleet: the fleet manager's tool for Walletless terminals (guide: docs/fleet.md)

Usage:
  posfleet keygen -o DIR                       make a signing key pair (minisign format)
  posfleet config sign -key FILE TARGET -version N -o OUT FILE
                                               sign a document offline (OUT and OUT.minisig)
  posfleet config push -broker URL [-key FILE] TARGET [-version N] [-canary N -wait D] FILE
                                               push a config (FILE.minisig: signed with minisign)
  posfleet config status -broker URL [-version N] [-group G|-device ID]
                                               what each device reported for a version
  posfleet status -broker URL [-group G]       presence and health of every device
  posfleet firmware pack -key FILE -version V [-min-version M] [-arch A -board B] -o FILE.wlf BINARY…
                                               make a signed firmware artifact
  posfleet firmware rollout -broker URL -key FILE TARGET -url URL [-canary N -wait D] FILE.wlf
                                               publish a firmware job and follow it
  posfleet firmware status -broker URL [-job ID]
                                               each device's last firmware job report
  posfleet provision -device-id ID -broker URL -enroll-url URL [-group G…] [-merchant-emv-qr P] [-expires 24h]
                    -key FILE -ca CA.crt -secrets FILE -o QR.png
                                               make a signed pairing QR for a new terminal
  posfleet provision -init-ca DIR -hosts H1,H2 make a test fleet's CA and server certificate
  posfleet enroll-server -listen ADDR -ca CA.crt -ca-key CA.key -cert SERVER.crt -key SERVER.key -secrets FILE [-legacy-pem]
                                               the reference enrollment signer (HTTPS)
  posfleet version [-json]

TARGET is -device ID, -group G or -all. Every command takes -json; run
'posfleet COMMAND -h' for its flags. Exit codes: 0 done, 1 error, 2 usage,
3 rollout halted (rejected, failed or unhealthy device), 4 devices still pending.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	e := env{args: args[1:], stdout: stdout, stderr: stderr}
	var err error
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "version":
		if len(e.args) == 1 && e.args[0] == "-json" {
			fmt.Fprintf(stdout, "{\"version\":%q}\n", version)
			return exitOK
		}
		fmt.Fprintln(stdout, "posfleet", version)
		return exitOK
	case "keygen":
		err = cmdKeygen(e)
	case "provision":
		err = cmdProvision(e)
	case "enroll-server":
		err = cmdEnrollServer(ctx, e)
	case "status":
		err = cmdStatus(ctx, e)
	case "firmware":
		name, err = cmdFirmware(ctx, e)
	case "config":
		if len(e.args) == 0 {
			fmt.Fprint(stderr, usage)
			return exitUsage
		}
		name = "config " + e.args[0]
		sub := env{args: e.args[1:], stdout: stdout, stderr: stderr}
		switch e.args[0] {
		case "sign":
			err = cmdSign(sub)
		case "push":
			err = cmdPush(ctx, sub)
		case "status":
			err = cmdConfigStatus(ctx, sub)
		default:
			fmt.Fprintf(stderr, "posfleet: unknown command %q\n", name)
			fmt.Fprint(stderr, usage)
			return exitUsage
		}
	default:
		fmt.Fprintf(stderr, "posfleet: unknown command %q\n", name)
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "posfleet %s: %v\n", name, err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "posfleet %s: %v\n", name, err)
	var ec *exitErr
	if errors.As(err, &ec) {
		return ec.code
	}
	return exitError
}

// newFlags returns a flag set that reports its errors as usage errors.
func newFlags(name string, e env) *flag.FlagSet {
	fs := flag.NewFlagSet("posfleet "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

// parse parses args and turns flag errors into usage errors; positional arguments
// are allowed before or after the flags.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
