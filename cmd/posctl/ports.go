package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/walletless/walletless/device"
)

// listPorts enumerates serial ports; tests replace it.
var listPorts = device.ListPorts

// cmdPorts lists serial ports with their USB identity, and the selector that finds each
// one again after a replug.
func cmdPorts(_ context.Context, e env) error {
	fs := flag.NewFlagSet("ports", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	asJSON := fs.Bool("json", false, "print a JSON array")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: posctl ports [-json]")
		fmt.Fprintln(e.stderr, "Lists serial ports with USB VID/PID/serial number. Use the SELECTOR column as scanner.source.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(e.args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	ports, err := listPorts()
	if err != nil {
		return err
	}
	if *asJSON {
		type row struct {
			device.PortInfo
			Selector string `json:"selector"`
		}
		rows := make([]row, 0, len(ports))
		for _, p := range ports {
			rows = append(rows, row{p, selectorFor(p)})
		}
		b, err := json.MarshalIndent(rows, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, string(b))
		return nil
	}
	if len(ports) == 0 {
		fmt.Fprintln(e.stdout, "no serial ports found (is the scanner plugged in and in USB COM / CDC-ACM mode?)")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PORT\tVID\tPID\tSERIAL\tMANUFACTURER\tPRODUCT\tSELECTOR")
	for _, p := range ports {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, dash(p.VID), dash(p.PID), dash(p.Serial),
			dash(p.Manufacturer), dash(p.Product), selectorFor(p))
	}
	return tw.Flush()
}

// selectorFor is the scanner.source value that finds p again: its USB identity when it
// has one, else its path.
func selectorFor(p device.PortInfo) string {
	if p.IsUSB && p.VID != "" && p.PID != "" {
		return device.Selector{VID: p.VID, PID: p.PID, Serial: p.Serial}.String()
	}
	return p.Name
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
