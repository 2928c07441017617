package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walletless/walletless/internal/wirecheck"
)

// need finds a program or skips (fails under CI) with an install hint.
func need(t testing.TB, prog, pkg string, extra ...string) string {
	t.Helper()
	if p, err := exec.LookPath(prog); err == nil {
		return p
	}
	for _, p := range extra {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required in CI: apt-get install -y %s", prog, pkg)
	}
	t.Skipf("%s not installed; run: apt-get install -y %s", prog, pkg)
	return ""
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// build compiles the commands once per test binary run.
func build(t *testing.T, dir string, cmds ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range cmds {
		bin := filepath.Join(dir, c)
		cmd := exec.Command("go", "build", "-o", bin, "../../cmd/"+c)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", c, err, b)
		}
		out[c] = bin
	}
	return out
}

// proc is a child process whose output is kept for failure messages.
type proc struct {
	cmd *exec.Cmd
}

func start(t *testing.T, stdin io.Reader, name string, args ...string) *proc {
	t.Helper()
	registerPosdArgs(args) // the request helpers find a posd's admin.token by its -api
	cmd := exec.Command(name, args...)
	cmd.Stdin = stdin
	var buf bytes.Buffer
	cmd.Stdout = &lockedWriter{w: &buf}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", filepath.Base(name), cmd.Stdout.(*lockedWriter).String())
		}
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s exited with %v", p.cmd.Path, err)
		}
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		t.Errorf("%s did not stop within 20s", p.cmd.Path)
	}
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		authorize(req)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never answered", url)
}

func waitTCP(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}

func getJSON(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func startMosquitto(t *testing.T, dir string) string {
	t.Helper()
	bin := need(t, "mosquitto", "mosquitto", "/usr/sbin/mosquitto")
	port := freePort(t)
	conf := filepath.Join(dir, "mosquitto.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n", port)), 0o600)
	start(t, nil, bin, "-c", conf)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitTCP(t, addr)
	wirecheck.Watch(t, "tcp://"+addr, wirecheck.Options{}) // every payload against docs/schema/v1
	return "tcp://" + addr
}

// TestProcessesAgainstMosquitto runs the thin path with posd and posgw as separate
// processes talking through Debian's mosquitto.
func TestProcessesAgainstMosquitto(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dir := t.TempDir()
	brokerURL := startMosquitto(t, dir)
	bins := build(t, dir, "posd", "posgw", "posctl")

	gwData := filepath.Join(dir, "gw")
	gw := start(t, nil, bins["posgw"], "-broker", brokerURL, "-data", gwData)

	apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	scanR, scanW := io.Pipe()
	receipts := filepath.Join(dir, "receipts")
	posd := start(t, scanR, bins["posd"], "-data", filepath.Join(dir, "posd-data"), "-api", apiAddr,
		"-broker", brokerURL, "-device-id", "counter-2", "-scanner", "stdin", "-printer", "emulator:"+receipts)
	api := "http://" + apiAddr
	waitHTTP(t, api+"/v1/status")

	code, sale := getJSON(t, "POST", api+"/v1/sales", `{"amount_minor": 12000, "currency": "KRW"}`)
	if code != 201 {
		t.Fatalf("create: %d %v", code, sale)
	}
	id := sale["id"].(string)
	fmt.Fprintln(scanW, "281234567890123456")
	deadline := time.Now().Add(40 * time.Second)
	for sale["status"] != "approved" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		_, sale = getJSON(t, "GET", api+"/v1/sales/"+id, "")
		if sale["status"] == "declined" {
			t.Fatalf("declined: %v", sale)
		}
	}
	if sale["status"] != "approved" {
		t.Fatalf("sale never approved: %v", sale)
	}
	// posctl reads through the API.
	out, err := exec.Command(bins["posctl"], "sale", "-api", api, "-data", filepath.Join(dir, "posd-data"), id).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte(`"approved"`)) {
		t.Fatalf("posctl sale: %v\n%s", err, out)
	}
	for i := 0; i < 400; i++ {
		if _, err := os.Stat(filepath.Join(receipts, id+".png")); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(receipts, id+".png")); err != nil {
		t.Errorf("receipt PNG: %v", err)
	}
	scanW.Close()
	posd.stop(t)
	gw.stop(t)

	out, err = exec.Command(bins["posgw"], "ledger", "-data", gwData, "-json").CombinedOutput()
	if err != nil {
		t.Fatalf("posgw ledger: %v\n%s", err, out)
	}
	var n int
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("ledger line %q: %v", sc.Text(), err)
		}
		n++
		if e["key"] != id || e["device"] != "counter-2" || e["status"] != "approved" || e["amount_minor"] != float64(12000) || e["currency"] != "KRW" {
			t.Errorf("ledger entry %v", e)
		}
		if strings.Contains(sc.Text(), "281234567890123456") {
			t.Error("ledger shows the full payment code")
		}
	}
	if n != 1 {
		t.Errorf("ledger has %d entries, want 1:\n%s", n, out)
	}
}

// lockedWriter is an io.Writer safe for a child's stdout and stderr at once.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
