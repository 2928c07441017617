package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"aead.dev/minisign"

	wsync "github.com/walletless/walletless/sync"
)

// Fleet topics of the wire contract (docs/protocol.md, fleet section).
const (
	fleetPrefix    = "walletless/v1/fleet/config/"
	desiredFilter  = fleetPrefix + "#"
	reportedFilter = wsync.TopicPrefix + "+/config/reported"
)

// maxEnvelope bounds a desired-config message: the deploy broker's max_packet_size
// (deploy/mosquitto.conf, 128 KiB) less room for the topic and the MQTT header.
// Devices accept documents up to fleet.MaxDocument (256 KiB); this broker limit is
// the tighter one.
const maxEnvelope = 128<<10 - 1024

// maxDocument bounds a document so its envelope (base64 plus the signature) fits
// in maxEnvelope.
const maxDocument = (maxEnvelope - 2048) / 4 * 3

// target says which devices a document is for: exactly one field is set.
type target struct {
	Device string `json:"device,omitempty"`
	Group  string `json:"group,omitempty"`
	All    bool   `json:"all,omitempty"`
}

// String is the target as the flags name it.
func (t target) String() string {
	switch {
	case t.Device != "":
		return "device " + t.Device
	case t.Group != "":
		return "group " + t.Group
	}
	return "all devices"
}

// topic is the retained desired-config topic of the target.
func (t target) topic() string {
	switch {
	case t.Device != "":
		return fleetPrefix + "devices/" + t.Device
	case t.Group != "":
		return fleetPrefix + "groups/" + t.Group
	}
	return fleetPrefix + "all"
}

// check reports whether exactly one field is set and names fit in a topic.
func (t target) check() error {
	n := 0
	if t.Device != "" {
		n++
		if !wsync.ValidDeviceID(t.Device) {
			return fmt.Errorf("device id %q: 1-64 characters of A-Z a-z 0-9 . _ -", t.Device)
		}
	}
	if t.Group != "" {
		n++
		if !wsync.ValidDeviceID(t.Group) {
			return fmt.Errorf("group %q: 1-64 characters of A-Z a-z 0-9 . _ -", t.Group)
		}
	}
	if t.All {
		n++
	}
	if n != 1 {
		return errors.New("a target names exactly one of a device, a group or all")
	}
	return nil
}

// targetFromTopic parses a desired-config topic.
func targetFromTopic(topic string) (target, bool) {
	rest, ok := strings.CutPrefix(topic, fleetPrefix)
	if !ok {
		return target{}, false
	}
	var t target
	switch {
	case rest == "all":
		t.All = true
	case strings.HasPrefix(rest, "groups/"):
		t.Group = strings.TrimPrefix(rest, "groups/")
	case strings.HasPrefix(rest, "devices/"):
		t.Device = strings.TrimPrefix(rest, "devices/")
	default:
		return target{}, false
	}
	return t, t.check() == nil
}

// document is a config document of the wire contract. Config is a partial posd
// config: posfleet does not interpret it (the device validates it as at startup).
type document struct {
	V         int             `json:"v"`
	Version   uint64          `json:"version"`
	Target    target          `json:"target"`
	NotBefore *time.Time      `json:"not_before,omitempty"`
	NotAfter  *time.Time      `json:"not_after,omitempty"`
	Config    json.RawMessage `json:"config"`
}

// isDocument reports whether a JSON file is a whole document (it has "target" and
// "config") rather than a bare partial config.
func isDocument(b []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return false
	}
	_, hasTarget := m["target"]
	_, hasConfig := m["config"]
	return hasTarget && hasConfig
}

// parseDocument decodes a document strictly: unknown fields, trailing data, a
// version below 1, a bad target or window, or a config that is not an object are
// errors.
func parseDocument(b []byte) (document, error) {
	var d document
	if len(b) > maxDocument {
		return d, fmt.Errorf("document is %d bytes; at most %d fit in one message", len(b), maxDocument)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return d, fmt.Errorf("document: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return d, errors.New("document: data after the JSON object")
	}
	if d.V != 1 {
		return d, fmt.Errorf("document: v is %d, this posfleet writes and reads v 1", d.V)
	}
	if d.Version < 1 {
		return d, errors.New("document: version must be 1 or more")
	}
	if err := d.Target.check(); err != nil {
		return d, fmt.Errorf("document: %w", err)
	}
	if d.NotBefore != nil && d.NotAfter != nil && !d.NotAfter.After(*d.NotBefore) {
		return d, errors.New("document: not_after must be after not_before")
	}
	if err := checkConfig(d.Config); err != nil {
		return d, fmt.Errorf("document: %w", err)
	}
	return d, nil
}

// checkConfig reports whether b is one JSON object.
func checkConfig(b []byte) error {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil || m == nil {
		return errors.New("config must be a JSON object (a partial posd config, keys as in docs/config.md)")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("config: data after the JSON object")
	}
	return nil
}

// buildDocument wraps a partial config into a document's bytes.
func buildDocument(config []byte, t target, ver uint64, notBefore, notAfter *time.Time) ([]byte, error) {
	if err := checkConfig(config); err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, config); err != nil {
		return nil, err
	}
	d := document{V: 1, Version: ver, Target: t, NotBefore: notBefore, NotAfter: notAfter, Config: compact.Bytes()}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	if _, err := parseDocument(b); err != nil {
		return nil, err
	}
	return b, nil
}

// sign signs doc with key as the minisign CLI would; the trusted comment names the
// version and target so 'minisign -V' shows them.
func sign(key minisign.PrivateKey, doc document, raw []byte) []byte {
	trusted := fmt.Sprintf("walletless config version %d for %s", doc.Version, doc.Target)
	untrusted := "signature from posfleet secret key " + keyID(key.ID())
	return minisign.SignWithComments(key, raw, trusted, untrusted)
}

// envelope is the payload on a desired-config topic.
type envelope struct {
	V         int    `json:"v"`
	Document  string `json:"document"`
	Signature string `json:"signature"`
}

// wirePayload is the retained message that carries a signed document.
func wirePayload(doc, sig []byte) ([]byte, error) {
	b, err := json.Marshal(envelope{V: 1, Document: base64.StdEncoding.EncodeToString(doc), Signature: string(sig)})
	if err != nil {
		return nil, err
	}
	if len(b) > maxEnvelope {
		return nil, fmt.Errorf("signed document is %d bytes on the wire; at most %d fit in one message", len(b), maxEnvelope)
	}
	return b, nil
}

// parseEnvelope decodes a retained desired-config message into its document. It
// does not verify the signature: posfleet reads these only to learn versions.
func parseEnvelope(payload []byte) (document, []byte, error) {
	if len(payload) > maxEnvelope {
		return document{}, nil, errors.New("payload too large")
	}
	var e envelope
	if err := json.Unmarshal(payload, &e); err != nil {
		return document{}, nil, fmt.Errorf("envelope: %w", err)
	}
	if e.V != 1 {
		return document{}, nil, fmt.Errorf("envelope: v %d", e.V)
	}
	raw, err := base64.StdEncoding.DecodeString(e.Document)
	if err != nil {
		return document{}, nil, fmt.Errorf("envelope: document: %w", err)
	}
	d, err := parseDocument(raw)
	return d, raw, err
}

// parseTime reads a -not-before/-not-after value: RFC 3339, or a duration from now
// ("72h", "-1h").
func parseTime(s string, now time.Time) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		t = t.UTC()
		return &t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return nil, fmt.Errorf("%q is neither an RFC 3339 time (2026-12-31T23:00:00Z) nor a duration from now (72h)", s)
	}
	t := now.Add(d).UTC().Truncate(time.Second)
	return &t, nil
}

// readDocumentFile reads FILE for signing: a whole document is kept byte for byte;
// a bare config is returned with isDoc false.
func readInput(path string) (b []byte, isDoc bool, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, false, err
	}
	if fi.Size() > maxDocument {
		return nil, false, fmt.Errorf("%s is %d bytes; at most %d fit in one message", path, fi.Size(), maxDocument)
	}
	b, err = os.ReadFile(path)
	if err != nil {
		return nil, false, err
	}
	if !json.Valid(b) {
		return nil, false, fmt.Errorf("%s is not JSON", path)
	}
	return b, isDocument(b), nil
}

// targetFlags are -device, -group and -all.
type targetFlags struct {
	device, group *string
	all           *bool
}

func addTargetFlags(fs interface {
	String(name, value, usage string) *string
	Bool(name string, value bool, usage string) *bool
}) targetFlags {
	return targetFlags{
		device: fs.String("device", "", "target one device `ID`"),
		group:  fs.String("group", "", "target the group `G` (devices with G in fleet.groups)"),
		all:    fs.Bool("all", false, "target every device"),
	}
}

// target returns the target the flags name; set is false when none is given.
func (f targetFlags) target() (t target, set bool, err error) {
	t = target{Device: *f.device, Group: *f.group, All: *f.all}
	if t == (target{}) {
		return t, false, nil
	}
	if err := t.check(); err != nil {
		return t, true, usageErr("-device, -group, -all: %v", err)
	}
	return t, true, nil
}
