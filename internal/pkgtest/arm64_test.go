package pkgtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"image"
	_ "image/png" // posfleet provision's QR
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/walletless/walletless/pairing"
)

// TestArm64InstallAndSell is issue 17's "done when" on arm64, in a container instead
// of a Pi: "apt install ./walletless_*.deb, plug in, scan the pairing QR, and the
// terminal sells". It makes a fleet signing key (posfleet keygen), builds the arm64
// .deb with that key baked in (make deb DEB_ARCHES=arm64 FLEET_PUB=…), makes a fresh Debian
// bookworm arm64 root with debootstrap --foreign and a second stage under
// qemu-user-static, installs the package there with apt-get (apt resolves the
// dependencies) and checks what scripts/deb-chroot.sh checks, all through
// `scripts/deb-chroot.sh --arch arm64`.
//
// Then, in that root, the arm64 posd runs under qemu as the installed unit says (its
// ExecStartPre= and ExecStart= lines, User=, Group=, SupplementaryGroups= and UMask=,
// read from the installed posd.service: systemd does not run in a chroot), with the
// packaged config (no device id) and /var/lib/walletless. The scanner is a real
// pseudo terminal bind-mounted on /dev/walletless/scanner (mode 0660 root:dialout, as
// the udev rules make it). On the host, the fleet's side: a test CA
// (posfleet provision -init-ca), mosquitto on 127.0.0.1 with a mutual-TLS listener
// for terminals (use_identity_as_username) and a plain one for posgw, posgw, and
// posfleet enroll-server. The terminal must say it is unpaired; posfleet provision
// makes its pairing QR (PNG), whose text, decoded from the PNG, is written to the
// scanner; posd must verify it, enroll, connect over mutual TLS and say it is
// selling as the QR's device id. Then a sale is made through posd's HTTP API with the
// manager token posd wrote and paid by writing a payment code to the scanner: posgw
// must approve it and have it in its ledger, and the receipt must be printed.
//
// Two settings of the installed /etc/walletless/posd.json are changed for this
// shared test machine, nothing else: api.addr (a free port instead of 8080) and the
// printer (the emulator, into /var/lib/walletless/receipts: no USB printer here).
//
// It needs root (debootstrap, chroot, mount), debootstrap, qemu-user-static,
// mosquitto and the network to deb.debian.org; it takes several minutes and prints
// how long each step took.
func TestArm64InstallAndSell(t *testing.T) {
	if testing.Short() {
		t.Skip("bootstraps a Debian arm64 root under qemu (minutes); not with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	needRoot(t)
	need(t, "debootstrap", "debootstrap")
	need(t, "chroot", "coreutils")
	if runtime.GOARCH != "arm64" {
		need(t, "qemu-aarch64-static", "qemu-user-static")
	}
	mosquitto := need(t, "mosquitto", "mosquitto")
	// A test binary that times out panics without running any cleanup, which would
	// leave the root's mounts and processes behind: this test ends itself a minute
	// before go test's deadline, and does not start without the time it needs.
	end := time.Now().Add(14 * time.Minute)
	if dl, ok := t.Deadline(); ok {
		if left := time.Until(dl) - time.Minute; left < 12*time.Minute {
			msg := fmt.Sprintf("needs about 12 minutes and %v are left: run it with go test -timeout 20m (make test and make deb-test do)", left.Round(time.Second))
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		if dl.Add(-time.Minute).Before(end) {
			end = dl.Add(-time.Minute)
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), end)
	defer cancel()

	work, err := os.MkdirTemp("", "walletless-arm64.")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(work, "root")
	// Registered first, so it runs last: after every process is stopped and every
	// mount this test made is gone.
	t.Cleanup(func() { removeRoot(t, work, root) })
	var times []string
	step := func(what string, start time.Time) {
		d := time.Since(start).Round(100 * time.Millisecond)
		times = append(times, fmt.Sprintf("%s %.1f s", what, d.Seconds()))
		t.Logf("time: %s %v", what, d)
	}
	defer func() { t.Logf("times: %s", strings.Join(times, "; ")) }()

	// 1. The fleet's key, the arm64 package that trusts it, the host's posgw and
	// posfleet.
	start := time.Now()
	posgw, posfleet := filepath.Join(work, "posgw"), filepath.Join(work, "posfleet")
	for bin, pkg := range map[string]string{posgw: "./cmd/posgw", posfleet: "./cmd/posfleet"} {
		if out, err := run(ctx, root0(), "go", "build", "-o", bin, pkg); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	fleet := func(args ...string) string {
		t.Helper()
		out, err := run(ctx, "", posfleet, args...)
		if err != nil {
			t.Fatalf("posfleet %s: %v\n%s", args[0], err, out)
		}
		return out
	}
	keyDir := filepath.Join(work, "fleet-key")
	fleet("keygen", "-o", keyDir)
	dist := filepath.Join(work, "dist")
	if out, err := run(ctx, root0(), "make", "deb", "DEB_ARCHES=arm64", "DIST="+dist, "FLEET_PUB="+filepath.Join(keyDir, "posfleet.pub")); err != nil {
		t.Fatalf("make deb DEB_ARCHES=arm64: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "walletless_*_arm64.deb"))
	if len(debs) != 1 {
		t.Fatalf("want one arm64 .deb in %s, got %v", dist, debs)
	}
	step("make deb (arm64, fleet key baked in), posgw and posfleet", start)

	// 2. A fresh arm64 root, the package installed with apt, the checks.
	out, err := run(ctx, root0(), "bash", "scripts/deb-chroot.sh", "--arch", "arm64", "--keep", debs[0], root)
	t.Logf("scripts/deb-chroot.sh --arch arm64:\n%s", out)
	if err != nil {
		t.Fatalf("scripts/deb-chroot.sh --arch arm64: %v", err)
	}
	for _, m := range regexp.MustCompile(`(?m)^time: (.*) ([0-9.]+) s$`).FindAllStringSubmatch(out, -1) {
		times = append(times, m[1]+" "+m[2]+" s")
	}
	if n := strings.Count(out, "\nok: "); n < 14 || strings.Contains(out, "FAIL") {
		t.Fatalf("deb-chroot.sh: %d checks ok, want 14 and no FAIL", n)
	}

	// 3. The fleet on the host (the chroot shares the host's network): a test CA,
	// mosquitto with a mutual-TLS listener for terminals and a plain loopback one for
	// posgw, posgw, and the enrollment server.
	start = time.Now()
	caDir := filepath.Join(work, "fleet-ca")
	fleet("provision", "-init-ca", caDir, "-hosts", "127.0.0.1")
	port, tlsPort := freePort(t), freePort(t)
	broker := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	mconf := filepath.Join(work, "mosquitto.conf")
	conf := fmt.Sprintf(`persistence false
allow_anonymous true
listener %d 127.0.0.1
listener %d 127.0.0.1
cafile %s
certfile %s
keyfile %s
require_certificate true
use_identity_as_username true
user root
`, port, tlsPort, filepath.Join(caDir, "ca.crt"), filepath.Join(caDir, "server.crt"), filepath.Join(caDir, "server.key"))
	if err := os.WriteFile(mconf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	mq := startProc(t, "mosquitto", mosquitto, "-c", mconf)
	waitUntil(t, "mosquitto listens", 30*time.Second, mq, func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	gwData := filepath.Join(work, "posgw-data")
	gw := startProc(t, "posgw", posgw, "-broker", broker, "-data", gwData, "-client-id", "posgw-arm64")
	waitUntil(t, "posgw subscribed", 60*time.Second, gw, func() bool { return strings.Contains(gw.output(), "gateway subscribed") })
	enrollAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	secrets := filepath.Join(work, "enroll-secrets.json")
	enroll := startProc(t, "posfleet enroll-server", posfleet, "enroll-server", "-listen", enrollAddr,
		"-ca", filepath.Join(caDir, "ca.crt"), "-ca-key", filepath.Join(caDir, "ca.key"),
		"-cert", filepath.Join(caDir, "server.crt"), "-key", filepath.Join(caDir, "server.key"), "-secrets", secrets)
	waitUntil(t, "the enrollment server listens", 30*time.Second, enroll, func() bool {
		c, err := net.DialTimeout("tcp", enrollAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	// 4. The installed configuration, with a free API port and the printer emulator
	// (see the doc comment); the rest, the empty device id included, as packaged.
	const device = "pos-arm64-1"
	apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfgPath := filepath.Join(root, "etc/walletless/posd.json")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("the packaged posd.json: %v", err)
	}
	scanner, _ := cfg["scanner"].(map[string]any)
	if scanner["source"] != "/dev/walletless/scanner" || cfg["data_dir"] != "/var/lib/walletless" {
		t.Fatalf("the packaged posd.json does not read /dev/walletless/scanner into /var/lib/walletless: %s", raw)
	}
	if cfg["device_id"] != "" || !strings.Contains(string(raw), strings.TrimSpace(lastLine(t, filepath.Join(keyDir, "posfleet.pub")))) {
		t.Fatalf("the packaged posd.json must have no device id and trust the fleet key: %s", raw)
	}
	cfg["api"] = map[string]any{"addr": apiAddr}
	cfg["printer"] = map[string]any{"target": "emulator:/var/lib/walletless/receipts"}
	raw, _ = json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(cfgPath, raw, 0o640); err != nil { // an existing file keeps its mode and owner
		t.Fatal(err)
	}

	// 5. The scanner: a pseudo terminal, owned as udev owns a scanner, bind-mounted
	// where the packaged config reads it. /proc as systemd would give posd.
	mountProc(t, root)
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatalf("pty: %v", err)
	}
	t.Cleanup(func() { master.Close(); slave.Close() })
	dialout := groupID(t, root, "dialout")
	if err := os.Chown(slave.Name(), 0, dialout); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(slave.Name(), 0o660); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, master) // whatever the line discipline echoes
	bindFile(t, slave.Name(), filepath.Join(root, "dev/walletless/scanner"))

	// 6. posd, as the installed unit starts it.
	u := readUnit(t, filepath.Join(root, "usr/lib/systemd/system/posd.service"))
	t.Logf("posd.service: User=%s Group=%s SupplementaryGroups=%v UMask=%s ExecStartPre=%q ExecStart=%q",
		u.user, u.group, u.groups, u.umask, u.pre, u.start)
	// systemd refuses to start a unit whose SupplementaryGroups= names a missing
	// group (216/GROUP); the package's preinst makes those a system lacks.
	for _, g := range u.groups {
		if _, ok := lookupGroup(root, g); !ok {
			t.Fatalf("SupplementaryGroups=: the installed root has no group %s: systemd would not start posd", g)
		}
	}
	startUnit := func() *proc {
		t.Helper()
		for _, pre := range u.pre {
			argv, ignore, asRoot := execLine(pre)
			pctx, pcancel := context.WithTimeout(ctx, 3*time.Minute)
			out, err := run(pctx, "", "chroot", u.command(root, argv, asRoot)...)
			pcancel()
			t.Logf("ExecStartPre=%s: %v\n%s", pre, err, out)
			if err != nil && !ignore {
				t.Fatalf("ExecStartPre=%s failed: %v", pre, err)
			}
		}
		argv, _, asRoot := execLine(u.start)
		return startProc(t, "posd (arm64, qemu)", "chroot", u.command(root, argv, asRoot)...)
	}
	posd := startUnit()
	api := &apiClient{base: "http://" + apiAddr}
	tokenFile := filepath.Join(root, "var/lib/walletless/admin.token")
	waitUntil(t, "posd's admin token", 3*time.Minute, posd, func() bool {
		b, err := os.ReadFile(tokenFile)
		api.token = strings.TrimSpace(string(b))
		return err == nil && api.token != ""
	})
	type status struct {
		State    string `json:"state"`
		DeviceID string `json:"device_id"`
		Online   bool   `json:"online"`
		Scanner  struct {
			Connected bool `json:"connected"`
		} `json:"scanner"`
		Pairing struct {
			TrustedKeys int    `json:"trusted_keys"`
			LastError   string `json:"last_error"`
		} `json:"pairing"`
	}
	var st status
	waitUntil(t, "posd unpaired with its scanner connected", 3*time.Minute, posd, func() bool {
		st = status{}
		code, body, err := api.call("GET", "/v1/status", "")
		return err == nil && code == 200 && json.Unmarshal(body, &st) == nil && st.State == "unpaired" && st.Scanner.Connected
	})
	if st.Pairing.TrustedKeys != 1 {
		t.Fatalf("the unpaired terminal trusts %d fleet keys, want the one baked into the package", st.Pairing.TrustedKeys)
	}
	waitUntil(t, "the 'not paired' slip", time.Minute, posd, func() bool {
		slips, _ := filepath.Glob(filepath.Join(root, "var/lib/walletless/receipts/unpaired-*"))
		return len(slips) > 0
	})
	step("host fleet (CA, mosquitto, posgw, enroll-server), posd under qemu until unpaired with its scanner", start)

	// 7. Pairing: the fleet manager's QR, scanned.
	start = time.Now()
	png := filepath.Join(work, "pairing-qr.png")
	fleet("provision", "-device-id", device, "-broker", fmt.Sprintf("ssl://127.0.0.1:%d", tlsPort),
		"-enroll-url", "https://"+enrollAddr, "-key", filepath.Join(keyDir, "posfleet.key"),
		"-ca", filepath.Join(caDir, "ca.crt"), "-secrets", secrets, "-o", png)
	qr := decodeQR(t, png)
	if !strings.HasPrefix(qr, "WLPAIR1:") {
		t.Fatalf("the pairing QR decodes to %.12q…", qr)
	}
	if _, err := master.Write([]byte(qr + "\r\n")); err != nil {
		t.Fatalf("write to the scanner: %v", err)
	}
	waitUntil(t, "posd paired, online over mutual TLS, selling", 3*time.Minute, posd, func() bool {
		st = status{}
		code, body, err := api.call("GET", "/v1/status", "")
		if err == nil && code == 200 && json.Unmarshal(body, &st) == nil && st.Pairing.LastError != "" {
			t.Fatalf("pairing refused: %s", st.Pairing.LastError)
		}
		return st.State == "selling" && st.DeviceID == device && st.Online
	})
	if !strings.Contains(mq.output(), "u'"+device+"'") {
		t.Errorf("mosquitto did not log a client with the username %s (its certificate's CN):\n%s", device, tail(mq.output(), 20))
	}
	waitUntil(t, "the pairing slip", time.Minute, posd, func() bool {
		slips, _ := filepath.Glob(filepath.Join(root, "var/lib/walletless/receipts/paired-*"))
		return len(slips) > 0
	})
	for _, f := range []string{"pairing.json", "device.crt", "device.key", "ca.crt"} {
		fi, err := os.Stat(filepath.Join(root, "var/lib/walletless", f))
		if err != nil {
			t.Fatalf("after pairing: %v", err)
		}
		if fi.Sys().(*syscall.Stat_t).Uid != uint32(userID(t, root, "walletless")) {
			t.Errorf("%s is not walletless's", f)
		}
	}
	step("pairing: provision, scan, enroll, online over mutual TLS", start)

	// 8. The sale: made through the API, paid by the scanner.
	start = time.Now()
	code, body, err := api.call("POST", "/v1/sales", `{"amount_minor": 4500, "currency": "KRW"}`)
	if err != nil || code != 201 {
		t.Fatalf("POST /v1/sales: %d %v %s\nposd:\n%s", code, err, body, posd.output())
	}
	var sale struct {
		ID         string `json:"id"`
		Status     string `json:"status"`
		Amount     int64  `json:"amount_minor"`
		Currency   string `json:"currency"`
		MaskedCode string `json:"masked_code"`
		Reason     string `json:"reason"`
	}
	if err := json.Unmarshal(body, &sale); err != nil || sale.ID == "" || sale.Status != "waiting_for_code" {
		t.Fatalf("POST /v1/sales: %v %s", err, body)
	}
	paycode := demoCode(t)
	if _, err := master.Write([]byte(paycode + "\r\n")); err != nil {
		t.Fatalf("write to the scanner: %v", err)
	}
	final := map[string]bool{"approved": true, "declined": true, "refused": true, "in_doubt": true, "cancelled": true}
	waitUntil(t, "the sale decided", 3*time.Minute, posd, func() bool {
		code, body, err := api.call("GET", "/v1/sales/"+sale.ID, "")
		return err == nil && code == 200 && json.Unmarshal(body, &sale) == nil && final[sale.Status]
	})
	if sale.Status != "approved" || sale.Amount != 4500 || sale.Currency != "KRW" {
		t.Fatalf("sale %s: %s (%s), %d %s; want approved 4500 KRW", sale.ID, sale.Status, sale.Reason, sale.Amount, sale.Currency)
	}
	if sale.MaskedCode == "" || strings.Contains(sale.MaskedCode, paycode) {
		t.Errorf("masked_code %q: want a masked code", sale.MaskedCode)
	}
	if strings.Contains(posd.output(), paycode) || strings.Contains(gw.output(), paycode) {
		t.Errorf("the full payment code is in posd's or posgw's log")
	}
	if secret := qrSecret(qr); secret == "" || strings.Contains(posd.output(), secret) || strings.Contains(posd.output(), qr) {
		t.Errorf("the pairing QR's one-time secret is in posd's log (or the QR has none)")
	}
	waitUntil(t, "the receipt printed", time.Minute, posd, func() bool {
		pngs, _ := filepath.Glob(filepath.Join(root, "var/lib/walletless/receipts/*.png"))
		return len(pngs) > 0
	})
	step("sale: POST /v1/sales, scan, approved, receipt", start)
	t.Logf("posd's log (arm64, under qemu; it never holds a full code, checked above):\n%s", tail(posd.output(), 40))

	// 9. posd stops on SIGTERM as systemd stops it; posgw's ledger has the sale.
	if err := posd.stop(20 * time.Second); err != nil {
		t.Errorf("posd on SIGTERM: %v\n%s", err, posd.output())
	}

	// 10. A package upgrade: apt installs a newer .deb over the running terminal; its
	// postinst puts the new posd into the running firmware slot, and the unit's next
	// start runs it, still paired and selling.
	start = time.Now()
	dist2 := filepath.Join(work, "dist-upgrade")
	if out, err := run(ctx, root0(), "make", "deb", "DEB_ARCHES=arm64", "DIST="+dist2, "VERSION=99.0.0", "DEB_VERSION=99.0.0",
		"FLEET_PUB="+filepath.Join(keyDir, "posfleet.pub")); err != nil {
		t.Fatalf("make deb VERSION=99.0.0: %v\n%s", err, out)
	}
	newer, _ := filepath.Glob(filepath.Join(dist2, "walletless_99.0.0*_arm64.deb"))
	if len(newer) != 1 {
		t.Fatalf("want one walletless 99.0.0 arm64 .deb in %s, got %v", dist2, newer)
	}
	b, err := os.ReadFile(newer[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "tmp/walletless-upgrade.deb"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = run(ctx, "", "chroot", root, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "/tmp/walletless-upgrade.deb")
	t.Logf("apt-get install walletless 99.0.0:\n%s", tail(out, 15))
	if err != nil {
		t.Fatalf("apt-get install (upgrade): %v", err)
	}
	if !strings.Contains(out, "now holds the packaged posd 99.0.0") {
		t.Errorf("the upgrade's postinst did not put posd 99.0.0 into the running slot:\n%s", out)
	}
	out, err = run(ctx, "", "chroot", root, "/var/lib/walletless/slots/current/posd", "-version")
	if err != nil || !strings.Contains(out, "99.0.0") {
		t.Fatalf("slots/current/posd -version after the upgrade: %q %v", out, err)
	}
	posd = startUnit()
	var after struct {
		State    string `json:"state"`
		DeviceID string `json:"device_id"`
		Version  string `json:"version"`
		Online   bool   `json:"online"`
	}
	waitUntil(t, "the upgraded posd selling, paired and online", 3*time.Minute, posd, func() bool {
		code, body, err := api.call("GET", "/v1/status", "")
		return err == nil && code == 200 && json.Unmarshal(body, &after) == nil &&
			after.State == "selling" && after.DeviceID == device && after.Online && after.Version == "99.0.0"
	})
	if err := posd.stop(20 * time.Second); err != nil {
		t.Errorf("upgraded posd on SIGTERM: %v\n%s", err, posd.output())
	}
	step("package upgrade to 99.0.0 (make deb, apt install, the unit's restart, paired and online)", start)

	if err := gw.stop(20 * time.Second); err != nil {
		t.Errorf("posgw on SIGTERM: %v", err)
	}
	out, err = run(ctx, "", posgw, "ledger", "-data", gwData, "-json")
	if err != nil {
		t.Fatalf("posgw ledger: %v\n%s", err, out)
	}
	found := false
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e struct {
			Key      string `json:"key"`
			Device   string `json:"device"`
			Amount   int64  `json:"amount_minor"`
			Currency string `json:"currency"`
			Status   string `json:"status"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Key == sale.ID {
			found = e.Device == device && e.Amount == 4500 && e.Currency == "KRW" && e.Status == "approved"
			if !found {
				t.Errorf("posgw's ledger has %+v", e)
			}
		}
	}
	if !found {
		t.Fatalf("sale %s is not approved in posgw's ledger:\n%s", sale.ID, out)
	}
}

// needRoot fails (in CI) or skips (elsewhere) when the test is not root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root (debootstrap, chroot, mount): run the tests as root, as CI's container does")
	}
	t.Skip("needs root (debootstrap, chroot, mount); by hand: sudo scripts/deb-chroot.sh --arch arm64")
}

// root0 is the repository's root, absolute (commands run there).
func root0() string {
	p, _ := filepath.Abs(root)
	return p
}

// run runs a command to its end (or ctx's), killing its whole process group then.
func run(ctx context.Context, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// proc is a long-running process of the test, in its own process group.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group and waits at most limit, then kills it.
func (p *proc) stop(limit time.Duration) error {
	if p.exited() {
		return fmt.Errorf("%s had already exited: %v", p.name, p.err)
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(limit):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s did not stop within %v of SIGTERM; killed", p.name, limit)
	}
}

// startProc starts a process that the test's cleanup stops (SIGTERM, then SIGKILL).
func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if !p.exited() {
			p.stop(20 * time.Second)
		}
		if t.Failed() {
			t.Logf("%s's output:\n%s", name, tail(p.output(), 60))
		}
	})
	return p
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitUntil polls cond every 250 ms until it holds, failing after limit or as soon
// as p exits.
func waitUntil(t *testing.T, what string, limit time.Duration, p *proc, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if p != nil && p.exited() {
			t.Fatalf("%s: %s exited: %v\n%s", what, p.name, p.err, tail(p.output(), 60))
		}
		if time.Now().After(deadline) {
			out := ""
			if p != nil {
				out = tail(p.output(), 60)
			}
			t.Fatalf("%s: not within %v\n%s", what, limit, out)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// mountProc mounts /proc in the root until the test ends.
func mountProc(t *testing.T, root string) {
	t.Helper()
	dst := filepath.Join(root, "proc")
	if err := syscall.Mount("proc", dst, "proc", 0, ""); err != nil {
		t.Fatalf("mount proc on %s: %v", dst, err)
	}
	t.Cleanup(func() { unmount(t, dst) })
}

// bindFile bind-mounts the file src on dst (created) until the test ends.
func bindFile(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(src, dst, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s on %s: %v", src, dst, err)
	}
	t.Cleanup(func() { unmount(t, dst) })
}

// unmount unmounts dst, lazily if it is busy.
func unmount(t *testing.T, dst string) {
	if err := syscall.Unmount(dst, 0); err != nil && err != syscall.EINVAL {
		if err := syscall.Unmount(dst, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dst, err)
		}
	}
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var ms []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := strings.ReplaceAll(fields[4], `\040`, " ")
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			ms = append(ms, mp)
		}
	}
	sort.Slice(ms, func(i, j int) bool { return len(ms[i]) > len(ms[j]) })
	return ms
}

// removeRoot unmounts whatever is still mounted under root (a script killed before
// its trap ran) and removes the work directory, never while anything is mounted.
func removeRoot(t *testing.T, work, root string) {
	for _, m := range mountsUnder(root) {
		unmount(t, m)
	}
	if left := mountsUnder(root); len(left) > 0 {
		t.Errorf("still mounted, %s left in place: %v", work, left)
		return
	}
	if err := os.RemoveAll(work); err != nil {
		t.Errorf("remove %s: %v", work, err)
	}
}

// lookupGroup reads a group's id from the root's /etc/group.
func lookupGroup(root, name string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(root, "etc/group"))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 3 && f[0] == name {
			id, err := strconv.Atoi(f[2])
			return id, err == nil
		}
	}
	return 0, false
}

// groupID is lookupGroup or the test's end.
func groupID(t *testing.T, root, name string) int {
	t.Helper()
	id, ok := lookupGroup(root, name)
	if !ok {
		t.Fatalf("no group %s in the root's /etc/group", name)
	}
	return id
}

// unit is what the test follows of a [Service] section.
type unit struct {
	user, group, umask string
	groups             []string
	env                []string
	pre                []string
	start              string
}

// readUnit reads the service's user, groups, umask, environment and commands.
func readUnit(t *testing.T, path string) unit {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{user: "root", group: "root", umask: "0022"}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section != "[Service]" || strings.HasPrefix(line, "#") {
			continue
		}
		switch k {
		case "User":
			u.user = v
		case "Group":
			u.group = v
		case "SupplementaryGroups":
			u.groups = append(u.groups, strings.Fields(v)...)
		case "UMask":
			u.umask = v
		case "Environment":
			u.env = append(u.env, strings.Fields(strings.ReplaceAll(v, `"`, ""))...)
		case "ExecStartPre":
			u.pre = append(u.pre, v)
		case "ExecStart":
			if u.start != "" {
				t.Fatalf("%s: more than one ExecStart=", path)
			}
			u.start = v
		}
	}
	if u.start == "" {
		t.Fatalf("%s: no ExecStart=", path)
	}
	if strings.ContainsAny(u.start+strings.Join(u.pre, " "), `"'$\`) {
		t.Fatalf("%s: quoting or variables in an Exec line; this test splits on spaces", path)
	}
	return u
}

// execLine splits an Exec line and reads its prefixes: - (failure ignored) and +
// or ! (runs with full privileges, as root).
func execLine(line string) (argv []string, ignore, asRoot bool) {
	for len(line) > 0 && strings.ContainsRune("-+!@:", rune(line[0])) {
		switch line[0] {
		case '-':
			ignore = true
		case '+', '!':
			asRoot = true
		}
		line = line[1:]
	}
	return strings.Fields(line), ignore, asRoot
}

// command is chroot's arguments to run argv in root as the unit would: its user,
// group, supplementary groups (setpriv, resolved in the root), umask and
// environment, with a clean environment otherwise.
func (u unit) command(root string, argv []string, asRoot bool) []string {
	env := append([]string{"env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}, u.env...)
	shell := []string{"sh", "-c", `umask "$0" && exec "$@"`, u.umask}
	args := []string{root}
	if !asRoot {
		args = append(args, "setpriv", "--reuid", u.user, "--regid", u.group)
		if len(u.groups) > 0 {
			args = append(args, "--groups", strings.Join(u.groups, ","))
		} else {
			args = append(args, "--clear-groups")
		}
		args = append(args, "--")
	}
	args = append(args, env...)
	args = append(args, shell...)
	return append(args, argv...)
}

// apiClient calls posd's local API with its manager token.
type apiClient struct {
	base, token string
}

func (a *apiClient) call(method, path, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// demoCode is a fresh 18-digit demo wallet code (28 and 16 random digits), the kind
// README's "Running by hand" types into posd's scanner.
func demoCode(t *testing.T) string {
	t.Helper()
	n, err := rand.Int(rand.Reader, big.NewInt(1e16))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("28%016d", n)
}

// lastLine is a file's last non-empty line (a minisign public key file's key).
func lastLine(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// userID reads a user's id from the root's /etc/passwd.
func userID(t *testing.T, root, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 3 && f[0] == name {
			if id, err := strconv.Atoi(f[2]); err == nil {
				return id
			}
		}
	}
	t.Fatalf("no user %s in the root's /etc/passwd", name)
	return 0
}

// decodeQR reads the text of posfleet provision's PNG, as the counter scanner would.
func decodeQR(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	// A clean, upright symbol straight from the PNG (as internal/e2e decodes it).
	res, err := qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		t.Fatalf("decode %s: %v", file, err)
	}
	return res.GetText()
}

// qrSecret is a pairing QR's one-time secret ("" when it does not parse).
func qrSecret(text string) string {
	q, err := pairing.Parse(text)
	if err != nil {
		return ""
	}
	return q.Payload.Secret
}
