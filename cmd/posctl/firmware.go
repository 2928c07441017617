package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/daemon"
	"github.com/walletless/walletless/firmware"
)

// cmdFirmware is `posctl firmware status|rollback|boot|init`.
func cmdFirmware(ctx context.Context, e env) error {
	if len(e.args) == 0 {
		fmt.Fprintln(e.stderr, "usage: posctl firmware status|rollback|boot|init [flags]")
		return errUsage
	}
	sub, rest := e.args[0], env{args: e.args[1:], stdin: e.stdin, stdout: e.stdout, stderr: e.stderr}
	switch sub {
	case "status":
		return cmdFirmwareStatus(ctx, rest)
	case "rollback":
		return cmdFirmwareRollback(ctx, rest)
	case "boot":
		return cmdFirmwareBoot(ctx, rest)
	case "init":
		return cmdFirmwareInit(ctx, rest)
	}
	fmt.Fprintf(e.stderr, "posctl firmware: unknown subcommand %q\n", sub)
	return errUsage
}

// fwStatus is GET /v1/firmware.
type fwStatus struct {
	Running  string         `json:"running"`
	Backend  string         `json:"backend"`
	State    firmware.State `json:"state"`
	Updating *struct {
		Step            string `json:"step"`
		Version         string `json:"version"`
		Percent         int    `json:"percent"`
		EstimateSeconds int    `json:"estimate_seconds"`
		Reason          string `json:"reason"`
	} `json:"updating"`
}

func getFirmware(ctx context.Context, c *apiClient) (fwStatus, error) {
	var s fwStatus
	code, raw, err := c.call(ctx, http.MethodGet, "/v1/firmware", nil)
	if err != nil {
		return s, err
	}
	if code != http.StatusOK {
		return s, fmt.Errorf("posd answered %d: %s", code, apiMessage(raw))
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, fmt.Errorf("posd answered non-JSON: %w", err)
	}
	return s, nil
}

func apiMessage(raw []byte) string {
	var m struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &m) == nil && m.Error != "" {
		return m.Error
	}
	return strings.TrimSpace(string(raw))
}

func cmdFirmwareStatus(ctx context.Context, e env) error {
	fs := flag.NewFlagSet("firmware status", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print posd's answer as JSON")
	if err := fs.Parse(e.args); err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	if *asJSON {
		return c.printJSON(ctx, http.MethodGet, "/v1/firmware", nil, e.stdout)
	}
	s, err := getFirmware(ctx, c)
	if err != nil {
		return err
	}
	st := s.State
	fmt.Fprintf(e.stdout, "running   %s (slot %s, %s backend)\n", s.Running, st.Slot, s.Backend)
	floor := st.Floor
	if floor == "" {
		floor = "none"
	}
	fmt.Fprintf(e.stdout, "floor     %s (no artifact below it is accepted)\n", floor)
	if p := st.Previous; p != nil && p.Version != "" {
		fmt.Fprintf(e.stdout, "previous  %s in slot %s (posctl firmware rollback goes back to it)\n", p.Version, p.Slot)
	}
	if u := st.Update; u != nil {
		fmt.Fprintf(e.stdout, "update    %s: %s → %s, step %s", u.ID, u.FromVersion, u.Version, u.Step)
		if u.Step == firmware.StepVerifyNew {
			fmt.Fprintf(e.stdout, " (start %d)", u.Attempts)
		}
		fmt.Fprintln(e.stdout)
		if s.Updating != nil && s.Updating.Reason != "" {
			fmt.Fprintf(e.stdout, "          %s\n", s.Updating.Reason)
		}
	} else {
		fmt.Fprintln(e.stdout, "update    none in progress")
	}
	if l := st.Last; l != nil {
		fmt.Fprintf(e.stdout, "last      %s %s %s at %s", l.ID, l.Version, l.Result, l.At.Format(time.RFC3339))
		if l.Reason != "" {
			fmt.Fprintf(e.stdout, ": %s", l.Reason)
		}
		fmt.Fprintln(e.stdout)
	}
	return nil
}

func cmdFirmwareRollback(ctx context.Context, e env) error {
	fs := flag.NewFlagSet("firmware rollback", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	af := addAPIFlags(fs)
	wait := fs.Duration("wait", 10*time.Minute, "how long to follow the rollback (0: do not follow)")
	if err := fs.Parse(e.args); err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	before, err := getFirmware(ctx, c)
	if err != nil {
		return err
	}
	code, raw, err := c.call(ctx, http.MethodPost, "/v1/firmware/rollback", struct{}{})
	if err != nil {
		return err
	}
	if code != http.StatusAccepted {
		return fmt.Errorf("posd refused the rollback (%d): %s", code, apiMessage(raw))
	}
	// On trial: the trial is abandoned, the update ends "failed: rolled back". Committed:
	// a rollback update to the previous version begins and ends "succeeded".
	var id, target string
	trial := before.State.Update != nil
	if trial {
		id, target = before.State.Update.ID, before.State.Update.FromVersion
		fmt.Fprintf(e.stdout, "abandoning %s on trial: posd restarts on slot %s\n", before.State.Update.Version, before.State.Update.From)
	} else {
		after, err := getFirmware(ctx, c)
		if err != nil || after.State.Update == nil {
			fmt.Fprintln(e.stdout, "rolling back: `posctl firmware status` shows the outcome")
			return nil
		}
		u := after.State.Update
		id, target = u.ID, u.Version
		fmt.Fprintf(e.stdout, "rolling back from %s to %s (slot %s): waits for a quiet counter, restarts posd and checks its health; sales pause until it commits\n", u.FromVersion, u.Version, u.To)
	}
	if *wait <= 0 {
		return nil
	}
	deadline := time.Now().Add(*wait)
	restarting := false
	for time.Now().Before(deadline) {
		s, err := getFirmware(ctx, c)
		switch {
		case err != nil:
			if !restarting {
				fmt.Fprintln(e.stdout, "posd is restarting…")
				restarting = true
			}
		case s.State.Last != nil && s.State.Last.ID == id && s.State.Update == nil:
			l := s.State.Last
			ok := l.Result == firmware.ResultSucceeded && s.Running == target
			if trial {
				ok = l.Result == firmware.ResultFailed && s.Running != l.Version && (target == "" || s.Running == target)
			}
			if ok {
				fmt.Fprintf(e.stdout, "rolled back: the terminal runs %s\n", s.Running)
				return nil
			}
			fmt.Fprintf(e.stdout, "the rollback did not complete: %s: %s; the terminal runs %s\n", l.Result, l.Reason, s.Running)
			return exitCode(1)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return fmt.Errorf("the rollback did not end within %s; `posctl firmware status` shows where it is", *wait)
}

// loadConfig reads posd's configuration file for the commands that run beside posd.
func loadConfig(path string) (config.Config, error) {
	if path == "" {
		return config.Config{}, errors.New("-config FILE is required (posd's configuration file)")
	}
	return config.Load(path)
}

// cmdFirmwareBoot is systemd's ExecStartPre for posd: it finishes what an
// interrupted update left and counts a trial's starts, rolling back a new version
// that keeps failing. It must run while posd does not.
func cmdFirmwareBoot(ctx context.Context, e env) error {
	fs := flag.NewFlagSet("firmware boot", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	cfgFile := fs.String("config", "", "posd's configuration `file`")
	if err := fs.Parse(e.args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgFile)
	if err != nil {
		return err
	}
	if cfg.Firmware.SlotsDir == "" {
		return nil // updates are off: nothing to do
	}
	m, _, err := daemon.OpenFirmware(cfg, slog.New(slog.NewTextHandler(e.stderr, nil)))
	if err != nil {
		return err
	}
	a, err := m.Boot(ctx)
	if err != nil {
		return err
	}
	switch {
	case a.RolledBack != "":
		fmt.Fprintln(e.stdout, "firmware rolled back:", a.RolledBack)
	case a.Trial:
		u, _ := m.Trial(m.State().Update.Version)
		fmt.Fprintf(e.stdout, "firmware %s on trial: start %d\n", u.Version, u.Attempts)
	}
	if a.Reboot {
		fmt.Fprintln(e.stdout, "rebooting to reach the right slot")
		return m.Backend().Restart(ctx, a.Trial)
	}
	return nil
}

// cmdFirmwareInit sets up the files backend's slots with a posd binary in slot a.
// It is idempotent and what the package's postinst runs on every install and
// upgrade: on slots already set up it puts the packaged posd into the running slot
// (the service's restart runs it) unless an update is in progress or the terminal
// runs a newer version than the package's (one a firmware update installed), and
// never below the floor.
func cmdFirmwareInit(ctx context.Context, e env) error {
	fs := flag.NewFlagSet("firmware init", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	cfgFile := fs.String("config", "", "posd's configuration `file`")
	posd := fs.String("posd", "", "the posd `binary` to put in slot a")
	slotsDir := fs.String("slots", "", "the slots `directory` when the configuration has no firmware.slots_dir (an older configuration kept on upgrade)")
	if err := fs.Parse(e.args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgFile)
	if err != nil {
		return err
	}
	if cfg.Firmware.SlotsDir == "" {
		cfg.Firmware.SlotsDir = *slotsDir
	}
	if cfg.Firmware.SlotsDir == "" || cfg.Firmware.Backend != "files" || *posd == "" {
		return errors.New("firmware init needs firmware.slots_dir (or -slots DIR) with the files backend and -posd BINARY")
	}
	files := firmware.Files{Dir: cfg.Firmware.SlotsDir}
	run, err := files.Running()
	if err != nil {
		if err := files.Init(*posd); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "slots set up in %s: slot a runs %s; the service runs %s/current/posd\n", cfg.Firmware.SlotsDir, *posd, cfg.Firmware.SlotsDir)
		return nil
	}
	// Set up already: an upgrade of the package.
	m, _, err := daemon.OpenFirmware(cfg, nil)
	if err != nil {
		return err
	}
	st := m.State()
	if u := st.Update; u != nil {
		fmt.Fprintf(e.stdout, "firmware update %s to %s is in step %s: slot %s is left as it is; run `posctl firmware init -config %s -posd %s` again once it ended\n", u.ID, u.Version, u.Step, run, *cfgFile, *posd)
		return nil
	}
	pkg, err := binaryVersion(ctx, *posd)
	if err != nil {
		return err
	}
	switch {
	case firmware.CompareVersions(pkg, st.Floor) < 0:
		fmt.Fprintf(e.stdout, "the packaged posd %s is below the terminal's floor %s: slot %s keeps its posd\n", pkg, st.Floor, run)
		return nil
	case st.Version != "" && firmware.CompareVersions(pkg, st.Version) < 0:
		fmt.Fprintf(e.stdout, "the terminal runs %s, newer than the packaged posd %s: slot %s keeps its posd (a package never downgrades a terminal; flash an older signed file to go back)\n", st.Version, pkg, run)
		return nil
	}
	same, err := sameFile(*posd, filepath.Join(cfg.Firmware.SlotsDir, run, "posd"))
	if err != nil {
		return err
	}
	if same {
		fmt.Fprintf(e.stdout, "slot %s already runs the packaged posd %s\n", run, pkg)
		return nil
	}
	if err := files.Replace(run, *posd); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "slot %s now holds the packaged posd %s (was %s); restart posd to run it\n", run, pkg, orNone(st.Version))
	return nil
}

// binaryVersion asks a posd binary for its version (`posd -version`).
func binaryVersion(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-version").Output()
	if err != nil {
		return "", fmt.Errorf("%s -version: %w", bin, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 || f[0] != "posd" {
		return "", fmt.Errorf("%s -version printed %q, not \"posd VERSION\"", bin, out)
	}
	return f[1], nil
}

func sameFile(a, b string) (bool, error) {
	x, err := os.ReadFile(a)
	if err != nil {
		return false, err
	}
	y, err := os.ReadFile(b)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return bytes.Equal(x, y), nil
}

func orNone(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// flashResult is posd's answer to an upload.
type flashResult struct {
	ID         string             `json:"id"`
	Running    string             `json:"running"`
	Version    string             `json:"version"`
	MinVersion string             `json:"min_version"`
	Floor      string             `json:"floor"`
	Arch       string             `json:"arch"`
	Board      string             `json:"board"`
	KeyID      string             `json:"key_id"`
	Payloads   []firmware.Payload `json:"payloads"`
	Slot       string             `json:"slot"`
}

// cmdFlash is `posctl flash FILE.wlf`: posd verifies the file and says what will
// change; after a yes it installs, restarts and checks health, and posctl follows
// until the new version commits or rolls back.
func cmdFlash(ctx context.Context, e env) error {
	fs := flag.NewFlagSet("flash", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	af := addAPIFlags(fs)
	yes := fs.Bool("yes", false, "do not ask before installing")
	wait := fs.Duration("wait", 15*time.Minute, "how long to follow the update")
	args, err := parseInterspersed(fs, e.args)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		fmt.Fprintln(e.stderr, "usage: posctl flash [-yes] [-api URL] FILE.wlf")
		return errUsage
	}
	file := args[0]
	c, err := af.client()
	if err != nil {
		return err
	}
	check, err := upload(ctx, c, file, true, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "terminal runs  %s\n", check.Running)
	fmt.Fprintf(e.stdout, "this file      %s for %s/%s", check.Version, check.Arch, check.Board)
	if check.MinVersion != "" {
		fmt.Fprintf(e.stdout, ", min_version %s (the terminal will refuse anything older afterwards)", check.MinVersion)
	}
	fmt.Fprintf(e.stdout, "\nsigned by      key %s (trusted by the terminal)\n", check.KeyID)
	for _, p := range check.Payloads {
		fmt.Fprintf(e.stdout, "payload        %s, %s, sha256 %s…\n", p.Name, sizeText(p.Size), p.SHA256[:12])
	}
	fmt.Fprintf(e.stdout, "it will        wait for a quiet counter, install into slot %s, restart posd and\n", check.Slot)
	fmt.Fprintln(e.stdout, "               check its health; sales pause until it commits, a failure rolls back")
	if firmware.CompareVersions(check.Version, check.Running) <= 0 {
		fmt.Fprintf(e.stdout, "note           %s is not newer than %s\n", check.Version, check.Running)
	}
	if !*yes {
		fmt.Fprint(e.stdout, "Install? [y/N] ")
		line, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			fmt.Fprintln(e.stdout, "nothing changed")
			return exitCode(1)
		}
	}
	lastPct := int64(-1)
	res, err := upload(ctx, c, file, false, func(done, total int64) {
		if total > 0 && done*100/total != lastPct { // redraw only when the percentage moves
			lastPct = done * 100 / total
			bar(e.stderr, "upload ", done, total)
		}
	})
	fmt.Fprintln(e.stderr)
	if err != nil {
		return err
	}
	return follow(ctx, c, res.ID, res.Version, *wait, e)
}

type countingReader struct {
	r     io.Reader
	done  int64
	total int64
	f     func(done, total int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.done += int64(n)
	if c.f != nil {
		c.f(c.done, c.total)
	}
	return n, err
}

func upload(ctx context.Context, c *apiClient, file string, check bool, progress func(done, total int64)) (flashResult, error) {
	var res flashResult
	f, err := os.Open(file)
	if err != nil {
		return res, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return res, err
	}
	path := "/v1/firmware"
	if check {
		path += "?check=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, &countingReader{r: f, total: info.Size(), f: progress})
	if err != nil {
		return res, err
	}
	req.ContentLength = info.Size()
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/octet-stream")
	hc := *c.http
	hc.Timeout = 15 * time.Minute
	resp, err := hc.Do(req)
	if err != nil {
		return res, fmt.Errorf("posd's API at %s does not answer (is posd running?): %w", c.base, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch resp.StatusCode {
	case http.StatusOK, http.StatusAccepted:
	case http.StatusUnprocessableEntity:
		return res, fmt.Errorf("the terminal refuses this file, nothing changed: %s", apiMessage(raw))
	default:
		return res, fmt.Errorf("posd answered %d: %s", resp.StatusCode, apiMessage(raw))
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return res, fmt.Errorf("posd answered non-JSON: %w", err)
	}
	return res, nil
}

// follow polls the firmware state until update id ends, through posd's restarts.
func follow(ctx context.Context, c *apiClient, id, version string, wait time.Duration, e env) error {
	deadline := time.Now().Add(wait)
	lastLine := ""
	say := func(s string) {
		if s != lastLine {
			fmt.Fprintln(e.stdout, s)
			lastLine = s
		}
	}
	for time.Now().Before(deadline) {
		s, err := getFirmware(ctx, c)
		switch {
		case err != nil:
			say("posd is restarting…")
		case s.State.Update != nil && s.State.Update.ID == id:
			u := s.State.Update
			switch {
			case s.Updating != nil && s.Updating.Step == "install":
				bar(e.stderr, "install", int64(s.Updating.Percent), 100)
			case u.Step == firmware.StepVerifyNew && s.Running == version:
				say(fmt.Sprintf("%s runs on trial: health check (broker, scanner, printer)…", version))
			case s.Updating != nil && s.Updating.Step == "waiting":
				say("waiting for a quiet counter: " + s.Updating.Reason)
			default:
				say("step " + string(u.Step) + "…")
			}
		case s.State.Last != nil && s.State.Last.ID == id:
			l := s.State.Last
			if l.Result == firmware.ResultSucceeded {
				say(fmt.Sprintf("committed: the terminal runs %s", l.Version))
				return nil
			}
			say(fmt.Sprintf("%s: %s; the terminal runs %s", l.Result, l.Reason, s.Running))
			return exitCode(1)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return fmt.Errorf("the update did not end within %s; `posctl firmware status` shows where it is", wait)
}

// bar draws a progress bar on one line.
func bar(w io.Writer, label string, done, total int64) {
	if total <= 0 {
		return
	}
	const width = 30
	n := int(done * width / total)
	fmt.Fprintf(w, "\r%s [%s%s] %3d%%", label, strings.Repeat("#", n), strings.Repeat("-", width-n), done*100/total)
}

func sizeText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
