package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/walletless/walletless/internal/secretfile"
	"github.com/walletless/walletless/pairing"
)

// groupList is a repeatable -group flag.
type groupList []string

func (g *groupList) String() string     { return strings.Join(*g, ",") }
func (g *groupList) Set(v string) error { *g = append(*g, v); return nil }

// cmdProvision makes a pairing QR (docs/fleet.md, "Zero-touch pairing and
// enrollment"), or with -init-ca a CA and server certificate for a test fleet.
func cmdProvision(e env) error {
	fs := newFlags("provision", e)
	var groups groupList
	var (
		deviceID  = fs.String("device-id", "", "the terminal's device id (its MQTT topics and its certificate's CN)")
		broker    = fs.String("broker", "", "the MQTT broker URL the terminal connects to, ssl://host:8883")
		enrollURL = fs.String("enroll-url", "", "the enrollment server, https://host:port (posfleet enroll-server)")
		emvQR     = fs.String("merchant-emv-qr", "", "the shop's merchant.emv_qr (optional)")
		expires   = fs.Duration("expires", 24*time.Hour, "how long the QR is valid")
		keyFile   = fs.String("key", "", "the fleet's secret key (posfleet keygen): terminals trust its public key")
		caFile    = fs.String("ca", "", "the CA certificate (PEM) that signs the broker's, the enrollment server's and the terminals' certificates")
		secrets   = fs.String("secrets", "", "the enrollment server's secrets file: the QR's one-time secret is recorded there (hashed)")
		out       = fs.String("o", "", "write the QR as a PNG to this file")
		textOut   = fs.String("text", "", "also write the QR's text to this file (mode 0600: it holds the one-time secret)")
		module    = fs.Int("module", 6, "PNG pixels per QR module")
		initCA    = fs.String("init-ca", "", "instead: make a test fleet's CA and server certificate in this directory")
		hosts     = fs.String("hosts", "", "with -init-ca: the server certificate's host names or IP addresses, comma-separated")
		asJSON    = fs.Bool("json", false, "print the result as JSON")
	)
	fs.Var(&groups, "group", "a fleet group, in merge order (repeat for more)")
	if _, err := parse(fs, e.args); err != nil {
		return err
	}
	if *initCA != "" {
		return initTestCA(e, *initCA, *hosts)
	}
	switch {
	case *deviceID == "" || *broker == "" || *enrollURL == "" || *keyFile == "" || *caFile == "" || *secrets == "" || *out == "":
		return usageErr("-device-id, -broker, -enroll-url, -key, -ca, -secrets and -o are required")
	case *expires <= 0 || *expires > 30*24*time.Hour:
		return usageErr("-expires %s is not between 0 and 720h", *expires)
	}
	key, err := readSecretKey(*keyFile)
	if err != nil {
		return err
	}
	ca, err := pairing.ReadCert(*caFile)
	if err != nil {
		return err
	}
	if !ca.IsCA {
		return fmt.Errorf("%s is not a CA certificate", *caFile)
	}
	p, err := pairing.NewPayload(pairing.Payload{
		DeviceID: *deviceID, Broker: *broker, Groups: groups, CAFingerprint: pairing.Fingerprint(ca.Raw),
		EnrollURL: *enrollURL, MerchantEMVQR: *emvQR,
	}, time.Now(), *expires)
	if err != nil {
		return err
	}
	text, err := pairing.Sign(key, p)
	if err != nil {
		return err
	}
	img, modules, err := pairing.PNG(text, *module)
	if err != nil {
		return err
	}
	// The record first: a QR whose secret the signer does not know pairs nothing.
	if err := pairing.AddRecord(*secrets, pairing.RecordFor(p)); err != nil {
		return err
	}
	if err := os.WriteFile(*out, img, 0o600); err != nil {
		return err
	}
	if *textOut != "" {
		if err := secretfile.Write(*textOut, []byte(text+"\n")); err != nil {
			return err
		}
	}
	res := map[string]any{
		"device_id": p.DeviceID, "nonce": p.Nonce, "expires": p.ExpiresAt(), "broker": p.Broker, "groups": p.Groups,
		"ca_sha256": pairing.FingerprintHex(ca.Raw), "key_id": keyID(key.ID()), "png": *out,
		"text_chars": len(text), "qr_modules": modules, "secrets": *secrets,
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(res)
	}
	fmt.Fprintf(e.stdout, "pairing QR for %s written to %s (%d characters, %dx%d modules; signed by key %s)\n", p.DeviceID, *out, len(text), modules, modules, keyID(key.ID()))
	fmt.Fprintf(e.stdout, "  broker %s, enrollment %s, groups %s\n", p.Broker, p.EnrollURL, strings.Join(p.Groups, ","))
	fmt.Fprintf(e.stdout, "  expires %s; nonce %s recorded in %s\n", p.ExpiresAt().Format(time.RFC3339), p.Nonce, *secrets)
	if len(text) > 512 {
		fmt.Fprintf(e.stdout, "  note: longer than 512 characters: the terminal's scanner.max_line must be at least %d (the packaged posd.json has 2048; posd's default is 512)\n", len(text))
	}
	fmt.Fprintln(e.stdout, "  the QR holds a one-time secret: hand it to the technician only, and destroy it after use")
	return nil
}

// initTestCA makes dir/ca.crt, ca.key, server.crt and server.key for a test fleet.
func initTestCA(e env, dir, hosts string) error {
	if hosts == "" {
		return usageErr("-init-ca needs -hosts: the broker's and enrollment server's names or IP addresses")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, f := range []string{"ca.crt", "ca.key", "server.crt", "server.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s exists; not overwriting a CA", filepath.Join(dir, f))
		}
	}
	ca, caKey, err := pairing.NewCA("Walletless fleet CA", 10*365*24*time.Hour)
	if err != nil {
		return err
	}
	var hs []string
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hs = append(hs, h)
		}
	}
	srv, srvKey, err := pairing.IssueServer(ca, caKey, hs, 2*365*24*time.Hour)
	if err != nil {
		return err
	}
	if err := pairing.WriteKey(filepath.Join(dir, "ca.key"), caKey); err != nil {
		return err
	}
	if err := pairing.WriteCert(filepath.Join(dir, "ca.crt"), ca); err != nil {
		return err
	}
	if err := pairing.WriteKey(filepath.Join(dir, "server.key"), srvKey); err != nil {
		return err
	}
	if err := pairing.WriteCert(filepath.Join(dir, "server.crt"), srv); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "test fleet CA in %s: ca.crt (SHA-256 %s), ca.key, server.crt and server.key for %s\n", dir, pairing.FingerprintHex(ca.Raw), strings.Join(hs, ", "))
	return nil
}
