package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/internal/testpki"
)

// pinnedClient trusts exactly the certificate whose SHA-256 is fingerprint, as a cash
// register that pinned the device certificate does.
func pinnedClient(fingerprint string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no certificate")
			}
			sum := sha256.Sum256(raw[0])
			if hex.EncodeToString(sum[:]) != fingerprint {
				return fmt.Errorf("pin mismatch: %x", sum)
			}
			return nil
		},
	}}}
}

func getWith(t *testing.T, c *http.Client, url, token string) (int, map[string]any, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(body, &m)
	return resp.StatusCode, m, nil
}

func TestAdminTokenIsMadeOnceAndNeeded(t *testing.T) {
	dir := t.TempDir()
	tp := startThinPathWith(t, dir, "tcp://127.0.0.1:1", func(c *config.Config) { c.Printer.Target = "none" })
	file := filepath.Join(dir, "posd", AdminTokenFile)
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token: %v %v", fi, err)
	}
	raw, _ := os.ReadFile(file)
	if strings.TrimSpace(string(raw)) != tp.info.Token || tp.info.Token == "" {
		t.Fatalf("admin.token holds %q, Ready reported %q", raw, tp.info.Token)
	}
	stored, _ := os.ReadFile(filepath.Join(dir, "posd", TokensFile))
	if bytes.Contains(stored, []byte(tp.info.Token)) {
		t.Fatal("tokens.json holds the token itself")
	}
	if fi, err := os.Stat(filepath.Join(dir, "posd")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir: %v %v", fi, err)
	}
	if code, m, err := getWith(t, http.DefaultClient, tp.api+"/v1/status", ""); err != nil || code != http.StatusUnauthorized || m["error"] == nil {
		t.Errorf("status without a token: %d %v %v", code, m, err)
	}
	if code, m := tp.do("GET", "/v1/status", ""); code != 200 || m["device_id"] != "shop-7" || m["tls_fingerprint"] != nil {
		t.Errorf("status with the admin token: %d %v", code, m)
	}
	// The device's own host name is a valid Host; another name is not.
	port := tp.api[strings.LastIndex(tp.api, ":")+1:]
	hostname, _ := os.Hostname()
	for host, want := range map[string]int{hostname + ":" + port: 200, "localhost:" + port: 200, "rebind.example:" + port: http.StatusMisdirectedRequest} {
		req, _ := http.NewRequest("GET", tp.api+"/v1/status", nil)
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+tp.info.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: %d, want %d", host, resp.StatusCode, want)
		}
	}
	tp.shutdown()
	tp = startThinPathWith(t, dir, "tcp://127.0.0.1:1", func(c *config.Config) { c.Printer.Target = "none" })
	defer tp.shutdown()
	if again, _ := os.ReadFile(file); !bytes.Equal(again, raw) {
		t.Error("a restart replaced admin.token")
	}
	if code, _ := tp.do("GET", "/v1/status", ""); code != 200 {
		t.Errorf("the admin token after a restart: %d", code)
	}
}

// TestOpenAdminTokenStopsPosd: an admin.token its group or others can read is a
// leaked secret; posd does not start on it, and says how to fix the mode.
func TestOpenAdminTokenStopsPosd(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.API.Addr = "127.0.0.1:0"
	cfg.Printer.Target = "none"
	file := filepath.Join(cfg.DataDir, AdminTokenFile)
	if err := os.WriteFile(file, []byte("wlt_x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(file, 0o644) // whatever the umask
	err := Run(context.Background(), Options{Config: cfg, Stdin: strings.NewReader("")})
	if err == nil || !strings.Contains(err.Error(), "chmod 600 "+file) {
		t.Fatalf("Run = %v, want a refusal with the chmod", err)
	}
}

// TestAPIOffLoopbackServesOnlyHTTPS: an api.addr off loopback gets a self-signed
// device certificate; plain HTTP is not served, and a client that pins the fingerprint
// from the status page (or the banner) gets through.
func TestAPIOffLoopbackServesOnlyHTTPS(t *testing.T) {
	dir := t.TempDir()
	tp := startThinPathWith(t, dir, "tcp://127.0.0.1:1", func(c *config.Config) {
		c.API.Addr = "0.0.0.0:0"
		c.Printer.Target = "none"
	})
	defer tp.shutdown()
	if !strings.HasPrefix(tp.api, "https://127.0.0.1:") || len(tp.info.TLSFingerprint) != 64 {
		t.Fatalf("API %s, fingerprint %q", tp.api, tp.info.TLSFingerprint)
	}
	plain := "http://" + strings.TrimPrefix(tp.api, "https://")
	if code, m, err := getWith(t, http.DefaultClient, plain+"/v1/status", tp.info.Token); err == nil && code == 200 {
		t.Fatalf("plain HTTP off loopback answered: %d %v", code, m)
	}
	if _, _, err := getWith(t, &http.Client{Timeout: 5 * time.Second}, tp.api+"/v1/status", tp.info.Token); err == nil {
		t.Fatal("a self-signed certificate passed the system roots")
	}
	if _, _, err := getWith(t, pinnedClient(strings.Repeat("0", 64)), tp.api+"/v1/status", tp.info.Token); err == nil {
		t.Fatal("a wrong pin was accepted")
	}
	code, m, err := getWith(t, pinnedClient(tp.info.TLSFingerprint), tp.api+"/v1/status", tp.info.Token)
	if err != nil || code != 200 || m["tls_fingerprint"] != tp.info.TLSFingerprint {
		t.Fatalf("pinned client: %d %v %v", code, m, err)
	}
	crt, err := os.ReadFile(filepath.Join(dir, "posd", APICertFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "posd", APIKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("api.key: %v %v", fi, err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(crt)
	// The certificate names localhost and 127.0.0.1, so it also verifies as a CA file.
	ca := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if code, _, err := getWith(t, ca, tp.api+"/v1/status", tp.info.Token); err != nil || code != 200 {
		t.Fatalf("api.crt as the CA: %d %v", code, err)
	}
	local := "https://localhost:" + tp.api[strings.LastIndex(tp.api, ":")+1:]
	if code, _, err := getWith(t, ca, local+"/v1/status", tp.info.Token); err != nil || code != 200 {
		t.Fatalf("api.crt for localhost: %d %v", code, err)
	}
}

// TestAPIOffLoopbackWithoutTLSRefused: when no certificate can be had, posd does not
// start on an address off loopback, and says which keys to set.
func TestAPIOffLoopbackWithoutTLSRefused(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.API.Addr = "0.0.0.0:0"
	cfg.Printer.Target = "none"
	cfg.MQTT.Broker = "tcp://127.0.0.1:1"
	// The device key's place is taken: the certificate cannot be made.
	if err := os.Mkdir(filepath.Join(cfg.DataDir, APIKeyFile), 0o700); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), Options{Config: cfg, Stdin: strings.NewReader("")})
	if err == nil || !strings.Contains(err.Error(), "api.addr") || !strings.Contains(err.Error(), "api.tls_cert_file") {
		t.Fatalf("Run = %v, want a refusal naming api.addr and api.tls_cert_file", err)
	}
}

func TestConfiguredCertificateOnLoopback(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.New(t, dir, "shop")
	cert, key := ca.Issue(t, "posd", true)
	tp := startThinPathWith(t, dir, "tcp://127.0.0.1:1", func(c *config.Config) {
		c.API.TLSCertFile, c.API.TLSKeyFile = cert, key
		c.Printer.Target = "none"
	})
	defer tp.shutdown()
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(ca.File)
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	code, m, err := getWith(t, c, tp.api+"/v1/status", tp.info.Token)
	if err != nil || code != 200 || m["tls_fingerprint"] != tp.info.TLSFingerprint || !strings.HasPrefix(tp.api, "https://") {
		t.Fatalf("configured certificate: %s %d %v %v", tp.api, code, m, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "posd", APICertFile)); err == nil {
		t.Error("a device certificate was made although one is configured")
	}
}

// TestRefusedScanReachesTheClerk: a scan from the counter's scanner that does not pay
// shows in the status (masked) and in the sale's reason.
func TestRefusedScanReachesTheClerk(t *testing.T) {
	tp := startThinPathWith(t, t.TempDir(), "tcp://127.0.0.1:1", func(c *config.Config) { c.Printer.Target = "none" })
	defer tp.shutdown()
	waitRefused := func(notBefore string) map[string]any {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			_, st := tp.do("GET", "/v1/status", "")
			if r, ok := st["last_refused_scan"].(map[string]any); ok && fmt.Sprint(r["at"]) != notBefore {
				return r
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("no last_refused_scan in the status")
		return nil
	}
	// No sale waits: the scan is refused.
	fmt.Fprintln(tp.scan, "281234567890123456")
	r := waitRefused("")
	if !strings.Contains(fmt.Sprint(r["reason"]), "no sale is waiting") || r["sale_id"] != nil ||
		!strings.HasPrefix(fmt.Sprint(r["masked_code"]), "…3456") {
		t.Fatalf("refused scan without a sale: %v", r)
	}
	// An unknown code for a waiting sale: declined, with the reason on the sale.
	_, m := tp.do("POST", "/v1/sales", `{"amount_minor": 500, "currency": "KRW"}`)
	id := m["id"].(string)
	time.Sleep(10 * time.Millisecond) // another timestamp for the next refusal
	fmt.Fprintln(tp.scan, "hello-not-a-code")
	r = waitRefused(fmt.Sprint(r["at"]))
	if r["sale_id"] != id || r["reason"] == "" || strings.Contains(fmt.Sprint(r), "hello-not-a-code") {
		t.Fatalf("refused scan of a sale: %v", r)
	}
	if _, s := tp.do("GET", "/v1/sales/"+id, ""); s["status"] != "declined" || s["reason"] != r["reason"] {
		t.Fatalf("sale %v, refusal %v", s, r)
	}
	_, st := tp.do("GET", "/v1/status", "")
	if raw, _ := json.Marshal(st); bytes.Contains(raw, []byte("281234567890123456")) {
		t.Fatal("the status shows a full code")
	}
}
