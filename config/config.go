package config

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// SchemaVersion is the configuration schema this code reads.
const SchemaVersion = 1

// MaxSize bounds a configuration document.
const MaxSize = 1 << 20

// Duration is a time.Duration written as a Go duration string in JSON.
type Duration time.Duration

// MarshalJSON writes d as a string such as "30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string such as "30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Config is posd's configuration.
type Config struct {
	Version int `json:"version"` // must be SchemaVersion
	// DeviceID appears in every MQTT topic. Empty: the terminal is not paired yet;
	// posd loads the pairing saved under data_dir (pairing.json), or runs unpaired
	// until a pairing QR is scanned (docs/fleet.md, "Zero-touch pairing").
	DeviceID string   `json:"device_id"`
	DataDir  string   `json:"data_dir"` // the bbolt file and state live here
	API      API      `json:"api"`
	MQTT     MQTT     `json:"mqtt"`
	Scanner  Scanner  `json:"scanner"`
	Printer  Printer  `json:"printer"`
	Payment  Payment  `json:"payment"`
	Merchant Merchant `json:"merchant"`
	// Indicators are the status lights and buzzer on GPIO lines; empty names mean none.
	Indicators Indicators `json:"indicators"`
	// Fleet is signed configuration pushed by a fleet manager (docs/protocol.md).
	Fleet Fleet `json:"fleet"`
	// Firmware is signed firmware with A/B slots (docs/firmware.md).
	Firmware Firmware `json:"firmware"`
	// Page is the clerk's counter page (config/page.go).
	Page Page `json:"page"`
}

// Fleet configures signed configuration pushed over MQTT. Without trusted keys posd
// does not listen for pushed configuration.
type Fleet struct {
	// TrustedKeys are the minisign public keys (the base64 "RW…" line of a .pub file)
	// whose signatures posd accepts; a list, so a new key can be added before the old
	// one is retired.
	TrustedKeys []string `json:"trusted_keys,omitempty"`
	// Groups are the device's groups, in merge order: all, then each group, then the
	// device's own slot.
	Groups []string `json:"groups,omitempty"`
	// VerifyTimeout is how long a pushed broker setting has to give a healthy link
	// before posd goes back to the previous configuration.
	VerifyTimeout Duration `json:"verify_timeout"`
}

// Bounds of fleet.verify_timeout.
const (
	MinVerifyTimeout = time.Second
	MaxVerifyTimeout = time.Hour
)

// Indicators names the GPIO lines of the status lights and buzzer ("GPIO17", or a
// line name on /dev/gpiochip*; a leading "!" marks an active-low line).
type Indicators struct {
	Green  string `json:"green,omitempty"`
	Red    string `json:"red,omitempty"`
	Buzzer string `json:"buzzer,omitempty"`
}

// API is the local HTTP API.
type API struct {
	Addr string `json:"addr"` // host:port; keep it on loopback unless a cash register needs it
	// TLSCertFile and TLSKeyFile are the PEM certificate and key the API serves HTTPS
	// with. Without them, an addr off loopback gets a self-signed device certificate
	// that posd makes on first start (data_dir/api.crt, api.key); loopback stays
	// plain HTTP.
	TLSCertFile string `json:"tls_cert_file,omitempty"`
	TLSKeyFile  string `json:"tls_key_file,omitempty"`
}

// MQTT is the cloud link.
type MQTT struct {
	Broker   string `json:"broker"` // ssl://host:8883, or tcp://host:1883 (plaintext: see AllowPlaintext)
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// PasswordFile names a file (mode 0600, or posd refuses to start) holding the
	// broker password; the recommended place for it. Not with Password.
	PasswordFile string `json:"password_file,omitempty"`
	// AllowPlaintext lets posd send a password, or talk to a broker that is not on
	// loopback, over a plaintext URL (tcp://, mqtt://, ws://); posd then warns at
	// every connect. TLS files with a plaintext URL are refused even so.
	AllowPlaintext bool     `json:"allow_plaintext,omitempty"`
	Window         int      `json:"window"`              // requests in flight at once
	Bundle         int      `json:"bundle"`              // most requests in one MQTT publish (1: one each)
	ResendAfter    Duration `json:"resend_after"`        // resend an unanswered request after this
	Heartbeat      Duration `json:"heartbeat"`           // heartbeat interval
	CAFile         string   `json:"ca_file,omitempty"`   // PEM CA bundle for the broker's certificate (TLS)
	CertFile       string   `json:"cert_file,omitempty"` // device certificate for mutual TLS
	KeyFile        string   `json:"key_file,omitempty"`  // device key for mutual TLS
}

// Scanner is the code scanner.
type Scanner struct {
	Source  string   `json:"source"` // "stdin", a serial device path, or usb:VID:PID[:SERIAL]
	Baud    int      `json:"baud"`
	MaxLine int      `json:"max_line"`
	Dedup   Duration `json:"dedup"`   // the same code within this window is one scan
	Framing string   `json:"framing"` // auto (CR, LF or CRLF), cr, lf, crlf, or gap (inter-byte timeout)
	Gap     Duration `json:"gap"`     // the inter-byte timeout that ends a code with framing "gap"
	AIM     string   `json:"aim"`     // auto: parse AIM symbology prefixes (]Q1, ]C0, ...); off
	Keymap  string   `json:"keymap"`  // keyboard-wedge scanner layout: us, de, fr
	EAN13   bool     `json:"ean13"`   // camera/image sources: also decode EAN-13
}

// Printer is the receipt printer.
type Printer struct {
	Target   string `json:"target"`   // "none", a file or device path, or "emulator:DIR"
	Language string `json:"language"` // receipt language: en, ko, ja, zh
	Profile  string `json:"profile"`  // printer profile name (posctl print-test lists them)
}

// Payment tunes the sale engine.
type Payment struct {
	AuthTimeout     Duration `json:"auth_timeout"`         // without a result after this, a sale is in doubt
	QueryTimeout    Duration `json:"query_timeout"`        // an in-doubt sale the status query has not settled after this follows its offline policy
	CodeReuseWindow Duration `json:"code_reuse_window"`    // a one-time code seen again within this window is refused
	OfflineAfter    Duration `json:"offline_after"`        // the cloud link down this long counts as offline (the offline policy applies)
	PruneAfter      Duration `json:"prune_after"`          // final, synced sales older than this are deleted; "0s" keeps them
	RulesFile       string   `json:"rules_file,omitempty"` // a wallet-code rule table (JSON, docs/paycode.md) replacing the built-in one
	// Rules is a wallet-code rule table inline (the same JSON as a rules file), so a
	// fleet push can carry it; not with RulesFile.
	Rules          json.RawMessage `json:"rules,omitempty"`
	PresentTimeout Duration        `json:"present_timeout"` // a merchant-presented sale not reported paid after this is in doubt
	// Offline is the offline policy per scheme (paycode's scheme name, or
	// "kind:wallet" / "kind:emv_cpm"), with Default for the rest.
	Offline OfflinePolicies `json:"offline"`
}

// OfflinePolicies are the offline policies by scheme.
type OfflinePolicies struct {
	ByScheme map[string]OfflinePolicy `json:"by_scheme,omitempty"`
	Default  OfflinePolicy            `json:"default"`
}

// OfflinePolicy says what happens to a sale of a scheme while the cloud cannot be
// reached: "refuse" (the clerk asks for another method) or "defer" (store and forward
// within the limits; the merchant carries the risk).
type OfflinePolicy struct {
	Action         string           `json:"action"`
	MaxAmountMinor map[string]int64 `json:"max_amount_minor,omitempty"` // per sale, per currency
	MaxTotalMinor  map[string]int64 `json:"max_total_minor,omitempty"`  // outstanding total, per currency
	MaxCount       int              `json:"max_count,omitempty"`        // outstanding stored_offline sales
	MaxAge         Duration         `json:"max_age,omitempty"`          // older stored_offline sales are flagged expired
}

// Merchant is printed at the top of each receipt, and says how customers pay the shop
// by scanning its code.
type Merchant struct {
	Name  string   `json:"name"`
	Lines []string `json:"lines,omitempty"`
	// EMVQR is the merchant's static EMVCo merchant-presented QR payload exactly as the
	// acquirer issued it (what the counter sticker encodes). posd builds each
	// merchant-presented sale's dynamic code from it; empty turns that flow off.
	// Validate checks its shape only; posd decodes it strictly (CRC, accounts,
	// currency, no fixed amount) at startup, with package payment, and refuses to
	// start on a bad one.
	EMVQR string `json:"emv_qr,omitempty"`
}

// MaxEMVQR bounds merchant.emv_qr: an EMVCo merchant-presented payload is at most 512
// characters.
const MaxEMVQR = 512

// Bounds of payment.present_timeout: the customer opens an app, scans and pays.
const (
	MinPresentTimeout = time.Second
	MaxPresentTimeout = time.Hour
)

// Default returns the configuration posd uses when there is no file.
func Default() Config {
	return Config{
		Version:  SchemaVersion,
		DeviceID: "pos-1",
		DataDir:  "/var/lib/walletless",
		API:      API{Addr: "127.0.0.1:8080"},
		MQTT:     MQTT{Broker: "tcp://127.0.0.1:1883", Window: 256, Bundle: 32, ResendAfter: Duration(15 * time.Second), Heartbeat: Duration(time.Minute)},
		Scanner:  Scanner{Source: "stdin", Baud: 9600, MaxLine: 512, Dedup: Duration(2 * time.Second), Framing: "auto", Gap: Duration(50 * time.Millisecond), AIM: "auto", Keymap: "us"},
		Printer:  Printer{Target: "none", Language: "en", Profile: "epson-80"},
		Payment: Payment{
			AuthTimeout: Duration(30 * time.Second), QueryTimeout: Duration(30 * time.Second),
			CodeReuseWindow: Duration(24 * time.Hour), OfflineAfter: Duration(10 * time.Second), PruneAfter: Duration(90 * 24 * time.Hour),
			PresentTimeout: Duration(3 * time.Minute),
			// One-time wallet codes and EMVCo consumer QR cannot be authorized later.
			Offline: OfflinePolicies{Default: OfflinePolicy{Action: "refuse"}},
		},
		Merchant: Merchant{Name: "Walletless demo shop"},
		Fleet:    Fleet{VerifyTimeout: Duration(time.Minute)},
		Firmware: defaultFirmware(),
	}
}

// Parse reads a configuration document strictly on top of the defaults: fields it
// leaves out keep their defaults; unknown fields, trailing data or an invalid value are
// errors.
func Parse(r io.Reader) (Config, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("config: read: %w", err)
	}
	if len(data) > MaxSize {
		return Config{}, fmt.Errorf("config: larger than %d bytes", MaxSize)
	}
	c := Default()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("config: data after the JSON object")
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Load parses the file at path.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	c, err := Parse(f)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate reports every invalid field, joined.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: "+format, append([]any{field}, args...)...))
	}
	if c.Version != SchemaVersion {
		bad("version", "is %d, this posd reads version %d", c.Version, SchemaVersion)
	}
	if c.DeviceID != "" && !validID(c.DeviceID) {
		bad("device_id", "%q must be empty (unpaired) or 1-64 characters of A-Z a-z 0-9 . _ -", c.DeviceID)
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.API.Addr); err != nil {
		bad("api.addr", "%q is not host:port", c.API.Addr)
	}
	if u, err := url.Parse(c.MQTT.Broker); err != nil || u.Host == "" || !oneOf(u.Scheme, "tcp", "ssl", "tls", "mqtt", "mqtts", "ws", "wss") {
		bad("mqtt.broker", "%q is not a broker URL like tcp://host:1883", c.MQTT.Broker)
	}
	if c.MQTT.Window < 1 || c.MQTT.Window > 1024 {
		bad("mqtt.window", "%d is not between 1 and 1024", c.MQTT.Window)
	}
	if c.MQTT.Bundle < 1 || c.MQTT.Bundle > 128 {
		bad("mqtt.bundle", "%d is not between 1 and 128", c.MQTT.Bundle)
	}
	if c.MQTT.ResendAfter < Duration(time.Second) {
		bad("mqtt.resend_after", "must be at least 1s")
	}
	if c.Scanner.Source == "" {
		bad("scanner.source", "must be stdin, a device path or usb:VID:PID")
	}
	if c.Scanner.Baud <= 0 {
		bad("scanner.baud", "must be positive")
	}
	if c.Scanner.MaxLine < 16 || c.Scanner.MaxLine > 1<<16 {
		bad("scanner.max_line", "%d is not between 16 and 65536", c.Scanner.MaxLine)
	}
	if c.Scanner.Dedup < 0 {
		bad("scanner.dedup", "must not be negative")
	}
	if c.Printer.Target == "" || c.Printer.Target == "emulator:" {
		bad("printer.target", "must be none, a path or emulator:DIR")
	}
	errs = append(errs, c.Page.validate()...)
	if !oneOf(c.Printer.Language, "en", "ko", "ja", "zh") {
		bad("printer.language", "%q is not one of en, ko, ja, zh", c.Printer.Language)
	}
	if c.Payment.AuthTimeout < Duration(time.Second) {
		bad("payment.auth_timeout", "must be at least 1s")
	}
	if c.Payment.QueryTimeout < Duration(time.Second) {
		bad("payment.query_timeout", "must be at least 1s")
	}
	if c.Payment.PresentTimeout < Duration(MinPresentTimeout) || c.Payment.PresentTimeout > Duration(MaxPresentTimeout) {
		bad("payment.present_timeout", "%s is not between %s and %s", time.Duration(c.Payment.PresentTimeout), MinPresentTimeout, MaxPresentTimeout)
	}
	if q := c.Merchant.EMVQR; q != "" {
		switch {
		case len(q) > MaxEMVQR:
			bad("merchant.emv_qr", "is %d bytes; an EMVCo merchant-presented QR holds at most %d", len(q), MaxEMVQR)
		case strings.TrimSpace(q) != q:
			bad("merchant.emv_qr", "starts or ends with white space; paste the payload exactly")
		case strings.ContainsFunc(q, unicode.IsControl) || !utf8.ValidString(q):
			bad("merchant.emv_qr", "contains control characters or invalid UTF-8; paste the payload exactly")
		case !strings.HasPrefix(q, "0002"):
			bad("merchant.emv_qr", "is not an EMVCo merchant-presented QR payload (those start with 000201); check it with posctl merchant check")
		}
	}
	if c.Payment.CodeReuseWindow < 0 || c.Payment.PruneAfter < 0 || c.Payment.OfflineAfter < 0 {
		bad("payment", "code_reuse_window, offline_after and prune_after must not be negative")
	}
	checkPolicy := func(field string, p OfflinePolicy) {
		if !oneOf(p.Action, "refuse", "defer") {
			bad(field+".action", "%q is not refuse or defer", p.Action)
		}
		for cur, v := range p.MaxAmountMinor {
			if len(cur) != 3 || v < 0 {
				bad(field+".max_amount_minor", "%q: %d must be a non-negative amount of an ISO 4217 currency", cur, v)
			}
		}
		for cur, v := range p.MaxTotalMinor {
			if len(cur) != 3 || v < 0 {
				bad(field+".max_total_minor", "%q: %d must be a non-negative amount of an ISO 4217 currency", cur, v)
			}
		}
		if p.MaxCount < 0 || p.MaxAge < 0 {
			bad(field, "max_count and max_age must not be negative")
		}
	}
	checkPolicy("payment.offline.default", c.Payment.Offline.Default)
	for name, p := range c.Payment.Offline.ByScheme {
		checkPolicy("payment.offline.by_scheme."+name, p)
	}
	if !oneOf(c.Scanner.Framing, "auto", "cr", "lf", "crlf", "gap") {
		bad("scanner.framing", "%q is not auto, cr, lf, crlf or gap", c.Scanner.Framing)
	}
	if !oneOf(c.Scanner.AIM, "auto", "off") {
		bad("scanner.aim", "%q is not auto or off", c.Scanner.AIM)
	}
	if c.Scanner.Gap < 0 {
		bad("scanner.gap", "must not be negative")
	}
	if c.MQTT.Heartbeat < 0 {
		bad("mqtt.heartbeat", "must not be negative")
	}
	if (c.API.TLSCertFile == "") != (c.API.TLSKeyFile == "") {
		bad("api.tls_cert_file", "tls_cert_file and tls_key_file go together")
	}
	if (c.MQTT.CertFile == "") != (c.MQTT.KeyFile == "") {
		bad("mqtt.cert_file", "cert_file and key_file go together (mutual TLS)")
	}
	if c.MQTT.Password != "" && c.MQTT.PasswordFile != "" {
		bad("mqtt.password", "password and password_file exclude each other (password_file is recommended)")
	}
	if u, err := url.Parse(c.MQTT.Broker); err == nil && u.Host != "" && PlaintextScheme(u.Scheme) {
		var tlsKeys []string
		for _, f := range []struct{ key, val string }{{"mqtt.ca_file", c.MQTT.CAFile}, {"mqtt.cert_file", c.MQTT.CertFile}, {"mqtt.key_file", c.MQTT.KeyFile}} {
			if f.val != "" {
				tlsKeys = append(tlsKeys, f.key)
			}
		}
		switch {
		case len(tlsKeys) > 0:
			bad("mqtt.broker", "%q is plaintext (%s://) but %s %s set: TLS would be silently off; use ssl://%s:8883",
				c.MQTT.Broker, u.Scheme, strings.Join(tlsKeys, ", "), isAre(len(tlsKeys)), u.Hostname())
		case c.MQTT.AllowPlaintext:
			// The operator chose plaintext; the link warns at every connect.
		case c.MQTT.Password != "" || c.MQTT.PasswordFile != "":
			bad("mqtt.broker", "%q is plaintext (%s://): the password would cross the network in clear text; use ssl://%s:8883 with mqtt.ca_file, or set mqtt.allow_plaintext: true to accept the risk",
				c.MQTT.Broker, u.Scheme, u.Hostname())
		case !LoopbackHost(u.Hostname()):
			bad("mqtt.broker", "%q is plaintext (%s://) to a host that is not loopback: payment codes would cross the network in clear text; use ssl://%s:8883 with mqtt.ca_file, or set mqtt.allow_plaintext: true to accept the risk",
				c.MQTT.Broker, u.Scheme, u.Hostname())
		}
	}
	if c.Payment.RulesFile != "" && len(c.Payment.Rules) > 0 && string(c.Payment.Rules) != "null" {
		bad("payment.rules", "rules and rules_file exclude each other")
	}
	if c.Fleet.VerifyTimeout < Duration(MinVerifyTimeout) || c.Fleet.VerifyTimeout > Duration(MaxVerifyTimeout) {
		bad("fleet.verify_timeout", "%s is not between %s and %s", time.Duration(c.Fleet.VerifyTimeout), MinVerifyTimeout, MaxVerifyTimeout)
	}
	seen := map[string]bool{}
	for _, g := range c.Fleet.Groups {
		if !validID(g) || seen[g] {
			bad("fleet.groups", "%q must be 1-64 characters of A-Z a-z 0-9 . _ -, each once", g)
		}
		seen[g] = true
	}
	for i, k := range c.Fleet.TrustedKeys {
		if !minisignKey(k) {
			bad("fleet.trusted_keys", "key %d is not a minisign public key (the base64 line starting with RW of a .pub file)", i+1)
		}
	}
	c.Firmware.validate(bad, len(c.FirmwareKeys()))
	return errors.Join(errs...)
}

// minisignKey reports whether k has the shape of a minisign ed25519 public key: base64
// of "Ed", an 8-byte key id and 32 bytes of key.
func minisignKey(k string) bool {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k))
	return err == nil && len(b) == 42 && b[0] == 'E' && b[1] == 'd'
}

// PlaintextScheme reports whether a broker URL scheme carries MQTT without TLS.
func PlaintextScheme(scheme string) bool { return oneOf(scheme, "tcp", "mqtt", "ws") }

// LoopbackHost reports whether host (a name or IP address, without port) is this
// machine: "localhost" or a loopback address.
func LoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

func oneOf(s string, set ...string) bool {
	for _, v := range set {
		if strings.EqualFold(s, v) {
			return true
		}
	}
	return false
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}
