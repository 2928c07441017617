package pkgtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
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
)

// TestArm64InstallAndSell is issue 17's "done when" on arm64, in a container instead
// of a Pi: it builds the arm64 .deb (make deb DEB_ARCHES=arm64), makes a fresh Debian
// bookworm arm64 root with debootstrap --foreign and a second stage under
// qemu-user-static, installs the package there with apt-get (apt resolves the
// dependencies) and checks what scripts/deb-chroot.sh checks, all through
// `scripts/deb-chroot.sh --arch arm64`. Then the terminal sells in that root: the
// arm64 posd runs under qemu as the installed unit says (its ExecStartPre= and
// ExecStart= lines, User=, Group=, SupplementaryGroups= and UMask=, read from the
// installed posd.service: systemd does not run in a chroot), with the packaged
// config and data directory, against a host mosquitto and posgw on 127.0.0.1. The
// scanner is a real pseudo terminal bind-mounted on /dev/walletless/scanner (mode
// 0660 root:dialout, as the udev rules make it); a sale is made through posd's HTTP
// API with the manager token posd wrote, and paid by writing a payment code to the
// scanner; posgw must approve it and have it in its ledger, and the receipt must be
// printed (the printer emulator).
//
// Stand-in for pairing: the device's identity and broker are written into the
// installed /etc/walletless/posd.json (device_id, mqtt.broker, api.addr on a free
// port, the printer emulator) instead of scanning a pairing QR; everything else is
// the packaged file.
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
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Minute)
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

	// 1. The arm64 package, and the host's posgw.
	start := time.Now()
	dist := filepath.Join(work, "dist")
	if out, err := run(ctx, root0(), "make", "deb", "DEB_ARCHES=arm64", "DIST="+dist); err != nil {
		t.Fatalf("make deb DEB_ARCHES=arm64: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "walletless_*_arm64.deb"))
	if len(debs) != 1 {
		t.Fatalf("want one arm64 .deb in %s, got %v", dist, debs)
	}
	posgw := filepath.Join(work, "posgw")
	if out, err := run(ctx, root0(), "go", "build", "-o", posgw, "./cmd/posgw"); err != nil {
		t.Fatalf("go build posgw: %v\n%s", err, out)
	}
	step("make deb (arm64) and build posgw", start)

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

	// 3. The cloud on the host: mosquitto and posgw on loopback (the chroot shares
	// the host's network).
	start = time.Now()
	port := freePort(t)
	broker := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	mconf := filepath.Join(work, "mosquitto.conf")
	if err := os.WriteFile(mconf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n", port)), 0o644); err != nil {
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

	// 4. The terminal's stand-in configuration (see the doc comment): the packaged
	// file with this terminal's identity and this test's broker and ports.
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
	cfg["device_id"] = device
	cfg["mqtt"] = map[string]any{"broker": broker}
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
	// systemd refuses to start a unit whose SupplementaryGroups= names a missing
	// group. A Pi image has them all (udev's sysusers make input; the package makes
	// gpio); this minbase root has no udev, so a group it lacks is left out, and
	// said so.
	var groups []string
	for _, g := range u.groups {
		if _, ok := lookupGroup(root, g); ok {
			groups = append(groups, g)
		} else {
			t.Logf("SupplementaryGroups=: the root has no group %s (no udev in a minbase chroot); posd runs without it", g)
		}
	}
	u.groups = groups
	argv, _, asRoot := execLine(u.start)
	posd := startProc(t, "posd (arm64, qemu)", "chroot", u.command(root, argv, asRoot)...)
	api := &apiClient{base: "http://" + apiAddr}
	tokenFile := filepath.Join(root, "var/lib/walletless/admin.token")
	waitUntil(t, "posd's admin token", 3*time.Minute, posd, func() bool {
		b, err := os.ReadFile(tokenFile)
		api.token = strings.TrimSpace(string(b))
		return err == nil && api.token != ""
	})
	var st struct {
		DeviceID string `json:"device_id"`
		Online   bool   `json:"online"`
		Scanner  struct {
			Connected bool   `json:"connected"`
			Port      string `json:"port"`
		} `json:"scanner"`
	}
	waitUntil(t, "posd online with its scanner connected", 3*time.Minute, posd, func() bool {
		code, body, err := api.call("GET", "/v1/status", "")
		return err == nil && code == 200 && json.Unmarshal(body, &st) == nil && st.Online && st.Scanner.Connected
	})
	if st.DeviceID != device {
		t.Fatalf("posd reports device %q, want %q", st.DeviceID, device)
	}
	step("host mosquitto and posgw, then posd under qemu until online with its scanner", start)

	// 7. The sale: made through the API, paid by the scanner.
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
	waitUntil(t, "the receipt printed", time.Minute, posd, func() bool {
		pngs, _ := filepath.Glob(filepath.Join(root, "var/lib/walletless/receipts/*.png"))
		return len(pngs) > 0
	})
	step("sale: POST /v1/sales, scan, approved, receipt", start)
	t.Logf("posd's log (arm64, under qemu; it never holds a full code, checked above):\n%s", tail(posd.output(), 40))

	// 8. posd stops on SIGTERM as systemd stops it; posgw's ledger has the sale.
	if err := posd.stop(20 * time.Second); err != nil {
		t.Errorf("posd on SIGTERM: %v\n%s", err, posd.output())
	}
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
