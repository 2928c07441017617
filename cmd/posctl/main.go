// Command posctl is the field technician's tool for a Walletless terminal: it reads
// posd's state through the local HTTP API (never by opening posd's files) and offers
// offline diagnostics.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// env is what a subcommand may touch: its arguments and standard streams.
type env struct {
	args   []string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// command is one posctl subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, e env) error
}

// commands lists the subcommands; each lives in its own file.
var commands = map[string]command{
	"status":         {"show posd's status through the local API", cmdStatus},
	"sale":           {"show one sale: posctl sale ID", cmdSale},
	"config":         {"fleet configuration through posd: posctl config history [-json] | show | rollback VERSION", cmdConfig},
	"token":          {"API tokens through posd: posctl token create -name NAME -role clerk|manager | list | revoke NAME", cmdToken},
	"version":        {"print posctl's version", cmdVersion},
	"ports":          {"list serial ports with USB VID/PID/serial number", cmdPorts},
	"scan-test":      {"open the scanner and print each scan (masked unless -reveal)", cmdScanTest},
	"decode-image":   {"decode QR/Code 128 from image files (PNG, JPEG, PGM)", cmdDecodeImage},
	"paycode":        {"decode payment codes: posctl paycode decode [-json] [CODE]", cmdPaycode},
	"merchant":       {"check the shop's EMVCo QR for merchant.emv_qr: posctl merchant check [PAYLOAD]", cmdMerchant},
	"receipt":        {"render ESC/POS to PNG: posctl receipt preview IN.bin -o OUT.png", cmdReceipt},
	"print-test":     {"print a self-test page: posctl print-test [-config FILE] [-printer SPEC]", cmdPrintTest},
	"store":          {"offline database maintenance with posd stopped: posctl store check|backup|compact|salvage", cmdStore},
	"flash":          {"install signed firmware: posctl flash [-yes] FILE.wlf (shows what changes, asks, follows the health check)", cmdFlash},
	"firmware":       {"firmware slots: posctl firmware status | rollback | boot -config FILE | init -config FILE -posd BIN", cmdFirmware},
	"pairing":        {"zero-touch pairing in posd's data directory: posctl pairing status | reset [-yes] (posd stopped)", cmdPairing},
	"support-bundle": {"write a tar.gz for support (status, config with secrets masked, logs, store check, versions): posctl support-bundle -o FILE.tar.gz", cmdSupportBundle},
}

// errUsage asks main to print usage and exit 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "posctl: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	err := c.run(ctx, env{args: args[1:], stdin: stdin, stdout: stdout, stderr: stderr})
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		return 2
	default:
		var ec exitCode
		if errors.As(err, &ec) {
			return int(ec)
		}
		fmt.Fprintf(stderr, "posctl %s: %v\n", args[0], err)
		return 1
	}
}

// exitCode lets a command choose its exit status without printing an error.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: posctl COMMAND [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-14s %s\n", n, commands[n].summary)
	}
}
