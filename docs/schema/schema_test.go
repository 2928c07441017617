package schema

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/walletless/walletless/firmware"
	"github.com/walletless/walletless/fleet"
	wsync "github.com/walletless/walletless/sync"
)

// sections maps a heading of docs/protocol.md to the schema of its JSON examples.
var sections = map[string]string{
	"PaymentRequest":               PaymentRequest,
	"QueryRequest":                 QueryRequest,
	"ReversalRequest":              ReversalRequest,
	"RefundRequest":                RefundRequest,
	"AttemptRecord":                AttemptRecord,
	"BatchClose":                   BatchClose,
	"PaymentResult":                PaymentResult,
	"Bundle":                       Bundle,
	"Status (birth and last will)": Status,
	"Heartbeat":                    Heartbeat,
	"Document":                     ConfigDocument,
	"Envelope":                     ConfigEnvelope,
	"Report":                       ConfigReport,
	"Firmware job":                 FirmwareJob,
	"Firmware job report":          FirmwareReport,
}

// TestDocExamplesMatchSchemas: every JSON example under a payload's heading in
// docs/protocol.md is valid against that payload's schema (issue 15: the Bundle
// example lacked QueryRequest's required asked_at).
func TestDocExamplesMatchSchemas(t *testing.T) {
	raw, err := os.ReadFile("../protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	var heading string
	var block []string
	in := false
	checked := map[string]int{}
	for _, l := range strings.Split(string(raw), "\n") {
		switch {
		case strings.HasPrefix(l, "### "):
			heading = strings.TrimPrefix(l, "### ")
		case l == "```json":
			in, block = true, nil
		case in && l == "```":
			in = false
			name, ok := sections[heading]
			if !ok {
				t.Errorf("a JSON example under %q, which is no payload", heading)
				continue
			}
			if err := Validate(name, []byte(strings.Join(block, "\n"))); err != nil {
				t.Errorf("the example under %q does not match %s.json: %v", heading, name, err)
			}
			checked[name]++
		case in:
			block = append(block, l)
		}
	}
	for _, n := range Names() {
		if checked[n] == 0 {
			t.Errorf("docs/protocol.md shows no example of %s", n)
		}
	}
}

// goTypes are the Go types of package sync that carry each schema's payload.
var goTypes = map[string]any{
	PaymentRequest:  wsync.PaymentRequest{},
	QueryRequest:    wsync.QueryRequest{},
	ReversalRequest: wsync.ReversalRequest{},
	RefundRequest:   wsync.RefundRequest{},
	AttemptRecord:   wsync.AttemptRecord{},
	BatchClose:      wsync.BatchClose{},
	Bundle:          wsync.Bundle{},
	PaymentResult:   wsync.PaymentResult{},
	Status:          wsync.Status{},
	Heartbeat:       wsync.Heartbeat{},
	ConfigDocument:  fleet.Document{},
	ConfigEnvelope:  fleet.Envelope{},
	ConfigReport:    fleet.Report{},
	FirmwareJob:     firmware.Job{},
	FirmwareReport:  firmware.JobReport{},
}

// TestSchemasMatchGoTypes: each schema names exactly the fields of its Go type, and
// a field is required in the schema exactly when the Go type always sends it (no
// omitempty or omitzero). So a field the code leaves out cannot be required on paper
// (issue 15: RefundRequest reason, AttemptRecord kind/scheme/masked_code/offline,
// Heartbeat config_version).
func TestSchemasMatchGoTypes(t *testing.T) {
	for _, name := range Names() {
		raw, err := Raw(name)
		if err != nil {
			t.Fatal(err)
		}
		var s struct {
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
			Defs       map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
				Required   []string                   `json:"required"`
			} `json:"$defs"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		if name == PaymentResult {
			s.Properties, s.Required = s.Defs["result"].Properties, s.Defs["result"].Required
		}
		var props []string
		for p := range s.Properties {
			props = append(props, p)
		}
		fields, required := jsonFields(reflect.TypeOf(goTypes[name]))
		sort.Strings(props)
		sort.Strings(s.Required)
		if !reflect.DeepEqual(props, fields) {
			t.Errorf("%s: schema properties %v, Go fields %v", name, props, fields)
		}
		if !reflect.DeepEqual(s.Required, required) {
			t.Errorf("%s: schema requires %v, Go always sends %v", name, s.Required, required)
		}
	}
}

func jsonFields(t reflect.Type) (all, required []string) {
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || name == "" {
			continue
		}
		all = append(all, name)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			required = append(required, name)
		}
	}
	sort.Strings(all)
	sort.Strings(required)
	return all, required
}

// TestSchemasRefuse: what the document says receivers ignore, the schemas refuse.
func TestSchemasRefuse(t *testing.T) {
	good := `{"v":1,"key":"k1","device":"shop-7","asked_at":"2026-11-22T16:41:10.123456789Z"}`
	if err := Validate(QueryRequest, []byte(good)); err != nil {
		t.Fatalf("valid query refused: %v", err)
	}
	for name, bad := range map[string]string{
		"unknown field":     `{"v":1,"key":"k1","device":"shop-7","asked_at":"2026-11-22T16:41:10Z","x":1}`,
		"other version":     `{"v":2,"key":"k1","device":"shop-7","asked_at":"2026-11-22T16:41:10Z"}`,
		"missing asked_at":  `{"v":1,"key":"k1","device":"shop-7"}`,
		"key with a space":  `{"v":1,"key":"k 1","device":"shop-7","asked_at":"2026-11-22T16:41:10Z"}`,
		"device with slash": `{"v":1,"key":"k1","device":"a/b","asked_at":"2026-11-22T16:41:10Z"}`,
		"local time":        `{"v":1,"key":"k1","device":"shop-7","asked_at":"2026-11-22T16:41:10+09:00"}`,
		"trailing data":     good + ` {}`,
		"not JSON":          `{"v":1,`,
		"too large":         `{"v":1,"key":"k1","device":"shop-7","asked_at":"2026-11-22T16:41:10Z","pad":"` + strings.Repeat("x", MaxPayload) + `"}`,
	} {
		if err := Validate(QueryRequest, []byte(bad)); err == nil {
			t.Errorf("%s: accepted %.80s", name, bad)
		}
	}
	for name, bad := range map[string]string{
		"PaymentRequest: float amount": `{"v":1,"key":"k","device":"d","amount_minor":1.5,"currency":"KRW","code":"1","masked_code":"1","created_at":"2026-11-22T16:41:10Z"}`,
		"PaymentRequest: zero amount":  `{"v":1,"key":"k","device":"d","amount_minor":0,"currency":"KRW","code":"1","masked_code":"1","created_at":"2026-11-22T16:41:10Z"}`,
		"BatchClose: null totals":      `{"v":1,"key":"b","device":"d","opened_at":"2026-11-22T00:00:00Z","closed_at":"2026-11-23T00:00:00Z","totals":null}`,
		"Bundle: item of another kind": `{"v":1,"device":"d","items":[{"kind":"status","payload":{}}]}`,
		"Bundle: bad item payload":     `{"v":1,"device":"d","items":[{"kind":"query","payload":{"v":1,"key":"k","device":"d"}}]}`,
		"PaymentResult: bad status":    `{"v":1,"key":"k","status":"maybe","decided_at":"2026-11-22T16:41:10Z"}`,
		"PaymentResult: 201 results":   `{"v":1,"results":[` + strings.TrimSuffix(strings.Repeat(`{"v":1,"key":"k","status":"approved","decided_at":"2026-11-22T16:41:10Z"},`, 201), ",") + `]}`,
		"Heartbeat: printer path":      `{"v":1,"device":"d","session":1,"at":"2026-11-22T16:41:10Z","queue_depth":0,"in_flight":0,"oldest_unsynced_ms":0,"printer":"/dev/usb/lp0"}`,
		"Status: other state":          `{"v":1,"device":"d","state":"sleeping","session":1}`,
	} {
		schemaName, _, _ := strings.Cut(name, ":")
		if err := Validate(schemaName, []byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestForTopic maps every topic of the contract to its schema and nothing else.
func TestForTopic(t *testing.T) {
	for topic, want := range map[string]string{
		wsync.RequestTopic("d"):   PaymentRequest,
		wsync.BundleTopic("d"):    Bundle,
		wsync.ResultTopic("d"):    PaymentResult,
		wsync.StatusTopic("d"):    Status,
		wsync.HeartbeatTopic("d"): Heartbeat,
	} {
		if got, err := ForTopic(topic); err != nil || got != want {
			t.Errorf("ForTopic(%s) = %q, %v; want %s", topic, got, err, want)
		}
	}
	for _, k := range wsync.Kinds() {
		topic, _ := wsync.UpTopic("d", k)
		if _, err := ForTopic(topic); err != nil {
			t.Errorf("no schema for %s", topic)
		}
	}
	for _, topic := range []string{"walletless/v1/devices/d", "walletless/v1/devices/d/other", "x/payments/request", ""} {
		if _, err := ForTopic(topic); err == nil {
			t.Errorf("ForTopic(%q) found a schema", topic)
		}
	}
}

// FuzzValidate: outside bytes never panic the validator.
func FuzzValidate(f *testing.F) {
	f.Add([]byte(`{"v":1,"key":"k1","device":"shop-7","asked_at":"2026-11-22T16:41:10Z"}`))
	f.Add([]byte(`{"v":1,"results":[]}`))
	f.Add([]byte(`[1,2,{"a":null}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, n := range Names() {
			_ = Validate(n, b)
		}
	})
}
