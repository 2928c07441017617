package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// defaultAPI is posd's local API address; POSCTL_API or -api overrides it.
const defaultAPI = "http://127.0.0.1:8080"

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func apiBase(flagValue string) string {
	if flagValue != "" {
		return strings.TrimRight(flagValue, "/")
	}
	if v := os.Getenv("POSCTL_API"); v != "" {
		return strings.TrimRight(v, "/")
	}
	return defaultAPI
}

// getJSON fetches path from posd's API and pretty-prints the JSON answer to w.
func getJSON(ctx context.Context, base, path string, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("posd's API at %s does not answer (is posd running?): %w", base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("posd answered %s with non-JSON: %w", resp.Status, err)
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintln(w, string(out))
	if resp.StatusCode >= 300 {
		return exitCode(1)
	}
	return nil
}

func cmdStatus(ctx context.Context, e env) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	api := fs.String("api", "", "posd's local API base URL (default "+defaultAPI+" or $POSCTL_API)")
	if err := fs.Parse(e.args); err != nil {
		return err
	}
	return getJSON(ctx, apiBase(*api), "/v1/status", e.stdout)
}

func cmdSale(ctx context.Context, e env) error {
	fs := flag.NewFlagSet("sale", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	api := fs.String("api", "", "posd's local API base URL (default "+defaultAPI+" or $POSCTL_API)")
	if err := fs.Parse(e.args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(e.stderr, "usage: posctl sale [-api URL] SALE_ID")
		return errUsage
	}
	return getJSON(ctx, apiBase(*api), "/v1/sales/"+fs.Arg(0), e.stdout)
}

func cmdVersion(_ context.Context, e env) error {
	fmt.Fprintln(e.stdout, "posctl", version)
	return nil
}
