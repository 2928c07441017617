package firmware

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"aead.dev/minisign"

	"github.com/walletless/walletless/fleet"
)

// Job topics (docs/protocol.md, "Firmware jobs"). The fleet manager publishes a
// signed job document, retained, on a slot topic under JobPrefix; each device reports
// its job's state, retained, on JobReportTopic.
const (
	JobPrefix       = fleet.TopicPrefix + "fleet/firmware/"
	JobFilter       = JobPrefix + "#"
	JobReportFilter = fleet.TopicPrefix + "devices/+/firmware/job"
)

// JobTopics are the job slot topics device (in groups) subscribes to.
func JobTopics(device string, groups []string) []string {
	t := []string{JobPrefix + "all"}
	for _, g := range groups {
		t = append(t, JobPrefix+"groups/"+g)
	}
	return append(t, JobPrefix+"devices/"+device)
}

// JobTopic is the slot topic of a target.
func JobTopic(t fleet.Target) string {
	switch {
	case t.All:
		return JobPrefix + "all"
	case t.Group != "":
		return JobPrefix + "groups/" + t.Group
	default:
		return JobPrefix + "devices/" + t.Device
	}
}

// JobReportTopic is where device reports its firmware job.
func JobReportTopic(device string) string {
	return fleet.TopicPrefix + "devices/" + device + "/firmware/job"
}

// DeviceFromJobReportTopic returns the device a report topic names.
func DeviceFromJobReportTopic(topic string) (string, error) {
	rest, ok := strings.CutPrefix(topic, fleet.TopicPrefix+"devices/")
	if ok {
		if d, ok := strings.CutSuffix(rest, "/firmware/job"); ok && fleet.ValidName(d) {
			return d, nil
		}
	}
	return "", fmt.Errorf("firmware: %q is not a job report topic", topic)
}

// Job is a firmware job document: what to install and where to get it. It travels
// in a fleet envelope (the document's bytes and their minisign signature).
type Job struct {
	V              int          `json:"v"`
	JobID          string       `json:"job_id"`
	Version        string       `json:"version"`
	URL            string       `json:"url"`
	ManifestSHA256 string       `json:"manifest_sha256"`
	Size           int64        `json:"size"`
	Target         fleet.Target `json:"target"`
	Created        time.Time    `json:"created"`
	// Devices, when set, limits a group or all job to these devices (a canary wave).
	Devices []string `json:"devices,omitempty"`
}

// For reports whether the job is meant for device.
func (j Job) For(device string) bool {
	if len(j.Devices) == 0 {
		return true
	}
	for _, d := range j.Devices {
		if d == device {
			return true
		}
	}
	return false
}

// ParseJob reads a job document strictly and checks its shape.
func ParseJob(b []byte) (Job, error) {
	var j Job
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return Job{}, fmt.Errorf("%w: job: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Job{}, fmt.Errorf("%w: job: trailing data", ErrMalformed)
	}
	if j.V != 1 || !fleet.ValidName(j.JobID) {
		return Job{}, fmt.Errorf("%w: job: v must be 1 and job_id 1-64 characters of A-Z a-z 0-9 . _ -", ErrMalformed)
	}
	if _, err := ParseVersion(j.Version); err != nil {
		return Job{}, err
	}
	u, err := url.Parse(j.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return Job{}, fmt.Errorf("%w: job: url must be http(s)://host/…", ErrMalformed)
	}
	if b, err := hex.DecodeString(j.ManifestSHA256); err != nil || len(b) != 32 {
		return Job{}, fmt.Errorf("%w: job: manifest_sha256 is not 64 hex digits", ErrMalformed)
	}
	if j.Size <= 0 || j.Size > MaxPayload*MaxPayloads {
		return Job{}, fmt.Errorf("%w: job: size %d", ErrMalformed, j.Size)
	}
	n := 0
	for _, set := range []bool{j.Target.All, j.Target.Group != "", j.Target.Device != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return Job{}, fmt.Errorf("%w: job: target must name exactly one of device, group, all", ErrMalformed)
	}
	for _, d := range j.Devices {
		if !fleet.ValidName(d) {
			return Job{}, fmt.Errorf("%w: job: device %q", ErrMalformed, d)
		}
	}
	return j, nil
}

// SignJob makes the retained payload of a job: its document in a fleet envelope.
func SignJob(key minisign.PrivateKey, j Job) ([]byte, error) {
	j.V = 1
	doc, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("firmware: %w", err)
	}
	if _, err := ParseJob(doc); err != nil {
		return nil, err
	}
	sig := minisign.SignWithComments(key, doc, "walletless firmware job "+j.JobID+" version "+j.Version, "signature from walletless key "+fleet.KeyID(key.ID()))
	return fleet.Seal(doc, sig)
}

// OpenJob verifies a job payload against keys and parses it. An empty payload (the
// slot was cleared) is fleet.ErrEmpty.
func OpenJob(keys []minisign.PublicKey, payload []byte) (Job, error) {
	env, err := fleet.ParseEnvelope(payload)
	if err != nil {
		return Job{}, err
	}
	if _, err := fleet.Verify(keys, env.Document, []byte(env.Signature)); err != nil {
		if errors.Is(err, fleet.ErrUntrustedKey) {
			return Job{}, fmt.Errorf("%w: %w", ErrUntrustedKey, err)
		}
		return Job{}, fmt.Errorf("%w: job: %w", ErrSignature, err)
	}
	return ParseJob(env.Document)
}

// Job states, as AWS IoT Jobs names them.
const (
	JobQueued     = "QUEUED"
	JobInProgress = "IN_PROGRESS"
	JobSucceeded  = "SUCCEEDED"
	JobFailed     = "FAILED"
	JobRejected   = "REJECTED"
)

// JobReport is a device's report of its job, retained on JobReportTopic.
type JobReport struct {
	V       int       `json:"v"`
	Device  string    `json:"device"`
	JobID   string    `json:"job_id"`
	Version string    `json:"version"`           // the job's version
	Status  string    `json:"status"`            // QUEUED, IN_PROGRESS, SUCCEEDED, FAILED, REJECTED
	Step    string    `json:"step,omitempty"`    // with IN_PROGRESS: download, verify, waiting, install, switch, verify_new
	Percent int       `json:"percent,omitempty"` // of the step, when known
	Reason  string    `json:"reason,omitempty"`
	Running string    `json:"running"` // the version the device runs now
	At      time.Time `json:"at"`
}

// ParseJobReport reads a report strictly.
func ParseJobReport(b []byte) (JobReport, error) {
	var r JobReport
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return JobReport{}, fmt.Errorf("%w: report: %w", ErrMalformed, err)
	}
	switch r.Status {
	case JobQueued, JobInProgress, JobSucceeded, JobFailed, JobRejected:
	default:
		return JobReport{}, fmt.Errorf("%w: report: status %q", ErrMalformed, r.Status)
	}
	return r, nil
}
