package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"text/tabwriter"
	"time"
)

// cmdConfig shows the fleet configuration history and rolls back to a version, through
// posd (a manager token is needed).
func cmdConfig(ctx context.Context, e env) error {
	usage := func() error {
		fmt.Fprintln(e.stderr, "usage: posctl config history [-json] | show | rollback VERSION   [-api URL] [-token-file FILE] [-pin HEX|-ca FILE]")
		return errUsage
	}
	if len(e.args) == 0 {
		return usage()
	}
	fs := flag.NewFlagSet("config "+e.args[0], flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	af := addAPIFlags(fs)
	switch e.args[0] {
	case "history":
		asJSON := fs.Bool("json", false, "print posd's answer as JSON")
		args, err := parseInterspersed(fs, e.args[1:])
		if err != nil {
			return err
		}
		if len(args) != 0 {
			return usage()
		}
		c, err := af.client()
		if err != nil {
			return err
		}
		if *asJSON {
			return c.printJSON(ctx, http.MethodGet, "/v1/config/history", nil, e.stdout)
		}
		code, raw, err := c.call(ctx, http.MethodGet, "/v1/config/history", nil)
		if err != nil {
			return err
		}
		var ans struct {
			Version int64 `json:"version"`
			Current int64 `json:"current"`
			History []struct {
				Version   int64           `json:"version"`
				Slot      string          `json:"slot"`
				AppliedAt time.Time       `json:"applied_at"`
				InForce   bool            `json:"in_force"`
				Config    json.RawMessage `json:"config"`
			} `json:"history"`
			Last *struct {
				Version int64  `json:"version"`
				Code    int    `json:"code"`
				Reason  string `json:"reason"`
			} `json:"last_report"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal(raw, &ans); err != nil || code != http.StatusOK {
			return fmt.Errorf("posd answered %d: %s", code, orRaw(ans.Error, raw))
		}
		fmt.Fprintf(e.stdout, "in force: version %d (0: the config file alone); highest accepted: %d\n", ans.Version, ans.Current)
		if ans.Last != nil {
			fmt.Fprintf(e.stdout, "last report: version %d, %d %s\n", ans.Last.Version, ans.Last.Code, ans.Last.Reason)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tSLOT\tAPPLIED\t\tCONFIG")
		for _, h := range ans.History {
			mark := ""
			if h.InForce {
				mark = "in force"
			}
			cfg := string(h.Config)
			if len(cfg) > 60 {
				cfg = cfg[:57] + "..."
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", h.Version, h.Slot, h.AppliedAt.Format(time.RFC3339), mark, cfg)
		}
		return tw.Flush()
	case "show":
		args, err := parseInterspersed(fs, e.args[1:])
		if err != nil {
			return err
		}
		if len(args) != 0 {
			return usage()
		}
		c, err := af.client()
		if err != nil {
			return err
		}
		return c.printJSON(ctx, http.MethodGet, "/v1/config", nil, e.stdout)
	case "rollback":
		args, err := parseInterspersed(fs, e.args[1:])
		if err != nil {
			return err
		}
		if len(args) != 1 {
			return usage()
		}
		v, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || v < 1 {
			return fmt.Errorf("VERSION %q must be a version number from posctl config history", args[0])
		}
		c, err := af.client()
		if err != nil {
			return err
		}
		c.http.Timeout = 40 * time.Second // posd waits up to 20s for a quiet counter
		code, raw, err := c.call(ctx, http.MethodPost, "/v1/config/rollback", map[string]int64{"version": v})
		if err != nil {
			return err
		}
		var ans struct {
			Status string `json:"status"`
			Error  string `json:"error"`
		}
		json.Unmarshal(raw, &ans)
		switch code {
		case http.StatusOK:
			fmt.Fprintf(e.stdout, "version %d is in force again\n", v)
			return nil
		case http.StatusAccepted:
			fmt.Fprintf(e.stdout, "version %d: %s\n", v, ans.Status)
			return nil
		default:
			return fmt.Errorf("posd answered %d: %s", code, orRaw(ans.Error, raw))
		}
	}
	return usage()
}
