package pkgtest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/walletless/walletless/config"
)

const root = "../.."

// need finds a tool or fails (in CI) or skips (elsewhere) saying how to install it.
func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing: apt-get install %s", tool, pkg)
	}
	t.Skipf("%s is missing: apt-get install %s", tool, pkg)
	return ""
}

// TestUnitVerifies runs systemd-analyze verify on deploy/posd.service. verify
// checks that ExecStart= is executable, so the unit is checked with the path of a
// freshly built posd in place of /usr/bin/posd.
func TestUnitVerifies(t *testing.T) {
	analyze := need(t, "systemd-analyze", "systemd")
	unit, err := os.ReadFile(filepath.Join(root, "deploy", "posd.service"))
	if err != nil {
		t.Fatal(err)
	}
	const (
		bootLine  = "ExecStartPre=/usr/bin/posctl firmware boot -config /etc/walletless/posd.json"
		startLine = "ExecStart=/var/lib/walletless/slots/current/posd -config /etc/walletless/posd.json"
	)
	for _, want := range []string{"Type=notify", "WatchdogSec=", "Restart=always", "ProtectSystem=strict",
		"ReadWritePaths=/var/lib/walletless", "NoNewPrivileges=yes", "SupplementaryGroups=dialout lp input video gpio",
		bootLine, startLine} {
		if !strings.Contains(string(unit), "\n"+want) {
			t.Errorf("posd.service lacks %q", want)
		}
	}
	// The slots it runs from are the packaged configuration's.
	c, err := config.Load(filepath.Join(root, "deploy", "posd.json"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Firmware.SlotsDir != "/var/lib/walletless/slots" || c.Firmware.Backend != "files" {
		t.Errorf("the packaged firmware section: slots_dir %q backend %q", c.Firmware.SlotsDir, c.Firmware.Backend)
	}
	dir := t.TempDir()
	bins := map[string]string{}
	for _, name := range []string{"posd", "posctl"} {
		bins[name] = filepath.Join(dir, name)
		build := exec.Command("go", "build", "-o", bins[name], "./cmd/"+name)
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	local := strings.Replace(string(unit), "ExecStartPre=/usr/bin/posctl ", "ExecStartPre="+bins["posctl"]+" ", 1)
	local = strings.Replace(local, "ExecStart=/var/lib/walletless/slots/current/posd ", "ExecStart="+bins["posd"]+" ", 1)
	path := filepath.Join(dir, "posd.service")
	if err := os.WriteFile(path, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestPackagedConfig checks the conffile parses and uses the udev rules' names.
func TestPackagedConfig(t *testing.T) {
	c, err := config.Load(filepath.Join(root, "deploy", "posd.json"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Scanner.Source != "/dev/walletless/scanner" || c.Printer.Target != "/dev/walletless/printer" {
		t.Errorf("scanner %q, printer %q: want the udev names", c.Scanner.Source, c.Printer.Target)
	}
	if c.DataDir != "/var/lib/walletless" {
		t.Errorf("data_dir %q", c.DataDir)
	}
	rules, err := os.ReadFile(filepath.Join(root, "deploy", "60-walletless.rules"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`SYMLINK+="walletless/scanner"`, `SYMLINK+="walletless/printer"`} {
		if !strings.Contains(string(rules), want) {
			t.Errorf("udev rules lack %s", want)
		}
	}
}

// TestDebLintian builds the amd64 .deb (make lintian) and fails on a lintian error;
// then checks the package's files, modes and owners.
func TestDebLintian(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a .deb; not with -short")
	}
	need(t, "lintian", "lintian")
	need(t, "dpkg-deb", "dpkg")
	dist := t.TempDir()
	cmd := exec.Command("make", "lintian", "DIST="+dist)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make lintian: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	debs, _ := filepath.Glob(filepath.Join(dist, "walletless_*_amd64.deb"))
	if len(debs) != 1 {
		t.Fatalf("want one amd64 .deb in %s, got %v", dist, debs)
	}
	list, err := exec.Command("dpkg-deb", "-c", debs[0]).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb -c: %v\n%s", err, list)
	}
	for _, want := range []string{
		"-rwxr-xr-x root/root", "./usr/bin/posd",
		"./usr/bin/posctl", "./usr/bin/posfleet",
		"./usr/lib/systemd/system/posd.service",
		"./usr/lib/udev/rules.d/60-walletless.rules",
		"-rw-r----- root/walletless", "./etc/walletless/posd.json",
		"drwx------ walletless/walletless", "./var/lib/walletless/",
	} {
		if !strings.Contains(string(list), want) {
			t.Errorf("the .deb lacks %q:\n%s", want, list)
		}
	}
	conf, err := exec.Command("dpkg-deb", "-I", debs[0], "conffiles").CombinedOutput()
	if err != nil || !strings.Contains(string(conf), "/etc/walletless/posd.json") {
		t.Errorf("posd.json is not a conffile: %v\n%s", err, conf)
	}
}

// TestGrafanaDashboard checks the example dashboard is valid JSON and queries only
// metrics posd defines (daemon/metrics.go).
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "daemon", "metrics.go"))
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`walletless_[a-z_]+`)
	n := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
				if !strings.Contains(string(src), `"`+base+`"`) {
					t.Errorf("panel %q queries %s, which posd does not export", p.Title, m)
				}
				n++
			}
		}
	}
	if n < 8 {
		t.Errorf("only %d metric queries in the dashboard", n)
	}
}
