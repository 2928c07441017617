package main

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walletless/walletless/auth"
	"github.com/walletless/walletless/store"
)

// readBundle returns the bundle's files by name.
func readBundle(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = string(b)
	}
}

// TestSupportBundleHasNoSecrets builds a bundle from a terminal whose config, log and
// status hold a payment code, the API token, the broker password and a private key:
// none of them is in the tarball, and the status, config and store check are.
func TestSupportBundleHasNoSecrets(t *testing.T) {
	t.Setenv("WALLETLESS_TOKEN", "")
	srv, dir, _ := fakePosd(t, false)
	token, err := auth.ReadTokenFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	const (
		code     = "281234567890123456"
		cpm      = "hQVDUFYwMWEaTwegAAAAQxAQUAtWaXNhIENyZWRpdFcTQ3MgBDkjcbQ"
		password = "hunter2-broker-pass"
		pin      = "4711"
	)
	key := "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----"
	st, err := store.Open(filepath.Join(dir, "posd.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	cfg := filepath.Join(dir, "posd.json")
	os.WriteFile(cfg, []byte(`{"version": 1, "device_id": "till-9", "mqtt": {"broker": "ssl://b:8883", "password": "`+password+`", "key_file": "/etc/walletless/device.key"}, "page": {"pin": "`+pin+`"}}`), 0o600)
	logf := filepath.Join(dir, "posd.log")
	os.WriteFile(logf, []byte("level=INFO msg=\"posd running\"\nlevel=ERROR msg=leak code="+code+" cpm="+cpm+" token="+token+" pw="+password+"\n"+key+"\n"), 0o600)

	out := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if c, o, e := posctl(t, "support-bundle", "-o", out, "-api", srv.URL, "-data", dir, "-config", cfg, "-log", logf); c != 0 {
		t.Fatalf("support-bundle: exit %d %s %s", c, o, e)
	}
	files := readBundle(t, out)
	var all strings.Builder
	for name, body := range files {
		all.WriteString(name + "\n" + body)
	}
	for _, secret := range []string{code, cpm, token, password, "MC4CAQAwBQYDK2VwBCIEIJ", pin} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("the bundle holds %q", secret)
		}
	}
	for name, want := range map[string]string{
		"support/status.json":     `"till-9"`,
		"support/config.json":     `"/etc/walletless/device.key"`,
		"support/store-check.txt": ": ok",
		"support/logs.txt":        "posd running",
		"support/versions.txt":    "posctl ",
	} {
		if !strings.Contains(files[name], want) {
			t.Errorf("%s lacks %q:\n%s", name, want, files[name])
		}
	}
	if !strings.Contains(files["support/logs.txt"], "…3456") {
		t.Errorf("the masked code keeps its last 4: %s", files["support/logs.txt"])
	}
	// An existing file is not overwritten.
	if c, _, _ := posctl(t, "support-bundle", "-o", out, "-api", srv.URL, "-data", dir, "-config", cfg, "-log", logf); c == 0 {
		t.Error("an existing bundle was overwritten")
	}
}

// FuzzScrub: whatever the text, a planted code or token never survives scrubbing.
func FuzzScrub(f *testing.F) {
	f.Add("before ", " after")
	f.Add("", "")
	f.Add("12", "34")
	f.Fuzz(func(t *testing.T, a, b string) {
		var s scrubber
		for _, secret := range []string{"281234567890123456", "wlt_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"} {
			out := string(s.scrub([]byte(a + secret + b)))
			if strings.Contains(out, secret) {
				t.Fatalf("%q survived in %q", secret, out)
			}
		}
	})
}
