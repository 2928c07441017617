package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"
)

// cmdToken manages the API's tokens through posd (a manager token is needed):
// create shows the new token once, list shows names and roles, revoke ends one.
func cmdToken(ctx context.Context, e env) error {
	usage := func() error {
		fmt.Fprintln(e.stderr, "usage: posctl token create -name NAME -role clerk|manager | list | revoke NAME   [-api URL] [-token-file FILE] [-pin HEX|-ca FILE]")
		return errUsage
	}
	if len(e.args) == 0 {
		return usage()
	}
	fs := flag.NewFlagSet("token "+e.args[0], flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	af := addAPIFlags(fs)
	switch e.args[0] {
	case "create":
		name := fs.String("name", "", "the new token's name (a register, a person), 1-64 of a-z A-Z 0-9 . _ -")
		role := fs.String("role", "clerk", "clerk (sales, reprints, status) or manager (also refunds, batch close, tokens)")
		args, err := parseInterspersed(fs, e.args[1:])
		if err != nil {
			return err
		}
		if len(args) != 0 || *name == "" {
			return usage()
		}
		c, err := af.client()
		if err != nil {
			return err
		}
		code, raw, err := c.call(ctx, http.MethodPost, "/v1/tokens", map[string]string{"name": *name, "role": *role})
		if err != nil {
			return err
		}
		var ans struct {
			Name  string `json:"name"`
			Role  string `json:"role"`
			Token string `json:"token"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal(raw, &ans); err != nil || code != http.StatusCreated {
			return fmt.Errorf("posd answered %d: %s", code, orRaw(ans.Error, raw))
		}
		fmt.Fprintln(e.stdout, ans.Token)
		fmt.Fprintf(e.stderr, "token %q (%s) made; it is shown only this once: keep it in the register's settings, never in a log\n", ans.Name, ans.Role)
		return nil
	case "list":
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
		code, raw, err := c.call(ctx, http.MethodGet, "/v1/tokens", nil)
		if err != nil {
			return err
		}
		var ans struct {
			Tokens []struct {
				Name      string    `json:"name"`
				Role      string    `json:"role"`
				CreatedAt time.Time `json:"created_at"`
			} `json:"tokens"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal(raw, &ans); err != nil || code != http.StatusOK {
			return fmt.Errorf("posd answered %d: %s", code, orRaw(ans.Error, raw))
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tCREATED")
		for _, t := range ans.Tokens {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, t.Role, t.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	case "revoke":
		args, err := parseInterspersed(fs, e.args[1:])
		if err != nil {
			return err
		}
		if len(args) != 1 {
			return usage()
		}
		c, err := af.client()
		if err != nil {
			return err
		}
		code, raw, err := c.call(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(args[0]), nil)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			var ans struct {
				Error string `json:"error"`
			}
			json.Unmarshal(raw, &ans)
			return fmt.Errorf("posd answered %d: %s", code, orRaw(ans.Error, raw))
		}
		fmt.Fprintf(e.stdout, "token %q revoked\n", args[0])
		return nil
	}
	return usage()
}

func orRaw(msg string, raw []byte) string {
	if msg != "" {
		return msg
	}
	if len(raw) > 200 {
		raw = raw[:200]
	}
	return string(raw)
}
