package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/walletless/walletless/auth"
)

// defaultAPI is posd's local API address; POSCTL_API or -api overrides it.
const defaultAPI = "http://127.0.0.1:8080"

// defaultDataDir is posd's default data directory, where it writes admin.token.
const defaultDataDir = "/var/lib/walletless"

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

// apiFlags are the flags of every command that talks to posd's API.
type apiFlags struct {
	api, tokenFile, data, ca, pin *string
}

func addAPIFlags(fs *flag.FlagSet) *apiFlags {
	return &apiFlags{
		api:       fs.String("api", "", "posd's local API base URL (default "+defaultAPI+" or $POSCTL_API)"),
		tokenFile: fs.String("token-file", "", "file holding the API token (default DATA/admin.token; $WALLETLESS_TOKEN holds a token itself)"),
		data:      fs.String("data", "", "posd's data directory, for its admin.token (default "+defaultDataDir+")"),
		ca:        fs.String("ca", "", "PEM `file` of the CA (or the device's api.crt) to trust for an https:// API"),
		pin:       fs.String("pin", "", "SHA-256 `fingerprint` (hex) of the https:// API's certificate, as posctl status shows it in tls_fingerprint"),
	}
}

// apiClient calls posd's API with a bearer token, over HTTP on loopback or HTTPS.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// client builds the API client from the flags; the token comes from -token-file,
// else $WALLETLESS_TOKEN, else admin.token in the data directory. A token file that
// its group or others can read is refused, with the chmod to run.
func (f *apiFlags) client() (*apiClient, error) {
	c := &apiClient{base: apiBase(*f.api), http: &http.Client{Timeout: 10 * time.Second}}
	tok, err := f.token()
	if err != nil {
		return nil, err
	}
	c.token = tok
	if *f.ca != "" || *f.pin != "" {
		tc, err := tlsConfig(*f.ca, *f.pin)
		if err != nil {
			return nil, err
		}
		c.http.Transport = &http.Transport{TLSClientConfig: tc}
	}
	return c, nil
}

func (f *apiFlags) token() (string, error) {
	if *f.tokenFile == "" {
		if v := strings.TrimSpace(os.Getenv("WALLETLESS_TOKEN")); v != "" {
			return v, nil
		}
	}
	path := *f.tokenFile
	if path == "" {
		dir := *f.data
		if dir == "" {
			dir = defaultDataDir
		}
		path = filepath.Join(dir, "admin.token")
	}
	tok, err := auth.ReadTokenFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("no API token: %w (give -token-file FILE or -data DIR, where posd wrote admin.token, or set WALLETLESS_TOKEN)", err)
	}
	return tok, err
}

// tlsConfig trusts the CA in caFile, or exactly the certificate whose SHA-256 is pin.
func tlsConfig(caFile, pin string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-ca: no PEM certificate in %s", caFile)
		}
		tc.RootCAs = pool
	}
	if pin != "" {
		want, err := hex.DecodeString(strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(pin)))
		if err != nil || len(want) != sha256.Size {
			return nil, fmt.Errorf("-pin %q is not a SHA-256 fingerprint (64 hex digits)", pin)
		}
		// The pin replaces the chain check: the device certificate is self-signed.
		tc.InsecureSkipVerify = true
		tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("posctl: the API sent no certificate")
			}
			sum := sha256.Sum256(raw[0])
			if !bytes.Equal(sum[:], want) {
				return fmt.Errorf("posctl: the API's certificate has fingerprint %x, not the pinned one", sum)
			}
			return nil
		}
	}
	return tc, nil
}

// call sends a request (body is JSON-encoded when not nil) and returns the status and
// the raw answer.
func (c *apiClient) call(ctx context.Context, method, path string, body any) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		hint := "is posd running?"
		var uae x509.UnknownAuthorityError
		if errors.As(err, &uae) || strings.Contains(err.Error(), "certificate") {
			hint = "give -pin with the device's tls_fingerprint, or -ca with its api.crt"
		}
		return 0, nil, fmt.Errorf("posd's API at %s does not answer (%s): %w", c.base, hint, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, raw, err
}

// printJSON calls the API and pretty-prints the JSON answer to w; an error status
// exits 1.
func (c *apiClient) printJSON(ctx context.Context, method, path string, body any, w io.Writer) error {
	code, raw, err := c.call(ctx, method, path, body)
	if err != nil {
		return err
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("posd answered %d with non-JSON: %w", code, err)
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintln(w, string(out))
	if code >= 300 {
		return exitCode(1)
	}
	return nil
}

func cmdStatus(ctx context.Context, e env) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	af := addAPIFlags(fs)
	if err := fs.Parse(e.args); err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	return c.printJSON(ctx, http.MethodGet, "/v1/status", nil, e.stdout)
}

func cmdSale(ctx context.Context, e env) error {
	fs := flag.NewFlagSet("sale", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	af := addAPIFlags(fs)
	args, err := parseInterspersed(fs, e.args)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		fmt.Fprintln(e.stderr, "usage: posctl sale [-api URL] [-token-file FILE] SALE_ID")
		return errUsage
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	return c.printJSON(ctx, http.MethodGet, "/v1/sales/"+args[0], nil, e.stdout)
}

func cmdVersion(_ context.Context, e env) error {
	fmt.Fprintln(e.stdout, "posctl", version)
	return nil
}
