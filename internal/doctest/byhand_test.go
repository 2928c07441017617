package doctest

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
	"testing"
	"time"
)

// freePorts returns n different free loopback ports.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close() // held until all are chosen, so none repeats
		out = append(out, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
	}
	return out
}

// readmeByHand returns the command lines of README's "Running by hand" section.
func readmeByHand(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	i := strings.Index(s, "## Running by hand")
	if i < 0 {
		t.Fatal("README has no Running by hand section")
	}
	s = s[i:]
	if j := strings.Index(s[3:], "\n## "); j > 0 {
		s = s[:j+3]
	}
	var out []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "```") {
			in = !in
			continue
		}
		if in && l != "" {
			out = append(out, l)
		}
	}
	return out
}

// TestRunningByHand follows README's "Running by hand" with the lines it shows (the
// broker and API ports swapped for free ones): mosquitto, posgw, posd from
// deploy/posd.local.json, a sale over the API, the code typed into posd, and the
// approved sale and its receipt where the README says.
func TestRunningByHand(t *testing.T) {
	if _, err := exec.LookPath("mosquitto"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("mosquitto is missing: apt-get install mosquitto")
		}
		t.Skip("mosquitto is missing: apt-get install mosquitto")
	}
	lines := readmeByHand(t)
	dir := t.TempDir()
	bin := build(t)
	os.Mkdir(filepath.Join(dir, "bin"), 0o755)
	for _, c := range []string{"posd", "posgw", "posctl"} {
		if err := os.Symlink(filepath.Join(bin, c), filepath.Join(dir, "bin", c)); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(dir, "deploy"), 0o755)
	cfg, err := os.ReadFile(filepath.Join(root, "deploy", "posd.local.json"))
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2)
	mq, api := ports[0], ports[1]
	if !bytes.Contains(cfg, []byte("tcp://127.0.0.1:1883")) {
		t.Fatal("deploy/posd.local.json does not use the README's broker on 1883")
	}
	os.WriteFile(filepath.Join(dir, "deploy", "posd.local.json"), bytes.ReplaceAll(cfg, []byte(":1883"), []byte(":"+mq)), 0o644)

	var posdIn io.WriteCloser
	var curl []string
	start := func(w []string, stdin bool) {
		cmd := exec.Command(w[0], w[1:]...)
		if strings.HasPrefix(w[0], "bin/") {
			cmd.Path = filepath.Join(dir, w[0])
		}
		cmd.Dir = dir
		var logb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logb, &logb
		if stdin {
			posdIn, _ = cmd.StdinPipe()
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("%v: %v", w, err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(os.Interrupt)
			cmd.Wait()
			if t.Failed() {
				t.Logf("%s:\n%s", w[0], logb.String())
			}
		})
	}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		for strings.HasSuffix(l, "\\") && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, "\\") + " " + lines[i]
		}
		l = strings.ReplaceAll(l, "1883", mq)
		w := words(l)
		switch {
		case len(w) == 0, w[0] == "make": // built above
		case w[0] == "mosquitto":
			start(w, false)
			waitPort(t, mq)
		case w[0] == "bin/posgw":
			start(w, false)
		case w[0] == "bin/posd":
			start(append(w, "-api", "127.0.0.1:"+api), true)
			waitPort(t, api)
		case w[0] == "curl":
			curl = w
		default:
			t.Fatalf("README's Running by hand shows %q, which this test does not know", l)
		}
	}
	if posdIn == nil || curl == nil {
		t.Fatalf("README's Running by hand lacks posd or the curl sale: %q", lines)
	}
	// The curl line: its body, against the free API port, with the token posd wrote.
	var body string
	for i, a := range curl {
		if a == "-d" && i+1 < len(curl) {
			body = curl[i+1]
		}
	}
	var tok []byte
	for wait := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if tok, err = os.ReadFile(filepath.Join(dir, "posd-data", "admin.token")); err == nil || time.Now().After(wait) {
			break
		}
	}
	if err != nil {
		t.Fatalf("posd-data/admin.token: %v", err)
	}
	req, _ := http.NewRequest("POST", "http://127.0.0.1:"+api+"/v1/sales", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var sale struct{ ID, Status string }
	json.NewDecoder(resp.Body).Decode(&sale)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || sale.ID == "" {
		t.Fatalf("the README's sale: %d %+v", resp.StatusCode, sale)
	}
	fmt.Fprintln(posdIn, "281234567890123456")
	deadline := time.Now().Add(2 * time.Minute) // a loaded CI machine is slow; a pass is quick
	for {
		out, _ := exec.Command(filepath.Join(dir, "bin", "posctl"), "sale", "-api", "http://127.0.0.1:"+api, "-data", filepath.Join(dir, "posd-data"), sale.ID).CombinedOutput()
		if strings.Contains(string(out), `"status": "approved"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sale was not approved:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	pngs, _ := filepath.Glob(filepath.Join(dir, "posd-data", "receipts", "*.png"))
	for len(pngs) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		pngs, _ = filepath.Glob(filepath.Join(dir, "posd-data", "receipts", "*.png"))
	}
	if len(pngs) == 0 {
		t.Error("no receipt PNG in posd-data/receipts")
	}
}

func waitPort(t *testing.T, port string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
