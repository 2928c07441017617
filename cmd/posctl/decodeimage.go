package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/walletless/walletless/paycode"
	"github.com/walletless/walletless/scanner"
)

// cmdDecodeImage decodes QR and Code 128 codes from image files, one result per file.
func cmdDecodeImage(ctx context.Context, e env) error {
	fs := flag.NewFlagSet("decode-image", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	asJSON := fs.Bool("json", false, "print one JSON object per file")
	reveal := fs.Bool("reveal", false, "print codes in full (they may be payment codes)")
	ean13 := fs.Bool("ean13", false, "also read EAN-13/UPC-A")
	cheap := fs.Bool("cheap", false, "cheap pass only, as a camera sees most frames")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: posctl decode-image [-json] [-reveal] [-ean13] FILE|DIR...")
		fmt.Fprintln(e.stderr, "Decodes QR and Code 128 codes from PNG, JPEG and PGM files (a directory gives its image files).")
		fmt.Fprintln(e.stderr, "Exit status 1 if any file had no code.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(e.args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	files, err := scanner.ImageFiles(fs.Args()...)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no image files in %v", fs.Args())
	}
	d := scanner.NewDecoder(scanner.DecodeOptions{EAN13: *ean13, NoHarder: *cheap})
	missed := 0
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		type result struct {
			File   string  `json:"file"`
			Text   string  `json:"text,omitempty"`
			Format string  `json:"format,omitempty"`
			Pass   int     `json:"pass,omitempty"`
			Ms     float64 `json:"ms"`
			Width  int     `json:"width,omitempty"`
			Height int     `json:"height,omitempty"`
			Error  string  `json:"error,omitempty"`
		}
		res := result{File: f}
		g, err := scanner.LoadImage(f)
		if err == nil {
			res.Width, res.Height = g.Width, g.Height
			start := time.Now()
			var r scanner.Decoded
			r, err = d.Decode(g)
			res.Ms = float64(time.Since(start).Microseconds()) / 1000
			if err == nil {
				res.Text, res.Format, res.Pass = r.Text, r.Symbology, r.Pass
				if !*reveal {
					res.Text = paycode.Mask(r.Text)
				}
			}
		}
		if err != nil {
			missed++
			res.Error = err.Error()
		}
		if *asJSON {
			b, _ := json.Marshal(res)
			fmt.Fprintln(e.stdout, string(b))
			continue
		}
		if res.Error != "" {
			fmt.Fprintf(e.stdout, "%s\tno code\t%.1f ms\t%s\n", f, res.Ms, res.Error)
			continue
		}
		fmt.Fprintf(e.stdout, "%s\t%s\t%.1f ms\t%s\n", f, res.Format, res.Ms, res.Text)
	}
	if missed > 0 {
		return exitCode(1)
	}
	return nil
}
