package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/walletless/walletless/device"
)

// listPorts and listInputs enumerate serial ports and input devices; tests replace them.
var (
	listPorts  = device.ListPorts
	listInputs = device.ListInputs
)

// cmdPorts lists serial ports with their USB identity, and the selector that finds each
// one again after a replug.
func cmdPorts(_ context.Context, e env) error {
	fs := flag.NewFlagSet("ports", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	asJSON := fs.Bool("json", false, "print a JSON array")
	inputs := fs.Bool("input", false, "list input devices (keyboard-wedge scanners) instead of serial ports")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: posctl ports [-json] [-input]")
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
	if *inputs {
		return printInputs(e, *asJSON)
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

// printInputs lists /dev/input/event* devices with the "input:" selector for each.
func printInputs(e env, asJSON bool) error {
	ins, err := listInputs()
	if err != nil {
		return err
	}
	sel := func(in device.InputInfo) string {
		if in.VID != "" && in.VID != "0000" && in.PID != "" {
			return "input:usb:" + in.VID + ":" + in.PID
		}
		return "input:" + in.Path
	}
	if asJSON {
		type row struct {
			device.InputInfo
			Selector string `json:"selector"`
		}
		rows := make([]row, 0, len(ins))
		for _, in := range ins {
			rows = append(rows, row{in, sel(in)})
		}
		b, err := json.MarshalIndent(rows, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, string(b))
		return nil
	}
	if len(ins) == 0 {
		fmt.Fprintln(e.stdout, "no input devices found")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tVID\tPID\tNAME\tSELECTOR")
	for _, in := range ins {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", in.Path, dash(in.VID), dash(in.PID), dash(in.Name), sel(in))
	}
	return tw.Flush()
}
