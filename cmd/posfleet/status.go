package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// deviceRow is one line of posfleet status.
type deviceRow struct {
	Device           string     `json:"device"`
	State            string     `json:"state"` // online, stale, offline
	Online           bool       `json:"online"`
	Stale            bool       `json:"stale"`
	Groups           []string   `json:"groups"`
	Firmware         string     `json:"firmware,omitempty"`
	ConfigVersion    string     `json:"config_version,omitempty"`
	QueueDepth       *int       `json:"queue_depth,omitempty"`
	InFlight         *int       `json:"in_flight,omitempty"`
	OldestUnsyncedMS *int64     `json:"oldest_unsynced_ms,omitempty"`
	Scanner          string     `json:"scanner,omitempty"`
	Printer          string     `json:"printer,omitempty"`
	LastHeartbeat    *time.Time `json:"last_heartbeat,omitempty"` // the heartbeat's own time
	StatusAt         *time.Time `json:"status_at,omitempty"`
}

// statusResult is what posfleet status prints with -json.
type statusResult struct {
	Devices  []deviceRow `json:"devices"`
	Online   int         `json:"online"`
	Stale    int         `json:"stale"`
	Offline  int         `json:"offline"`
	Listened string      `json:"listened"`
}

func cmdStatus(ctx context.Context, e env) error {
	fs := newFlags("status", e)
	conn := addConnFlags(fs)
	group := fs.String("group", "", "only the devices of group `G`")
	device := fs.String("device", "", "only device `ID`")
	listen := fs.Duration("listen", 2*time.Minute, "listen this long for heartbeats (they are not retained); an online device without one in that time is marked stale. Ends early once every online device has sent one. Default: twice posd's 60s heartbeat interval")
	progress := fs.Duration("progress", 5*time.Second, "interval of progress lines on stderr while listening")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pos, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected arguments %q", pos)
	}
	if *progress <= 0 {
		*progress = 5 * time.Second
	}
	s, err := conn.dial(ctx, e.stderr)
	if err != nil {
		return err
	}
	defer s.close()
	keep := func(d deviceState) bool {
		return (*group == "" || d.inGroup(*group)) && (*device == "" || d.ID == *device)
	}
	start := time.Now()
	deadline := start.Add(*listen)
	tick := time.NewTicker(*progress)
	defer tick.Stop()
	for {
		online, heard := 0, 0
		for _, d := range s.w.snapshot() {
			if !keep(d) || !d.online() {
				continue
			}
			online++
			if d.HB != nil {
				heard++
			}
		}
		left := time.Until(deadline)
		if heard == online || left <= 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			fmt.Fprintf(e.stderr, "posfleet: heartbeats from %d of %d online devices (%s left)\n", heard, online, left.Round(time.Second))
		case <-s.w.changed:
		case <-time.After(min(left, 200*time.Millisecond)):
		}
	}
	res := statusResult{Devices: []deviceRow{}, Listened: time.Since(start).Round(time.Millisecond).String()}
	for _, d := range s.w.snapshot() {
		if !keep(d) {
			continue
		}
		row := deviceRow{Device: d.ID, Groups: d.Groups, Online: d.online(), State: "offline"}
		if row.Groups == nil {
			row.Groups = []string{}
		}
		if d.Status != nil {
			row.Firmware = d.Status.Version
			if !d.Status.At.IsZero() {
				at := d.Status.At
				row.StatusAt = &at
			}
		}
		if hb := d.HB; hb != nil {
			if hb.Firmware != "" {
				row.Firmware = hb.Firmware
			}
			row.ConfigVersion = hb.ConfigVersion
			q, f, o := hb.QueueDepth, hb.InFlight, hb.OldestUnsyncedMS
			row.QueueDepth, row.InFlight, row.OldestUnsyncedMS = &q, &f, &o
			row.Scanner, row.Printer = hb.Scanner, hb.Printer
			at := hb.At
			row.LastHeartbeat = &at
		}
		if row.ConfigVersion == "" && d.Report != nil && d.Report.Code == codeApplied {
			row.ConfigVersion = fmt.Sprint(d.Report.Version)
		}
		switch {
		case row.Online && d.HB == nil:
			row.State, row.Stale = "stale", true
			res.Stale++
		case row.Online:
			row.State = "online"
			res.Online++
		default:
			res.Offline++
		}
		res.Devices = append(res.Devices, row)
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(res)
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DEVICE\tSTATE\tGROUPS\tFIRMWARE\tCONFIG\tQUEUE\tOLDEST\tSCANNER\tPRINTER\tHEARTBEAT")
	for _, r := range res.Devices {
		queue, oldest, hb := "-", "-", "-"
		if r.QueueDepth != nil {
			queue = fmt.Sprint(*r.QueueDepth)
			if *r.QueueDepth < 0 {
				queue = "?"
			}
			oldest = (time.Duration(*r.OldestUnsyncedMS) * time.Millisecond).Round(time.Second).String()
		}
		if r.LastHeartbeat != nil {
			hb = r.LastHeartbeat.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Device, r.State, dash(strings.Join(r.Groups, ",")), dash(r.Firmware), dash(r.ConfigVersion), queue, oldest, dash(r.Scanner), dash(r.Printer), hb)
	}
	w.Flush()
	fmt.Fprintf(e.stdout, "%d online, %d stale, %d offline\n", res.Online, res.Stale, res.Offline)
	if res.Stale > 0 {
		fmt.Fprintf(e.stdout, "stale: the broker says online but no heartbeat came in %s\n", res.Listened)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// configStatusResult is what config status prints with -json.
type configStatusResult struct {
	Version  uint64         `json:"version"`
	Target   string         `json:"target,omitempty"` // of the retained document with this version, if any
	Devices  []deviceReport `json:"devices"`
	Counts   map[string]int `json:"counts"`
	Finished bool           `json:"finished"` // no device pending or applying
}

func cmdConfigStatus(ctx context.Context, e env) error {
	fs := newFlags("config status", e)
	conn := addConnFlags(fs)
	ver := fs.Uint64("version", 0, "config version `N` (default: the highest one posfleet sees)")
	group := fs.String("group", "", "only the devices of group `G`")
	device := fs.String("device", "", "only device `ID`")
	wait := fs.Duration("wait", 0, "wait up to this long until no online device is pending (progress on stderr)")
	progress := fs.Duration("progress", 5*time.Second, "interval of progress lines on stderr while waiting")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pos, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected arguments %q", pos)
	}
	if *progress <= 0 {
		*progress = 5 * time.Second
	}
	s, err := conn.dial(ctx, e.stderr)
	if err != nil {
		return err
	}
	defer s.close()
	v := *ver
	if v == 0 {
		if v = s.w.highestVersion(); v == 0 {
			return fmt.Errorf("no config version seen on this broker yet")
		}
	}
	// The devices in scope: the target of the retained document with this version
	// when there is one, else the devices that reported this version (a canary
	// version, or a document replaced since); -group/-device narrow it.
	var scope *target
	s.w.mu.Lock()
	for _, d := range s.w.desired {
		if d.Doc.Version == v {
			t := d.Doc.Target
			scope = &t
		}
	}
	s.w.mu.Unlock()
	res := configStatusResult{Version: v}
	if scope != nil {
		res.Target = scope.String()
	}
	deadline := time.Now().Add(*wait)
	tick := time.NewTicker(*progress)
	defer tick.Stop()
	for {
		res.Devices = []deviceReport{}
		res.Counts = map[string]int{}
		pendingOnline := 0
		for _, d := range s.w.snapshot() {
			if *group != "" && !d.inGroup(*group) || *device != "" && d.ID != *device {
				continue
			}
			reported := d.Report != nil && d.Report.Version == v
			switch {
			case scope == nil && !reported:
				continue
			case scope != nil && !reported && !(scope.All || scope.Device == d.ID || scope.Group != "" && d.inGroup(scope.Group)):
				continue
			}
			r := outcome(d, v)
			res.Devices = append(res.Devices, r)
			res.Counts[r.State]++
			if (r.State == "pending" || r.State == "applying") && r.Online {
				pendingOnline++
			}
		}
		res.Finished = res.Counts["pending"]+res.Counts["applying"] == 0
		left := time.Until(deadline)
		if pendingOnline == 0 || left <= 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			fmt.Fprintf(e.stderr, "posfleet: version %d: %d applied, %d pending online (%s left)\n", v, res.Counts["applied"], pendingOnline, left.Round(time.Second))
		case <-s.w.changed:
		case <-time.After(min(left, 200*time.Millisecond)):
		}
	}
	var err2 error
	switch {
	case res.Counts["rejected"]+res.Counts["failed"] > 0:
		err2 = &exitErr{code: exitHalted, err: fmt.Errorf("version %d: %d rejected, %d failed", v, res.Counts["rejected"], res.Counts["failed"])}
	case !res.Finished:
		err2 = &exitErr{code: exitPending, err: fmt.Errorf("version %d: %d device(s) have not applied it yet", v, res.Counts["pending"]+res.Counts["applying"])}
	}
	if *asJSON {
		if err := json.NewEncoder(e.stdout).Encode(res); err != nil {
			return err
		}
		return err2
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DEVICE\tSTATE\tCODE\tONLINE\tREASON")
	for _, r := range res.Devices {
		code := "-"
		if r.Code != 0 {
			code = fmt.Sprint(r.Code)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%t\t%s\n", r.Device, r.State, code, r.Online, dash(r.Reason))
	}
	w.Flush()
	scopeText := "the devices that reported it (no retained document has this version now)"
	if scope != nil {
		scopeText = scope.String()
	}
	fmt.Fprintf(e.stdout, "version %d for %s: %d applied, %d applying, %d rejected, %d failed, %d pending, %d superseded\n", v, scopeText,
		res.Counts["applied"], res.Counts["applying"], res.Counts["rejected"], res.Counts["failed"], res.Counts["pending"], res.Counts["superseded"])
	return err2
}

// signResult is what config sign prints with -json.
type signResult struct {
	Document  string `json:"document"`
	Signature string `json:"signature"`
	Version   uint64 `json:"version"`
	Target    string `json:"target"`
}

func cmdSign(e env) error {
	fs := newFlags("config sign", e)
	tf := addTargetFlags(fs)
	key := fs.String("key", "", "minisign secret key `FILE`")
	ver := fs.Uint64("version", 0, "config version `N` (required: offline, posfleet cannot see the fleet's versions)")
	notBefore := fs.String("not-before", "", "devices ignore the document before this `TIME` (RFC 3339 or a duration from now)")
	notAfter := fs.String("not-after", "", "devices refuse the document after this `TIME` (RFC 3339 or a duration from now)")
	out := fs.String("o", "", "write the document to `OUT` and its signature to OUT.minisig")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pos, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" || *key == "" {
		return usageErr("posfleet config sign -key KEY (-device ID|-group G|-all) -version N -o OUT FILE")
	}
	t, set, err := tf.target()
	if err != nil {
		return err
	}
	if !set || *ver == 0 {
		return usageErr("a target (-device, -group or -all) and -version N are required")
	}
	k, err := readSecretKey(*key)
	if err != nil {
		return err
	}
	input, isDoc, err := readInput(pos[0])
	if err != nil {
		return err
	}
	if isDoc {
		return usageErr("%s is already a whole document: give the bare partial config", pos[0])
	}
	now := time.Now()
	nb, err := parseTime(*notBefore, now)
	if err != nil {
		return usageErr("-not-before: %v", err)
	}
	na, err := parseTime(*notAfter, now)
	if err != nil {
		return usageErr("-not-after: %v", err)
	}
	raw, err := buildDocument(input, t, *ver, nb, na)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	d, _ := parseDocument(raw)
	sig := sign(k, d, raw)
	for _, p := range []string{*out, *out + ".minisig"} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s exists: refusing to overwrite it", p)
		}
	}
	if err := writeNew(*out, raw, 0o644); err != nil {
		return err
	}
	if err := writeNew(*out+".minisig", sig, 0o644); err != nil {
		return err
	}
	res := signResult{Document: *out, Signature: *out + ".minisig", Version: *ver, Target: t.String()}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(res)
	}
	fmt.Fprintf(e.stdout, "signed version %d for %s: %s and %s\n", *ver, t, *out, *out+".minisig")
	return nil
}
