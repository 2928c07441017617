package fleet

import (
	"encoding/json"
	"fmt"
	"time"
)

// Report codes, as in Azure IoT Plug and Play's acknowledgement.
const (
	CodeApplying = 202 // accepted, being applied (also while a sale finishes)
	CodeApplied  = 200 // in force
	CodeRejected = 400 // refused; nothing changed (Reason says why)
	CodeFailed   = 500 // applied, found unhealthy and rolled back (Reason says why)
)

// Report is what a device says about a document, retained on ReportTopic.
type Report struct {
	V       int       `json:"v"`
	Device  string    `json:"device"`
	Version int64     `json:"version"`
	Code    int       `json:"code"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

// ParseReport reads a report strictly.
func ParseReport(payload []byte) (Report, error) {
	var r Report
	if len(payload) > MaxPayload {
		return Report{}, fmt.Errorf("%w: report is %d bytes", ErrMalformed, len(payload))
	}
	if err := strictDecode(payload, &r); err != nil {
		return Report{}, fmt.Errorf("%w: report: %w", ErrMalformed, err)
	}
	if r.V != Version {
		return Report{}, fmt.Errorf("%w: report: v is %d", ErrMalformed, r.V)
	}
	switch r.Code {
	case CodeApplying, CodeApplied, CodeRejected, CodeFailed:
	default:
		return Report{}, fmt.Errorf("%w: report: code %d", ErrMalformed, r.Code)
	}
	if !ValidName(r.Device) {
		return Report{}, fmt.Errorf("%w: report: device %q", ErrMalformed, r.Device)
	}
	return r, nil
}

// Marshal encodes r.
func (r Report) Marshal() []byte {
	b, _ := json.Marshal(r)
	return b
}
