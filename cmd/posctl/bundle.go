package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/walletless/walletless/store"
)

// cmdSupportBundle writes a tar.gz for support: posd's status, its configuration
// with secrets masked, recent logs, a store check, versions. Every file in it goes
// through scrub, so no full payment code, token or key leaves the terminal.
func cmdSupportBundle(ctx context.Context, e env) error {
	fs := flag.NewFlagSet("support-bundle", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	out := fs.String("o", "", "the tar.gz to write (required; must not exist)")
	cfgFile := fs.String("config", "/etc/walletless/posd.json", "posd's configuration file")
	logFile := fs.String("log", "", "posd's log file, when posd does not log to the journal (journalctl -u posd is used when present)")
	lines := fs.Int("lines", 2000, "how many recent log lines")
	af := addAPIFlags(fs)
	if err := fs.Parse(e.args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(e.stderr, "usage: posctl support-bundle -o FILE.tar.gz [-config FILE] [-data DIR] [-log FILE] [-api URL]")
		return errUsage
	}
	data := *af.data
	if data == "" {
		data = defaultDataDir
	}
	var s scrubber
	files := map[string][]byte{}

	// The configuration, with secret values masked (and remembered for scrubbing).
	if raw, err := os.ReadFile(*cfgFile); err != nil {
		files["config.json"] = []byte(fmt.Sprintf("could not read %s: %v\n", *cfgFile, err))
	} else {
		files["config.json"] = s.maskConfig(raw)
	}
	// Secrets the terminal holds, to be sure none slips through a log line.
	if tok, err := af.token(); err == nil {
		s.add(tok)
	}

	// Status through the API.
	if c, err := af.client(); err != nil {
		files["status.json"] = []byte(fmt.Sprintf("no status: %v\n", err))
	} else if code, body, err := c.call(ctx, "GET", "/v1/status", nil); err != nil {
		files["status.json"] = []byte(fmt.Sprintf("no status: %v\n", err))
	} else {
		files["status.json"] = append([]byte(fmt.Sprintf("HTTP %d\n", code)), body...)
	}

	// Recent logs: the journal when there is one, else posd's log file.
	files["logs.txt"] = recentLogs(ctx, *logFile, *lines)

	// The store: a full check needs posd stopped (the file lock).
	files["store-check.txt"] = storeCheck(filepath.Join(data, "posd.db"))

	// Versions.
	var v strings.Builder
	fmt.Fprintf(&v, "posctl %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if p, err := exec.LookPath("posd"); err == nil {
		o, _ := exec.CommandContext(ctx, p, "-version").CombinedOutput()
		fmt.Fprintf(&v, "%s", o)
	}
	if os, err := os.ReadFile("/etc/os-release"); err == nil {
		v.Write(os)
	}
	if o, err := exec.CommandContext(ctx, "uname", "-a").Output(); err == nil {
		v.Write(o)
	}
	files["versions.txt"] = []byte(v.String())

	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	now := time.Now()
	for _, name := range []string{"versions.txt", "status.json", "config.json", "store-check.txt", "logs.txt"} {
		body := s.scrub(files[name])
		if err := tw.WriteHeader(&tar.Header{Name: "support/" + name, Mode: 0o600, Size: int64(len(body)), ModTime: now}); err != nil {
			f.Close()
			return err
		}
		if _, err := tw.Write(body); err != nil {
			f.Close()
			return err
		}
	}
	if err := errors.Join(tw.Close(), gz.Close(), f.Sync(), f.Close()); err != nil {
		os.Remove(*out)
		return err
	}
	fmt.Fprintf(e.stdout, "support bundle written to %s (secrets masked; check it before you send it)\n", *out)
	return nil
}

// recentLogs returns posd's recent log lines.
func recentLogs(ctx context.Context, logFile string, lines int) []byte {
	if logFile == "" {
		if p, err := exec.LookPath("journalctl"); err == nil {
			o, err := exec.CommandContext(ctx, p, "-u", "posd", "-n", fmt.Sprint(lines), "--no-pager", "-o", "short-iso").CombinedOutput()
			if err == nil {
				return o
			}
			return append([]byte(fmt.Sprintf("journalctl failed: %v\n", err)), o...)
		}
		return []byte("no journalctl here; give -log with posd's log file\n")
	}
	raw, err := os.ReadFile(logFile)
	if err != nil {
		return []byte(fmt.Sprintf("could not read %s: %v\n", logFile, err))
	}
	all := strings.SplitAfter(string(raw), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return []byte(strings.Join(all, ""))
}

// storeCheck checks the database file read-only when posd is stopped; while posd
// runs it holds the file lock and the check says so.
func storeCheck(path string) []byte {
	st, err := store.Open(path, store.Options{Timeout: time.Second, ReadOnly: true})
	if errors.Is(err, store.ErrLocked) {
		return []byte(fmt.Sprintf("%s is in use by posd: not checked here (posd verifies it at every start; stop posd and run posctl store check for a full check)\n", path))
	}
	if err != nil {
		return []byte(fmt.Sprintf("%s: %v\n", path, err))
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		return []byte(fmt.Sprintf("%s: check FAILED: %v\n", path, err))
	}
	depth, _, _ := st.OutboxStats()
	return []byte(fmt.Sprintf("%s: ok (outbox depth %d)\n", path, depth))
}

// scrubber removes secrets from the bundle's text: the exact secret values it was
// told about, and anything shaped like a token, a payment code, a key or a long
// base64 blob.
type scrubber struct{ exact []string }

func (s *scrubber) add(v string) {
	if v = strings.TrimSpace(v); len(v) >= 4 {
		s.exact = append(s.exact, v)
	}
}

var (
	reToken  = regexp.MustCompile(`wlt_[A-Za-z0-9_\-]{6,}`)
	reDigits = regexp.MustCompile(`[0-9]{12,}`)
	reBase64 = regexp.MustCompile(`[A-Za-z0-9+/_\-]{40,}={0,2}`)
	rePEMKey = regexp.MustCompile(`(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----`)
)

func (s *scrubber) scrub(b []byte) []byte {
	t := string(b)
	for _, v := range s.exact {
		t = strings.ReplaceAll(t, v, "[masked]")
	}
	t = rePEMKey.ReplaceAllString(t, "[private key removed]")
	t = reToken.ReplaceAllString(t, "wlt_[masked]")
	t = reDigits.ReplaceAllStringFunc(t, func(d string) string { return "[masked …" + d[len(d)-4:] + "]" })
	t = reBase64.ReplaceAllString(t, "[masked base64]")
	return []byte(t)
}

// secretKey says whether a configuration key holds a secret value.
func secretKey(k string) bool {
	k = strings.ToLower(k)
	if strings.HasSuffix(k, "_file") || strings.HasSuffix(k, "_files") {
		return false // a path, not the secret
	}
	for _, w := range []string{"password", "secret", "token", "pin", "private"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// maskConfig replaces secret values in a JSON configuration (remembering them for
// scrub); a file that is not JSON is kept only as a note.
func (s *scrubber) maskConfig(raw []byte) []byte {
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return []byte(fmt.Sprintf("the configuration is not valid JSON (%v); not included\n", err))
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				if secretKey(k) {
					if str, ok := val.(string); ok {
						s.add(str)
					}
					x[k] = "[masked]"
					continue
				}
				x[k] = walk(val)
			}
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
		}
		return v
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	_ = enc.Encode(walk(doc))
	return buf.Bytes()
}
