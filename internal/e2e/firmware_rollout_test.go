package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/firmware"
)

// rangeLog serves one file with Range support (http.ServeContent) and cuts the
// first cuts responses after half their body; it records every Range header.
type rangeLog struct {
	path string
	mu   sync.Mutex
	got  []string // guarded by mu
	cuts int      // guarded by mu
}

func (s *rangeLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if r.Method == http.MethodGet {
		s.got = append(s.got, r.Header.Get("Range"))
	}
	cut := r.Method == http.MethodGet && s.cuts > 0
	if cut {
		s.cuts--
	}
	s.mu.Unlock()
	f, err := os.Open(s.path)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	defer f.Close()
	if !cut {
		info, _ := f.Stat()
		http.ServeContent(w, r, filepath.Base(s.path), info.ModTime(), f)
		return
	}
	// Send the head of what was asked for, then drop the connection.
	var b bytes.Buffer
	rec := httptest.NewRecorder()
	info, _ := f.Stat()
	http.ServeContent(rec, r, filepath.Base(s.path), info.ModTime(), f)
	b.Write(rec.Body.Bytes())
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(b.Bytes()[:b.Len()/2])
	w.(http.Flusher).Flush()
	if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
		conn.Close()
	}
}

func (s *rangeLog) ranges() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

// TestFirmwareRolloutToGroupWithCanary: a manager rolls 2.0.0 out to group seoul
// (two terminals running real posd 1.0.0 under the systemd-like supervisor) with
// posfleet firmware rollout -canary 1; the file server cuts the first two downloads
// mid-way, and the canary's download resumes by Range. Both terminals commit, and
// posfleet firmware status shows it.
func TestFirmwareRolloutToGroupWithCanary(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dir := t.TempDir()
	bins := build(t, dir, "posctl", "posfleet")
	v1, v2 := buildPosd(t, dir, "1.0.0"), buildPosd(t, dir, "2.0.0")
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	startGateways(t, b.URL(), 1)

	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "posfleet.key")
	kt, _ := priv.MarshalText()
	os.WriteFile(keyFile, append(kt, '\n'), 0o600)
	wlf := packWLF(t, priv, filepath.Join(dir, "posd-2.0.0.wlf"), "2.0.0", "1.0.0", map[string]string{"posd": v2})
	files := &rangeLog{path: wlf, cuts: 2}
	srv := httptest.NewServer(files)
	defer srv.Close()

	apis := map[string]string{}
	for _, dev := range []string{"seoul-1", "seoul-2"} {
		root := filepath.Join(dir, dev)
		slots, data := filepath.Join(root, "slots"), filepath.Join(root, "data")
		if err := (firmware.Files{Dir: slots}).Init(v1); err != nil {
			t.Fatal(err)
		}
		apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		apis[dev] = "http://" + apiAddr
		registerAPI(apis[dev], data)
		cfg := map[string]any{
			"version": 1, "device_id": dev, "data_dir": data,
			"api":     map[string]any{"addr": apiAddr},
			"mqtt":    map[string]any{"broker": b.URL(), "heartbeat": "1s"},
			"scanner": map[string]any{"source": "stdin"},
			"fleet":   map[string]any{"trusted_keys": []string{pub.String()}, "groups": []string{"seoul"}},
			"firmware": map[string]any{"slots_dir": slots, "board": "counter-test", "verify_timeout": "20s",
				"max_attempts": 3, "max_wait": "1m"},
		}
		cfgFile := filepath.Join(root, "posd.json")
		cb, _ := json.Marshal(cfg)
		os.WriteFile(cfgFile, cb, 0o600)
		startSupervisor(t, bins["posctl"], slots, cfgFile)
	}
	for dev, api := range apis {
		waitFor(t, dev+" runs 1.0.0 online", 90*time.Second, func() bool {
			code, st := getJSONQuiet(api + "/v1/status")
			return code == 200 && st["version"] == "1.0.0" && st["online"] == true
		})
	}

	cmd := exec.Command(bins["posfleet"], "firmware", "rollout", "-broker", b.URL(), "-key", keyFile,
		"-group", "seoul", "-url", srv.URL+"/posd-2.0.0.wlf", "-canary", "1", "-wait", "2s", "-timeout", "3m", wlf)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "canaries committed") || !strings.Contains(string(out), "2 of 2 devices run 2.0.0") {
		t.Fatalf("posfleet firmware rollout: %v\n%s", err, out)
	}
	t.Logf("posfleet firmware rollout:\n%s", out)
	for dev, api := range apis {
		waitFor(t, dev+" runs 2.0.0", 60*time.Second, func() bool {
			code, st := getJSONQuiet(api + "/v1/status")
			return code == 200 && st["version"] == "2.0.0"
		})
	}
	// The first two GETs were cut mid-way: the second and third asked only for the
	// rest (Range), not for the whole file again.
	r := files.ranges()
	if len(r) < 4 || r[0] != "" || !strings.HasPrefix(r[1], "bytes=") || !strings.HasPrefix(r[2], "bytes=") || r[1] == r[2] {
		t.Errorf("Range headers of the downloads: %q", r)
	}
	st, err := exec.Command(bins["posfleet"], "firmware", "status", "-broker", b.URL()).CombinedOutput()
	if err != nil || strings.Count(string(st), "SUCCEEDED") != 2 {
		t.Errorf("posfleet firmware status: %v\n%s", err, st)
	}
	t.Logf("posfleet firmware status:\n%s", st)
}

func getJSONQuiet(url string) (int, map[string]any) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}
