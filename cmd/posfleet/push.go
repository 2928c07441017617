package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"aead.dev/minisign"
)

// pushResult is what config push prints with -json.
type pushResult struct {
	Version  uint64         `json:"version"`
	Target   string         `json:"target"`
	Topic    string         `json:"topic,omitempty"`
	Pushed   bool           `json:"pushed"` // the document for the whole target was published
	Canaries []deviceReport `json:"canaries,omitempty"`
	// CanaryVersion is the version of the device documents sent to the canaries;
	// Version (one above) went to the whole target.
	CanaryVersion uint64         `json:"canary_version,omitempty"`
	Devices       []deviceReport `json:"devices,omitempty"`
	Halted        bool           `json:"halted"`
	Reason        string         `json:"reason,omitempty"`
}

// deviceReport is one device's outcome for a version.
type deviceReport struct {
	Device  string `json:"device"`
	State   string `json:"state"` // applied, applying, rejected, failed, pending, superseded, offline
	Code    int    `json:"code,omitempty"`
	Version uint64 `json:"version,omitempty"` // the version the device last reported
	Reason  string `json:"reason,omitempty"`
	Online  bool   `json:"online"`
}

// pushFlags are config push's own flags.
type pushFlags struct {
	key, pub, notBefore, notAfter, canaries *string
	version                                 *uint64
	canary                                  *int
	wait, timeout, progress                 *time.Duration
	asJSON                                  *bool
}

func cmdPush(ctx context.Context, e env) error {
	fs := newFlags("config push", e)
	conn := addConnFlags(fs)
	tf := addTargetFlags(fs)
	pf := pushFlags{
		key:       fs.String("key", "", "minisign secret key `FILE` to sign with (without it, FILE.minisig next to a whole document is pushed)"),
		pub:       fs.String("pub", "", "check the signature against this public key `FILE` before pushing"),
		notBefore: fs.String("not-before", "", "devices ignore the document before this `TIME` (RFC 3339, or a duration from now like 1h)"),
		notAfter:  fs.String("not-after", "", "devices refuse the document after this `TIME` (RFC 3339, or a duration from now like 72h)"),
		version:   fs.Uint64("version", 0, "config version `N` (default: one above the highest version posfleet sees in retained documents, reports and heartbeats)"),
		canary:    fs.Int("canary", 0, "first push to `N` online devices of the target, wait for them to apply and stay healthy for -wait, then push to the rest"),
		canaries:  fs.String("canaries", "", "comma-separated device `IDS` to use as canaries instead of the first -canary N by id"),
		wait:      fs.Duration("wait", 5*time.Minute, "with -canary: how long the canaries must stay healthy after applying (online, heartbeating, no failure)"),
		timeout:   fs.Duration("timeout", 0, "how long to wait for devices to report the version (default: 10m with -canary, else 0: do not wait)"),
		progress:  fs.Duration("progress", 5*time.Second, "interval of progress lines on stderr during waits"),
		asJSON:    fs.Bool("json", false, "print the result as JSON"),
	}
	pos, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("give exactly one FILE: posfleet config push -broker URL -key KEY (-device ID|-group G|-all) FILE")
	}
	file := pos[0]
	t, tset, err := tf.target()
	if err != nil {
		return err
	}
	canaryIDs := splitList(*pf.canaries)
	if len(canaryIDs) > 0 {
		if *pf.canary != 0 && *pf.canary != len(canaryIDs) {
			return usageErr("-canary %d and -canaries with %d devices disagree", *pf.canary, len(canaryIDs))
		}
		*pf.canary = len(canaryIDs)
	}
	if *pf.canary < 0 {
		return usageErr("-canary must be positive")
	}
	if *pf.canary > 0 && *pf.timeout == 0 {
		*pf.timeout = 10 * time.Minute
	}
	if *pf.progress <= 0 {
		*pf.progress = 5 * time.Second
	}
	input, isDoc, err := readInput(file)
	if err != nil {
		return err
	}
	var key *minisign.PrivateKey
	if *pf.key != "" {
		k, err := readSecretKey(*pf.key)
		if err != nil {
			return err
		}
		key = &k
	}
	var pub *minisign.PublicKey
	if *pf.pub != "" {
		p, err := minisign.PublicKeyFromFile(*pf.pub)
		if err != nil {
			return fmt.Errorf("-pub: %w", err)
		}
		pub = &p
	}
	now := time.Now()
	nb, err := parseTime(*pf.notBefore, now)
	if err != nil {
		return usageErr("-not-before: %v", err)
	}
	na, err := parseTime(*pf.notAfter, now)
	if err != nil {
		return usageErr("-not-after: %v", err)
	}
	if na != nil && !na.After(now) {
		return usageErr("-not-after %s is not in the future: every device would reject the document", na.Format(time.RFC3339))
	}
	// A whole document is pushed byte for byte: its fields are the truth, the flags
	// may only repeat them.
	var (
		fixedDoc []byte
		fixedSig []byte
		doc      document
	)
	if isDoc {
		if doc, err = parseDocument(input); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		switch {
		case tset && t != doc.Target:
			return usageErr("%s is for %s, not %s", file, doc.Target, t)
		case *pf.version != 0 && *pf.version != doc.Version:
			return usageErr("%s has version %d, not %d", file, doc.Version, *pf.version)
		case nb != nil || na != nil:
			return usageErr("-not-before and -not-after are for a bare config; %s is a whole document with its own window", file)
		case *pf.canary > 0:
			return usageErr("-canary needs a bare config FILE (posfleet signs one document per wave), not a whole document")
		}
		t, fixedDoc = doc.Target, input
		if key != nil {
			fixedSig = sign(*key, doc, input)
		} else {
			if fixedSig, err = os.ReadFile(file + ".minisig"); err != nil {
				return fmt.Errorf("no -key and no signature: %w (sign with 'minisign -S -s KEY -m %s' or give -key)", err, file)
			}
			var s minisign.Signature
			if err := s.UnmarshalText(fixedSig); err != nil {
				return fmt.Errorf("%s.minisig: %w", file, err)
			}
		}
		if pub != nil && !minisign.Verify(*pub, fixedDoc, fixedSig) {
			return fmt.Errorf("the signature of %s does not verify with %s: devices trusting that key would reject it", file, *pf.pub)
		}
	} else {
		if _, err := os.Stat(file + ".minisig"); err == nil && key == nil {
			return fmt.Errorf("%s.minisig signs a bare config, which devices cannot use: a signed push needs a whole document (make one with 'posfleet config sign', see docs/fleet.md)", file)
		}
		if key == nil {
			return usageErr("-key is required to sign a bare config")
		}
		if !tset {
			return usageErr("give a target: -device ID, -group G or -all")
		}
		if err := checkConfig(input); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if pub != nil && !pub.Equal(key.Public()) {
			return fmt.Errorf("-key and -pub are not a pair")
		}
	}
	if *pf.canary > 0 && t.Device != "" {
		return usageErr("-canary is for a group or -all, not one device")
	}
	s, err := conn.dial(ctx, e.stderr)
	if err != nil {
		return err
	}
	defer s.close()

	res := pushResult{Target: t.String(), Topic: t.topic()}
	highest := s.w.highestVersion()
	ver := doc.Version
	if !isDoc {
		ver = *pf.version
		if ver == 0 {
			ver = highest + 1
		}
	}
	if cur := s.targetVersion(t); ver <= cur {
		return fmt.Errorf("version %d is not above %d, the highest version already held or reported by %s: devices would reject it as a replay (omit -version or give a higher one)", ver, cur, t)
	}
	if ver <= highest {
		fmt.Fprintf(e.stderr, "posfleet: note: version %d is not above %d, the highest this fleet has seen; devices that accepted a higher version will reject it\n", ver, highest)
	}
	if *pf.canary > 0 {
		res.CanaryVersion = ver
		res.Version = ver + 1
		err = s.canaryRollout(ctx, e, t, input, *key, ver, nb, na, canaryIDs, *pf.canary, pf, &res)
		return finish(e.stdout, *pf.asJSON, &res, err)
	}
	res.Version = ver
	if fixedDoc == nil {
		if fixedDoc, err = buildDocument(input, t, ver, nb, na); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		d, _ := parseDocument(fixedDoc)
		fixedSig = sign(*key, d, fixedDoc)
	}
	payload, err := wirePayload(fixedDoc, fixedSig)
	if err != nil {
		return err
	}
	if err := s.publish(ctx, t.topic(), payload); err != nil {
		return err
	}
	res.Pushed = true
	if *pf.timeout > 0 {
		err = s.waitTarget(ctx, e.stderr, t, ver, *pf.timeout, *pf.progress, &res)
	}
	return finish(e.stdout, *pf.asJSON, &res, err)
}

// finish prints the result (also when err is a halt, so scripts see the details).
func finish(w io.Writer, asJSON bool, res *pushResult, err error) error {
	var ec *exitErr
	if err != nil && !errors.As(err, &ec) {
		return err
	}
	if err != nil {
		res.Halted = ec.code == exitHalted
		res.Reason = ec.err.Error()
	}
	if asJSON {
		if jerr := json.NewEncoder(w).Encode(res); jerr != nil {
			return jerr
		}
		return err
	}
	if res.CanaryVersion != 0 {
		for _, c := range res.Canaries {
			fmt.Fprintf(w, "canary %s: %s%s\n", c.Device, c.State, reasonSuffix(c.Reason))
		}
	}
	if res.Pushed {
		fmt.Fprintf(w, "pushed version %d to %s (%s)\n", res.Version, res.Target, res.Topic)
	} else {
		fmt.Fprintf(w, "the document for %s (version %d) was NOT pushed\n", res.Target, res.Version)
	}
	for _, d := range res.Devices {
		fmt.Fprintf(w, "  %s: %s%s\n", d.Device, d.State, reasonSuffix(d.Reason))
	}
	return err
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return " (" + r + ")"
}

// targetVersion is the highest version known for the devices of t: the retained
// document on t's topic, and every member's report and heartbeat.
func (s *session) targetVersion(t target) uint64 {
	var max uint64
	if d, ok := s.w.desiredAt(t.topic()); ok {
		max = d.Doc.Version
	}
	for _, d := range s.members(t) {
		if d.Report != nil {
			max = maxU(max, d.Report.Version)
		}
		if d.HB != nil {
			var v uint64
			if _, err := fmt.Sscan(d.HB.ConfigVersion, &v); err == nil {
				max = maxU(max, v)
			}
		}
	}
	return max
}

// members returns the known devices of a target, sorted by id.
func (s *session) members(t target) []deviceState {
	var out []deviceState
	for _, d := range s.w.snapshot() {
		if t.All || t.Device == d.ID || (t.Group != "" && d.inGroup(t.Group)) {
			out = append(out, d)
		}
	}
	return out
}

// outcome classifies a device's report against version v.
func outcome(d deviceState, v uint64) deviceReport {
	r := deviceReport{Device: d.ID, Online: d.online(), State: "pending"}
	// The heartbeat's config_version is the version in force: evidence of an apply
	// whose report is still on its way (or was lost while posd reconnected).
	var inForce uint64
	if d.HB != nil {
		inForce, _ = strconv.ParseUint(d.HB.ConfigVersion, 10, 64)
	}
	final := d.Report != nil && (d.Report.Version > v || d.Report.Version == v && d.Report.Code != codeApplying)
	switch {
	case !final && inForce == v && v > 0:
		r.State, r.Code, r.Version = "applied", codeApplied, v
		r.Reason = "in force per its heartbeat"
		return r
	case !final && inForce > v:
		r.State, r.Version = "superseded", inForce
		r.Reason = fmt.Sprintf("runs version %d per its heartbeat", inForce)
		return r
	}
	switch {
	case d.Report == nil:
		r.Reason = "no report yet"
	case d.Report.Version == v:
		r.Code, r.Version, r.Reason = d.Report.Code, d.Report.Version, d.Report.Reason
		switch d.Report.Code {
		case codeApplied:
			r.State = "applied"
		case codeApplying:
			r.State = "applying"
		case codeRejected:
			r.State = "rejected"
		case codeFailed:
			r.State = "failed"
		default:
			r.Reason = fmt.Sprintf("unknown code %d: %s", d.Report.Code, d.Report.Reason)
		}
	case d.Report.Version > v:
		r.State, r.Code, r.Version = "superseded", d.Report.Code, d.Report.Version
		r.Reason = fmt.Sprintf("reported version %d (%d)", d.Report.Version, d.Report.Code)
	default:
		r.Version = d.Report.Version
		r.Reason = fmt.Sprintf("last reported version %d", d.Report.Version)
	}
	if r.State == "pending" && !r.Online {
		r.Reason = "offline; applies it on reconnect"
	}
	return r
}

// waitTarget waits until every online member of t, and every member that reported it
// is applying v, has reported an outcome for version v, or timeout. Rejections and failures
// make it return exitHalted naming each device and its reason.
func (s *session) waitTarget(ctx context.Context, stderr io.Writer, t target, v uint64, timeout, every time.Duration, res *pushResult) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(every)
	defer tick.Stop()
	// The devices online when the wait begins are waited for even while they drop
	// off the broker: posd restarts its link to put a configuration in force.
	expect := map[string]bool{}
	for _, d := range s.members(t) {
		if d.online() {
			expect[d.ID] = true
		}
	}
	for {
		var reps []deviceReport
		pending, applied := 0, 0
		var bad []deviceReport
		for _, d := range s.members(t) {
			r := outcome(d, v)
			reps = append(reps, r)
			switch r.State {
			case "applied", "superseded":
				applied++
			case "rejected", "failed":
				bad = append(bad, r)
			default:
				// A device that reported 202 for v is applying it and drops off the
				// broker while its link restarts: its outcome is waited for too.
				if r.Online || expect[d.ID] || r.State == "applying" {
					pending++
				}
			}
		}
		res.Devices = reps
		left := time.Until(deadline)
		// The document is out: wait for every online device's outcome, then say
		// which ones rejected or failed it.
		if len(bad) > 0 && (pending == 0 || left <= 0) {
			var parts []string
			for _, b := range bad {
				parts = append(parts, fmt.Sprintf("%s %s it: %s", b.Device, b.State, b.Reason))
			}
			return withCode(exitHalted, "version %d: %s", v, strings.Join(parts, "; "))
		}
		if pending == 0 {
			return nil
		}
		if left <= 0 {
			return withCode(exitPending, "version %d: %d online device(s) of %s have not applied it after %s", v, pending, t, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			fmt.Fprintf(stderr, "posfleet: version %d on %s: %d applied, %d pending (%s left)\n", v, t, applied, pending, left.Round(time.Second))
		case <-s.w.changed:
		case <-time.After(min(left, 200*time.Millisecond)):
		}
	}
}

// canaryRollout pushes device documents at version ver to the canaries, waits for
// them to apply and stay healthy for -wait, then pushes the target's document at
// ver+1 (same config) and clears the canaries' device documents.
func (s *session) canaryRollout(ctx context.Context, e env, t target, config []byte, key minisign.PrivateKey, ver uint64, nb, na *time.Time, ids []string, n int, pf pushFlags, res *pushResult) error {
	members := s.members(t)
	byID := map[string]deviceState{}
	for _, d := range members {
		byID[d.ID] = d
	}
	var canaries []string
	if len(ids) > 0 {
		for _, id := range ids {
			d, ok := byID[id]
			switch {
			case !ok:
				return fmt.Errorf("canary %s is not a known device of %s", id, t)
			case !d.online():
				return fmt.Errorf("canary %s is offline", id)
			}
			if _, held := s.w.desiredAt(target{Device: id}.topic()); held {
				return fmt.Errorf("canary %s has its own device document, which would be replaced: pick another canary", id)
			}
			canaries = append(canaries, id)
		}
	} else {
		for _, d := range members {
			if _, held := s.w.desiredAt(target{Device: d.ID}.topic()); d.online() && !held {
				canaries = append(canaries, d.ID)
			}
			if len(canaries) == n {
				break
			}
		}
		if len(canaries) < n {
			return fmt.Errorf("%s has %d online devices without a device document of their own (of %d known); -canary %d needs that many", t, len(canaries), len(members), n)
		}
	}
	if len(canaries) >= len(members) {
		return fmt.Errorf("-canary %d covers all %d known devices of %s: nothing would be left for the second wave (push without -canary)", len(canaries), len(members), t)
	}
	only := map[string]bool{}
	for _, id := range canaries {
		only[id] = true
		res.Canaries = append(res.Canaries, deviceReport{Device: id, State: "pending"})
	}
	fmt.Fprintf(e.stderr, "posfleet: canaries for version %d: %s\n", ver, strings.Join(canaries, ", "))
	// clear removes the canaries' device documents, so later pushes to the target
	// reach them as every other device.
	clear := func() {
		// Also after Ctrl-C: the canaries' documents must not stay behind.
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, id := range canaries {
			if err := s.publish(cctx, target{Device: id}.topic(), nil); err != nil {
				fmt.Fprintf(e.stderr, "posfleet: could not clear the canary document of %s: %v\n", id, err)
			}
		}
	}
	for _, id := range canaries {
		dt := target{Device: id}
		raw, err := buildDocument(config, dt, ver, nb, na)
		if err != nil {
			return err
		}
		d, _ := parseDocument(raw)
		payload, err := wirePayload(raw, sign(key, d, raw))
		if err != nil {
			return err
		}
		if err := s.publish(ctx, dt.topic(), payload); err != nil {
			clear()
			return err
		}
	}
	halt := func(format string, args ...any) error {
		clear()
		msg := fmt.Sprintf(format, args...) + fmt.Sprintf("; rollout halted: the document of %s was not changed. Canaries that applied version %d keep it until the next push to %s (see: posfleet config status -version %d; to take them back, push the previous config to %s)", t, ver, t, ver, t)
		return withCode(exitHalted, "%s", msg)
	}
	// Wave 1: the canaries apply. A canary may drop off the broker meanwhile: posd
	// restarts its link to put a configuration in force (and must, for new broker
	// settings), so only -timeout ends the wait for one that does not come back.
	deadline := time.Now().Add(*pf.timeout)
	tick := time.NewTicker(*pf.progress)
	defer tick.Stop()
	appliedAt := map[string]time.Time{}
	for len(appliedAt) < len(canaries) {
		for i, id := range canaries {
			d := s.device(id)
			r := outcome(d, ver)
			res.Canaries[i] = r
			switch {
			case r.State == "rejected" || r.State == "failed":
				return halt("canary %s %s version %d: %s", id, r.State, ver, r.Reason)
			case r.State == "applied":
				if _, ok := appliedAt[id]; !ok {
					appliedAt[id] = d.ReportSeen
					if r.Reason == "in force per its heartbeat" {
						appliedAt[id] = d.HBSeen
					}
				}
			case r.State == "superseded":
				return halt("canary %s reported version %d, above %d: another push is running", id, d.Report.Version, ver)
			}
		}
		if len(appliedAt) == len(canaries) {
			break
		}
		left := time.Until(deadline)
		if left <= 0 {
			var waiting []string
			for _, id := range canaries {
				if _, ok := appliedAt[id]; !ok {
					waiting = append(waiting, id)
				}
			}
			err := halt("canaries %s did not apply version %d within %s", strings.Join(waiting, ", "), ver, *pf.timeout)
			err.(*exitErr).code = exitPending
			return err
		}
		select {
		case <-ctx.Done():
			clear()
			return ctx.Err()
		case <-tick.C:
			var offline []string
			for _, id := range canaries {
				if d := s.device(id); !d.online() {
					offline = append(offline, id)
				}
			}
			note := ""
			if len(offline) > 0 {
				note = "; offline now: " + strings.Join(offline, ", ")
			}
			fmt.Fprintf(e.stderr, "posfleet: canaries: %d/%d applied version %d (%s left%s)\n", len(appliedAt), len(canaries), ver, left.Round(time.Second), note)
		case <-s.w.changed:
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Wave 1 holds: the canaries stay online, keep sending heartbeats and do not
	// fail (a rollback reports 500) for -wait.
	fmt.Fprintf(e.stderr, "posfleet: all %d canaries applied version %d; watching their health for %s\n", len(canaries), ver, *pf.wait)
	holdEnd := time.Now().Add(*pf.wait)
	for {
		healthy := 0
		for i, id := range canaries {
			d := s.device(id)
			r := outcome(d, ver)
			res.Canaries[i] = r
			switch {
			case r.State == "failed" || r.State == "rejected":
				return halt("canary %s %s version %d: %s", id, r.State, ver, r.Reason)
			case r.State != "applied":
				return halt("canary %s no longer reports version %d as applied (%s %s)", id, ver, r.State, r.Reason)
			case !d.online():
				return halt("canary %s went offline after applying version %d", id, ver)
			}
			if d.HB != nil && !d.HBSeen.Before(appliedAt[id]) {
				healthy++
			}
		}
		left := time.Until(holdEnd)
		if left <= 0 {
			if healthy < len(canaries) {
				var silent []string
				for _, id := range canaries {
					if d := s.device(id); d.HB == nil || d.HBSeen.Before(appliedAt[id]) {
						silent = append(silent, id)
					}
				}
				return halt("canaries %s sent no heartbeat in the %s after applying version %d (a -wait longer than the heartbeat interval is needed)", strings.Join(silent, ", "), *pf.wait, ver)
			}
			break
		}
		select {
		case <-ctx.Done():
			clear()
			return ctx.Err()
		case <-tick.C:
			fmt.Fprintf(e.stderr, "posfleet: canaries healthy, %d/%d heartbeating since applying (%s left)\n", healthy, len(canaries), left.Round(time.Second))
		case <-s.w.changed:
		case <-time.After(min(left, 200*time.Millisecond)):
		}
	}
	// Wave 2: the whole target, one version above the canaries' documents.
	raw, err := buildDocument(config, t, ver+1, nb, na)
	if err != nil {
		return err
	}
	d, _ := parseDocument(raw)
	payload, err := wirePayload(raw, sign(key, d, raw))
	if err != nil {
		return err
	}
	if err := s.publish(ctx, t.topic(), payload); err != nil {
		clear()
		return err
	}
	res.Pushed = true
	fmt.Fprintf(e.stderr, "posfleet: canaries healthy; pushed version %d to %s\n", ver+1, t)
	clear()
	remaining := time.Until(deadline)
	if remaining < *pf.wait {
		remaining = *pf.wait
	}
	return s.waitTarget(ctx, e.stderr, t, ver+1, remaining, *pf.progress, res)
}

// device returns a copy of one device's state.
func (s *session) device(id string) deviceState {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if d := s.w.devices[id]; d != nil {
		return *d
	}
	return deviceState{ID: id}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}
