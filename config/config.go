package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
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
	Version  int      `json:"version"`   // must be SchemaVersion
	DeviceID string   `json:"device_id"` // appears in every MQTT topic
	DataDir  string   `json:"data_dir"`  // the bbolt file and state live here
	API      API      `json:"api"`
	MQTT     MQTT     `json:"mqtt"`
	Scanner  Scanner  `json:"scanner"`
	Printer  Printer  `json:"printer"`
	Payment  Payment  `json:"payment"`
	Merchant Merchant `json:"merchant"`
}

// API is the local HTTP API.
type API struct {
	Addr string `json:"addr"` // host:port; keep it on loopback unless a cash register needs it
}

// MQTT is the cloud link.
type MQTT struct {
	Broker      string   `json:"broker"` // tcp://host:1883 or ssl://host:8883
	Username    string   `json:"username,omitempty"`
	Password    string   `json:"password,omitempty"`
	Window      int      `json:"window"`       // requests in flight at once
	ResendAfter Duration `json:"resend_after"` // resend an unanswered request after this
}

// Scanner is the code scanner.
type Scanner struct {
	Source  string   `json:"source"` // "stdin", a serial device path, or usb:VID:PID[:SERIAL]
	Baud    int      `json:"baud"`
	MaxLine int      `json:"max_line"`
	Dedup   Duration `json:"dedup"` // the same code within this window is one scan
}

// Printer is the receipt printer.
type Printer struct {
	Target   string `json:"target"`   // "none", a file or device path, or "emulator:DIR"
	Language string `json:"language"` // receipt language: en
}

// Payment tunes the sale engine.
type Payment struct {
	AuthTimeout Duration `json:"auth_timeout"` // without a result after this, a sale is in doubt
}

// Merchant is printed at the top of each receipt.
type Merchant struct {
	Name  string   `json:"name"`
	Lines []string `json:"lines,omitempty"`
}

// Default returns the configuration posd uses when there is no file.
func Default() Config {
	return Config{
		Version:  SchemaVersion,
		DeviceID: "pos-1",
		DataDir:  "/var/lib/walletless",
		API:      API{Addr: "127.0.0.1:8080"},
		MQTT:     MQTT{Broker: "tcp://127.0.0.1:1883", Window: 32, ResendAfter: Duration(15 * time.Second)},
		Scanner:  Scanner{Source: "stdin", Baud: 9600, MaxLine: 512, Dedup: Duration(2 * time.Second)},
		Printer:  Printer{Target: "none", Language: "en"},
		Payment:  Payment{AuthTimeout: Duration(30 * time.Second)},
		Merchant: Merchant{Name: "Walletless demo shop"},
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
	if !validID(c.DeviceID) {
		bad("device_id", "%q must be 1-64 characters of A-Z a-z 0-9 . _ -", c.DeviceID)
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
	if !oneOf(c.Printer.Language, "en", "ko", "ja", "zh") {
		bad("printer.language", "%q is not one of en, ko, ja, zh", c.Printer.Language)
	}
	if c.Payment.AuthTimeout < Duration(time.Second) {
		bad("payment.auth_timeout", "must be at least 1s")
	}
	return errors.Join(errs...)
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
