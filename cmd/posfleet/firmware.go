package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	stdsync "sync"
	"text/tabwriter"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"aead.dev/minisign"

	"github.com/walletless/walletless/firmware"
	"github.com/walletless/walletless/fleet"
)

// cmdFirmware is `posfleet firmware pack|rollout|status`.
func cmdFirmware(ctx context.Context, e env) (string, error) {
	if len(e.args) == 0 {
		return "firmware", usageErr("posfleet firmware pack|rollout|status")
	}
	sub := env{args: e.args[1:], stdout: e.stdout, stderr: e.stderr}
	name := "firmware " + e.args[0]
	switch e.args[0] {
	case "pack":
		return name, cmdFirmwarePack(sub)
	case "rollout":
		return name, cmdFirmwareRollout(ctx, sub)
	case "status":
		return name, cmdFirmwareStatus(ctx, sub)
	}
	return name, usageErr("unknown command %q: posfleet firmware pack|rollout|status", e.args[0])
}

// cmdFirmwarePack makes a signed .wlf artifact from binaries.
func cmdFirmwarePack(e env) error {
	fs := newFlags("firmware pack", e)
	key := fs.String("key", "", "minisign secret key `FILE` to sign the manifest with (posfleet keygen)")
	ver := fs.String("version", "", "the firmware `VERSION` (N[.N[.N[.N]]])")
	minVer := fs.String("min-version", "", "once committed, devices refuse anything below this `VERSION` (anti-downgrade floor)")
	arch := fs.String("arch", runtime.GOARCH, "target `ARCH` (GOARCH: arm, arm64, amd64)")
	board := fs.String("board", firmware.AnyBoard, "target `BOARD` (firmware.board of the devices; any: every board)")
	out := fs.String("o", "", "output `FILE.wlf`")
	asJSON := fs.Bool("json", false, "print the manifest as JSON")
	pos, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	if *key == "" || *ver == "" || *out == "" || len(pos) == 0 {
		return usageErr("posfleet firmware pack -key SECRETKEY -version V [-min-version M] [-arch A -board B] -o FILE.wlf BINARY[=NAME]…")
	}
	k, err := readSecretKey(*key)
	if err != nil {
		return err
	}
	var files []firmware.PackFile
	for _, p := range pos {
		path, name, ok := strings.Cut(p, "=")
		if !ok {
			name = filepath.Base(path)
		}
		files = append(files, firmware.PackFile{Name: name, Path: path})
	}
	tmp := *out + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	m, err := firmware.Pack(f, k, firmware.Manifest{Version: *ver, MinVersion: *minVer, Arch: *arch, Board: *board}, files)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, *out)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{"file": *out, "key_id": fleet.KeyID(k.ID()), "manifest": m})
	}
	fmt.Fprintf(e.stdout, "%s: version %s for %s/%s", *out, m.Version, m.Arch, m.Board)
	if m.MinVersion != "" {
		fmt.Fprintf(e.stdout, ", min_version %s", m.MinVersion)
	}
	fmt.Fprintf(e.stdout, ", signed by key %s\n", fleet.KeyID(k.ID()))
	for _, p := range m.Payloads {
		fmt.Fprintf(e.stdout, "  %-12s %10d bytes  sha256 %s\n", p.Name, p.Size, p.SHA256)
	}
	return nil
}

// readArtifact verifies a .wlf file against pub and returns its header and size.
func readArtifact(path string, pub minisign.PublicKey) (firmware.Header, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return firmware.Header{}, 0, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return firmware.Header{}, 0, err
	}
	h, err := firmware.ReadHeader(bufio.NewReader(f), []minisign.PublicKey{pub})
	if err != nil {
		return h, 0, fmt.Errorf("%s: %w (devices would refuse it)", path, err)
	}
	return h, info.Size(), nil
}

// fwWatch follows job documents and reports on posfleet's connection.
type fwWatch struct {
	mu      stdsync.Mutex
	jobs    map[string][]byte             // topic → retained payload; guarded by mu
	reports map[string]firmware.JobReport // device → last report; guarded by mu
	changed chan struct{}
}

func (w *fwWatch) handle(_ mqtt.Client, m mqtt.Message) {
	w.mu.Lock()
	if strings.HasPrefix(m.Topic(), firmware.JobPrefix) {
		if len(m.Payload()) == 0 {
			delete(w.jobs, m.Topic())
		} else {
			w.jobs[m.Topic()] = append([]byte(nil), m.Payload()...)
		}
	} else if d, err := firmware.DeviceFromJobReportTopic(m.Topic()); err == nil {
		if r, err := firmware.ParseJobReport(m.Payload()); err == nil {
			w.reports[d] = r
		}
	}
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *fwWatch) report(d string) (firmware.JobReport, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.reports[d]
	return r, ok
}

// watchFirmware subscribes to job slots and reports and waits for the retained ones.
func watchFirmware(ctx context.Context, s *session) (*fwWatch, error) {
	w := &fwWatch{jobs: map[string][]byte{}, reports: map[string]firmware.JobReport{}, changed: make(chan struct{}, 1)}
	tok := s.client.SubscribeMultiple(map[string]byte{firmware.JobFilter: 1, firmware.JobReportFilter: 1}, w.handle)
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("subscribe to firmware topics: %v", tok.Error())
	}
	// Retained messages follow the SUBACK.
	for quiet := 0; quiet < 3; {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-w.changed:
			quiet = 0
		case <-time.After(150 * time.Millisecond):
			quiet++
		}
	}
	return w, nil
}

// publishJob publishes a retained job payload and waits for it to come back (the
// broker's ACL may acknowledge and drop it).
func (w *fwWatch) publishJob(ctx context.Context, s *session, topic string, payload []byte) error {
	tok := s.client.Publish(topic, 1, true, payload)
	if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		return fmt.Errorf("publish %s: %v", topic, tok.Error())
	}
	deadline := time.After(10 * time.Second)
	for {
		w.mu.Lock()
		got, ok := w.jobs[topic]
		w.mu.Unlock()
		if len(payload) == 0 && !ok || ok && string(got) == string(payload) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("publish %s: the broker acknowledged but never delivered it back; check the ACL (the posfleet user needs readwrite on walletless/v1/fleet/#)", topic)
		case <-w.changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cmdFirmwareRollout publishes a signed firmware job to a target, in a canary wave
// first when asked, and follows the devices' reports.
func cmdFirmwareRollout(ctx context.Context, e env) error {
	fs := newFlags("firmware rollout", e)
	conn := addConnFlags(fs)
	tf := addTargetFlags(fs)
	key := fs.String("key", "", "minisign secret key `FILE` to sign the job with (the devices trust its public key)")
	url := fs.String("url", "", "http(s) `URL` the devices download FILE.wlf from")
	jobID := fs.String("job", "", "job `ID` (default fw-VERSION-TIME)")
	canary := fs.Int("canary", 0, "first roll out to `N` online devices of the target and wait -wait after they commit, then to the rest")
	wait := fs.Duration("wait", 5*time.Minute, "with -canary: how long the canaries must stay online after committing")
	timeout := fs.Duration("timeout", 30*time.Minute, "how long to wait for each wave's reports (0: publish and do not wait)")
	asJSON := fs.Bool("json", false, "progress on stderr; the job and each device's last report as JSON on stdout")
	pos, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	t, set, err := tf.target()
	if err != nil {
		return err
	}
	if !set || len(pos) != 1 || *key == "" || *url == "" {
		return usageErr("posfleet firmware rollout -broker URL -key KEY (-device ID|-group G|-all) -url URL [-canary N -wait D] FILE.wlf")
	}
	k, err := readSecretKey(*key)
	if err != nil {
		return err
	}
	h, size, err := readArtifact(pos[0], k.Public().(minisign.PublicKey))
	if err != nil {
		return err
	}
	if err := checkURL(ctx, *url, size); err != nil {
		return err
	}
	id := *jobID
	if id == "" {
		id = fmt.Sprintf("fw-%s-%d", h.Manifest.Version, time.Now().Unix())
	}
	job := firmware.Job{JobID: id, Version: h.Manifest.Version, URL: *url, ManifestSHA256: h.ManifestSHA256, Size: size,
		Target: fleet.Target{Device: t.Device, Group: t.Group, All: t.All}, Created: time.Now().UTC().Truncate(time.Second)}
	s, err := conn.dial(ctx, e.stderr)
	if err != nil {
		return err
	}
	defer s.close()
	w, err := watchFirmware(ctx, s)
	if err != nil {
		return err
	}
	if *asJSON {
		out := e.stdout
		e.stdout = e.stderr
		defer func() {
			w.mu.Lock()
			reports := map[string]firmware.JobReport{}
			for d, r := range w.reports {
				if r.JobID == job.JobID {
					reports[d] = r
				}
			}
			w.mu.Unlock()
			json.NewEncoder(out).Encode(map[string]any{"job": job, "reports": reports})
		}()
	}
	topic := firmware.JobTopic(job.Target)
	members := s.members(t)
	if *canary > 0 && t.Device == "" {
		var canaries []string
		for _, d := range members {
			if d.online() && len(canaries) < *canary {
				canaries = append(canaries, d.ID)
			}
		}
		if len(canaries) == 0 {
			return withCode(exitError, "no online device in %s to be a canary", t)
		}
		cj := job
		cj.Devices = canaries
		payload, err := firmware.SignJob(k, cj)
		if err != nil {
			return err
		}
		if err := w.publishJob(ctx, s, topic, payload); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "job %s: version %s to canaries %s\n", id, job.Version, strings.Join(canaries, ", "))
		if err := followJob(ctx, s, w, id, job.Version, canaries, *timeout, e); err != nil {
			// Halt: clear the slot so no other device starts it.
			_ = w.publishJob(ctx, s, topic, nil)
			return err
		}
		fmt.Fprintf(e.stdout, "canaries committed; watching them for %s\n", *wait)
		if err := watchHealthy(ctx, s, w, id, canaries, *wait); err != nil {
			_ = w.publishJob(ctx, s, topic, nil)
			return err
		}
	}
	payload, err := firmware.SignJob(k, job)
	if err != nil {
		return err
	}
	if err := w.publishJob(ctx, s, topic, payload); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "job %s: version %s published to %s (%s)\n", id, job.Version, t, topic)
	if *timeout == 0 {
		return nil
	}
	var ids []string
	for _, d := range s.members(t) {
		if d.online() {
			ids = append(ids, d.ID)
		}
	}
	if t.Device != "" && len(ids) == 0 {
		ids = []string{t.Device}
	}
	return followJob(ctx, s, w, id, job.Version, ids, *timeout, e)
}

// checkURL makes sure the URL serves a file of the artifact's size.
func checkURL(ctx context.Context, url string, size int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return usageErr("-url: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("-url %s does not answer: %w", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("-url %s: %s", url, resp.Status)
	}
	if resp.ContentLength >= 0 && resp.ContentLength != size {
		return fmt.Errorf("-url %s serves %d bytes, FILE.wlf has %d: upload the same file", url, resp.ContentLength, size)
	}
	return nil
}

// followJob waits until every device in ids reported an end of job id; a failure or
// rejection halts (exit 3).
func followJob(ctx context.Context, s *session, w *fwWatch, id, version string, ids []string, timeout time.Duration, e env) error {
	deadline := time.After(timeout)
	last := map[string]string{}
	for {
		done, bad := 0, []string{}
		for _, d := range ids {
			r, ok := w.report(d)
			if !ok || r.JobID != id {
				continue
			}
			line := r.Status
			if r.Step != "" {
				line += " " + r.Step
				if r.Percent > 0 {
					line += fmt.Sprintf(" %d%%", r.Percent)
				}
			}
			if r.Reason != "" {
				line += ": " + r.Reason
			}
			if last[d] != line {
				fmt.Fprintf(e.stdout, "  %-20s %s\n", d, line)
				last[d] = line
			}
			switch r.Status {
			case firmware.JobSucceeded:
				done++
			case firmware.JobFailed, firmware.JobRejected:
				bad = append(bad, d+": "+r.Status+" "+r.Reason)
			}
		}
		if len(bad) > 0 {
			return withCode(exitHalted, "rollout halted: %s", strings.Join(bad, "; "))
		}
		if done == len(ids) {
			fmt.Fprintf(e.stdout, "%d of %d devices run %s\n", done, len(ids), version)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return withCode(exitPending, "%d of %d devices finished job %s within the wait", done, len(ids), id)
		case <-w.changed:
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// watchHealthy checks for d that the canaries stay online and report no failure.
func watchHealthy(ctx context.Context, s *session, w *fwWatch, id string, ids []string, d time.Duration) error {
	end := time.After(d)
	for {
		for _, dev := range ids {
			st := s.device(dev)
			if !st.online() {
				return withCode(exitHalted, "rollout halted: canary %s went offline after committing", dev)
			}
			if r, ok := w.report(dev); ok && r.JobID == id && r.Status != firmware.JobSucceeded {
				return withCode(exitHalted, "rollout halted: canary %s reports %s %s", dev, r.Status, r.Reason)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-end:
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// cmdFirmwareStatus prints each device's last firmware job report.
func cmdFirmwareStatus(ctx context.Context, e env) error {
	fs := newFlags("firmware status", e)
	conn := addConnFlags(fs)
	job := fs.String("job", "", "only reports of job `ID`")
	asJSON := fs.Bool("json", false, "print the reports as JSON")
	if _, err := parse(fs, e.args); err != nil {
		return err
	}
	s, err := conn.dial(ctx, e.stderr)
	if err != nil {
		return err
	}
	defer s.close()
	w, err := watchFirmware(ctx, s)
	if err != nil {
		return err
	}
	w.mu.Lock()
	var rs []firmware.JobReport
	for _, r := range w.reports {
		if *job == "" || r.JobID == *job {
			rs = append(rs, r)
		}
	}
	w.mu.Unlock()
	sort.Slice(rs, func(i, j int) bool { return rs[i].Device < rs[j].Device })
	if *asJSON {
		b, _ := json.MarshalIndent(rs, "", "  ")
		fmt.Fprintln(e.stdout, string(b))
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tONLINE\tRUNNING\tJOB\tVERSION\tSTATUS\tSTEP\tREASON")
	for _, r := range rs {
		online := "no"
		if st := s.device(r.Device); st.online() {
			online = "yes"
		}
		step := r.Step
		if r.Percent > 0 {
			step += fmt.Sprintf(" %d%%", r.Percent)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Device, online, r.Running, r.JobID, r.Version, r.Status, step, r.Reason)
	}
	return tw.Flush()
}
