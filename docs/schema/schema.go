package schema

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	stdsync "sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed v1/*.json
var files embed.FS

// Base is the $id prefix of every v1 schema.
const Base = "https://walletless.dev/schema/v1/"

// Names of the payload schemas.
const (
	PaymentRequest  = "PaymentRequest"
	QueryRequest    = "QueryRequest"
	ReversalRequest = "ReversalRequest"
	RefundRequest   = "RefundRequest"
	AttemptRecord   = "AttemptRecord"
	BatchClose      = "BatchClose"
	Bundle          = "Bundle"
	PaymentResult   = "PaymentResult"
	Status          = "Status"
	Heartbeat       = "Heartbeat"
	// The fleet configuration contract (docs/protocol.md, "Fleet configuration").
	ConfigDocument = "ConfigDocument"
	ConfigEnvelope = "ConfigEnvelope"
	ConfigReport   = "ConfigReport"
	// Firmware jobs (docs/protocol.md, "Firmware jobs").
	FirmwareJob    = "FirmwareJob"
	FirmwareReport = "FirmwareReport"
)

// MaxPayload is the contract's size bound of every payload (64 KiB).
const MaxPayload = 64 << 10

// topics maps the topic levels after walletless/v1/devices/{device}/ to a schema.
var topics = map[string]string{
	"payments/request":  PaymentRequest,
	"payments/query":    QueryRequest,
	"payments/reversal": ReversalRequest,
	"payments/refund":   RefundRequest,
	"audit/attempt":     AttemptRecord,
	"batches/close":     BatchClose,
	"bundle":            Bundle,
	"payments/result":   PaymentResult,
	"status":            Status,
	"heartbeat":         Heartbeat,
	"config/reported":   ConfigReport,
	"firmware/job":      FirmwareReport,
}

// unrouted are schemas of payloads that travel off the devices' topics: the envelopes
// on walletless/v1/fleet/…, and the config and firmware job documents inside them.
var unrouted = []string{ConfigDocument, ConfigEnvelope, FirmwareJob}

const topicPrefix = "walletless/v1/devices/"

// ErrNoSchema marks a topic or name that no schema covers.
var ErrNoSchema = errors.New("schema: no schema")

var (
	once     stdsync.Once
	compiled map[string]*jsonschema.Schema
	loadErr  error
)

// Names lists the schema names in sorted order.
func Names() []string {
	out := make([]string, 0, len(topics)+len(unrouted))
	for _, n := range topics {
		out = append(out, n)
	}
	out = append(out, unrouted...)
	sort.Strings(out)
	return out
}

// Raw returns the schema file of name.
func Raw(name string) ([]byte, error) {
	b, err := files.ReadFile(path.Join("v1", name+".json"))
	if err != nil {
		return nil, fmt.Errorf("%w named %q", ErrNoSchema, name)
	}
	return b, nil
}

func load() {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	entries, err := fs.ReadDir(files, "v1")
	if err != nil {
		loadErr = fmt.Errorf("schema: %w", err)
		return
	}
	for _, e := range entries {
		raw, err := files.ReadFile("v1/" + e.Name())
		if err != nil {
			loadErr = fmt.Errorf("schema: %w", err)
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			loadErr = fmt.Errorf("schema: %s: %w", e.Name(), err)
			return
		}
		if err := c.AddResource(Base+e.Name(), doc); err != nil {
			loadErr = fmt.Errorf("schema: %s: %w", e.Name(), err)
			return
		}
	}
	compiled = map[string]*jsonschema.Schema{}
	for _, n := range Names() {
		s, err := c.Compile(Base + n + ".json")
		if err != nil {
			loadErr = fmt.Errorf("schema: compile %s: %w", n, err)
			return
		}
		compiled[n] = s
	}
}

// Validate checks payload against the schema called name: it must be at most
// MaxPayload bytes, one JSON value without trailing data, and valid.
func Validate(name string, payload []byte) error {
	once.Do(load)
	if loadErr != nil {
		return loadErr
	}
	s, ok := compiled[name]
	if !ok {
		return fmt.Errorf("%w named %q", ErrNoSchema, name)
	}
	if len(payload) > MaxPayload {
		return fmt.Errorf("schema: %s: %d bytes (at most %d)", name, len(payload), MaxPayload)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("schema: %s: not JSON: %w", name, err)
	}
	if dec.More() {
		return fmt.Errorf("schema: %s: data after the JSON value", name)
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("schema: %s: %w", name, err)
	}
	return nil
}

// ForTopic returns the schema name of a Walletless topic
// (walletless/v1/devices/{device}/…).
func ForTopic(topic string) (string, error) {
	rest, ok := strings.CutPrefix(topic, topicPrefix)
	if ok {
		_, rest, ok = strings.Cut(rest, "/")
	}
	if n, found := topics[rest]; ok && found {
		return n, nil
	}
	return "", fmt.Errorf("%w for topic %q", ErrNoSchema, topic)
}

// ValidateTopic checks a payload published on topic against that topic's schema.
func ValidateTopic(topic string, payload []byte) error {
	n, err := ForTopic(topic)
	if err != nil {
		return err
	}
	return Validate(n, payload)
}
