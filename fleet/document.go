package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Version is the version of every fleet payload and document ("v").
const Version = 1

// MaxDocument bounds a config document; MaxPayload bounds an envelope (base64 of the
// document plus the signature text).
const (
	MaxDocument = 256 << 10
	MaxPayload  = MaxDocument*4/3 + 8<<10
)

// Errors of parsing and checking documents. Every rejection wraps one of them, so a
// caller (and a test) can tell the reasons apart with errors.Is.
var (
	ErrMalformed    = errors.New("fleet: malformed")
	ErrSignature    = errors.New("fleet: bad signature")
	ErrUntrustedKey = errors.New("fleet: signed by a key this device does not trust")
	ErrTarget       = errors.New("fleet: for another target")
	ErrNotYetValid  = errors.New("fleet: not yet valid")
	ErrExpired      = errors.New("fleet: expired")
	ErrReplay       = errors.New("fleet: replay")
	ErrInvalid      = errors.New("fleet: config does not validate")
	ErrEmpty        = errors.New("fleet: empty payload (slot cleared)")
)

// Target says which devices a document is for: exactly one of its fields is set.
type Target struct {
	Device string `json:"device,omitempty"`
	Group  string `json:"group,omitempty"`
	All    bool   `json:"all,omitempty"`
}

// Slot returns the slot a document for t is published on.
func (t Target) Slot() Slot {
	switch {
	case t.All:
		return Slot{Kind: SlotAll}
	case t.Group != "":
		return Slot{Kind: SlotGroup, Name: t.Group}
	default:
		return Slot{Kind: SlotDevice, Name: t.Device}
	}
}

// String is "all", "group G" or "device D".
func (t Target) String() string { return t.Slot().String() }

// Document is a config document: a partial posd configuration for a target, with a
// version and an optional validity window.
type Document struct {
	V         int             `json:"v"`
	Version   int64           `json:"version"`
	Target    Target          `json:"target"`
	NotBefore *time.Time      `json:"not_before,omitempty"`
	NotAfter  *time.Time      `json:"not_after,omitempty"`
	Config    json.RawMessage `json:"config"`
}

// ParseDocument reads a document strictly: size-limited, unknown fields and trailing
// data rejected, v, version, target, window and config checked for shape. It does not
// check the signature; Verify does.
func ParseDocument(b []byte) (Document, error) {
	var d Document
	if len(b) > MaxDocument {
		return Document{}, fmt.Errorf("%w: document is %d bytes, at most %d", ErrMalformed, len(b), MaxDocument)
	}
	if err := strictDecode(b, &d); err != nil {
		return Document{}, fmt.Errorf("%w: document: %w", ErrMalformed, err)
	}
	if err := d.check(); err != nil {
		return Document{}, fmt.Errorf("%w: document: %w", ErrMalformed, err)
	}
	return d, nil
}

func (d Document) check() error {
	if d.V != Version {
		return fmt.Errorf("v is %d, this posd reads %d", d.V, Version)
	}
	if d.Version < 1 {
		return fmt.Errorf("version %d must be 1 or more", d.Version)
	}
	n := 0
	if d.Target.All {
		n++
	}
	if d.Target.Group != "" {
		n++
		if !ValidName(d.Target.Group) {
			return fmt.Errorf("target group %q must be 1-64 characters of A-Z a-z 0-9 . _ -", d.Target.Group)
		}
	}
	if d.Target.Device != "" {
		n++
		if !ValidName(d.Target.Device) {
			return fmt.Errorf("target device %q must be 1-64 characters of A-Z a-z 0-9 . _ -", d.Target.Device)
		}
	}
	if n != 1 {
		return errors.New(`target must be exactly one of {"device":ID}, {"group":G}, {"all":true}`)
	}
	if d.NotBefore != nil && d.NotAfter != nil && !d.NotAfter.After(*d.NotBefore) {
		return errors.New("not_after must be after not_before")
	}
	c := bytes.TrimSpace(d.Config)
	if len(c) == 0 || c[0] != '{' {
		return errors.New("config must be a JSON object")
	}
	return nil
}

// CheckWindow reports whether now is inside the document's validity window.
func (d Document) CheckWindow(now time.Time) error {
	if d.NotBefore != nil && now.Before(*d.NotBefore) {
		return fmt.Errorf("%w: not_before is %s", ErrNotYetValid, d.NotBefore.UTC().Format(time.RFC3339))
	}
	if d.NotAfter != nil && now.After(*d.NotAfter) {
		return fmt.Errorf("%w: not_after was %s", ErrExpired, d.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// Envelope is the payload of a slot topic: the exact document bytes (base64 in JSON)
// and the exact text of their detached minisign signature (a .minisig file).
type Envelope struct {
	V         int    `json:"v"`
	Document  []byte `json:"document"`
	Signature string `json:"signature"`
}

// ParseEnvelope reads a slot payload strictly. An empty payload (a cleared retained
// slot) returns ErrEmpty.
func ParseEnvelope(payload []byte) (Envelope, error) {
	if len(payload) == 0 {
		return Envelope{}, ErrEmpty
	}
	if len(payload) > MaxPayload {
		return Envelope{}, fmt.Errorf("%w: payload is %d bytes, at most %d", ErrMalformed, len(payload), MaxPayload)
	}
	var e Envelope
	if err := strictDecode(payload, &e); err != nil {
		return Envelope{}, fmt.Errorf("%w: envelope: %w", ErrMalformed, err)
	}
	switch {
	case e.V != Version:
		return Envelope{}, fmt.Errorf("%w: envelope: v is %d, this posd reads %d", ErrMalformed, e.V, Version)
	case len(e.Document) == 0:
		return Envelope{}, fmt.Errorf("%w: envelope: no document", ErrMalformed)
	case len(e.Document) > MaxDocument:
		return Envelope{}, fmt.Errorf("%w: envelope: document is %d bytes, at most %d", ErrMalformed, len(e.Document), MaxDocument)
	case e.Signature == "":
		return Envelope{}, fmt.Errorf("%w: envelope: no signature", ErrMalformed)
	}
	return e, nil
}

// Seal builds the payload that carries doc and its signature text.
func Seal(doc []byte, signature []byte) ([]byte, error) {
	if len(doc) == 0 || len(doc) > MaxDocument {
		return nil, fmt.Errorf("%w: document is %d bytes, 1 to %d allowed", ErrMalformed, len(doc), MaxDocument)
	}
	return json.Marshal(Envelope{V: Version, Document: doc, Signature: string(signature)})
}

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON object")
	}
	return nil
}

// ValidName reports whether s is a usable device id or group name: 1-64 characters
// of A-Z a-z 0-9 . _ - (so it is one MQTT topic level and never a wildcard).
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}
