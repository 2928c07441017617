package e2e

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
)

// walkthrough returns the shell blocks of docs/fleet.md marked <!-- walkthrough -->,
// in order.
func walkthrough(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../docs/fleet.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	marked, in := false, false
	var cur strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case in && line == "```":
			blocks = append(blocks, cur.String())
			cur.Reset()
			in = false
		case in:
			cur.WriteString(line + "\n")
		case marked && line == "```sh":
			in, marked = true, false
		case strings.TrimSpace(line) == "<!-- walkthrough -->":
			marked = true
		case strings.TrimSpace(line) != "":
			marked = false
		}
	}
	return blocks
}

// TestFleetDocsWalkthrough runs the marked shell blocks of docs/fleet.md with bash,
// as a manager would, against 20 simulated terminals (group seoul, 10; group busan,
// 10): make a key, look at the group, push a change with canaries, watch it apply,
// roll it back. The only edits: $FLEET points at the test's broker and `-wait 5m`
// becomes `-wait 2s`.
func TestFleetDocsWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	bashPath := need(t, "bash", "bash")
	blocks := walkthrough(t)
	if len(blocks) != 5 {
		t.Fatalf("docs/fleet.md has %d walkthrough blocks, this test knows 5 (keygen, status, push, config status, rollback)", len(blocks))
	}
	bin := posfleetBin(t)
	home := t.TempDir()
	work := t.TempDir()
	var specs []simSpec
	for i := 0; i < 20; i++ {
		g := "seoul"
		if i >= 10 {
			g = "busan"
		}
		specs = append(specs, simSpec{id: g + "-" + string(rune('a'+i%10)), groups: []string{g}})
	}
	m := fleetBroker(t, specIDs(specs))
	env := append(os.Environ(), "HOME="+home, "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"),
		"FLEET=-broker "+m.URL()+" -password-file "+passwordFile(t))
	runBlock := func(i int) string {
		t.Helper()
		script := strings.ReplaceAll(blocks[i], "-wait 5m", "-wait 2s")
		cmd := exec.Command(bashPath, "-euo", "pipefail", "-c", script)
		cmd.Dir, cmd.Env = work, env
		out, err := cmd.CombinedOutput()
		t.Logf("docs/fleet.md block %d:\n%s\n--- output:\n%s", i+1, script, out)
		if err != nil {
			t.Fatalf("docs/fleet.md walkthrough block %d failed: %v", i+1, err)
		}
		return string(out)
	}

	// 1. Make a key; the terminals trust the line it printed.
	out := runBlock(0)
	var pub minisign.PublicKey
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "RW") {
			if err := pub.UnmarshalText([]byte(line)); err != nil {
				t.Fatalf("trusted key line %q: %v", line, err)
			}
		}
	}
	if pub.ID() == 0 {
		t.Fatal("keygen printed no trusted key line")
	}
	fleet := startSim(t, m, pub, specs)

	// 2. Look at the group.
	out = runBlock(1)
	if strings.Count(out, " online ") != 10 || strings.Contains(out, "busan") || !strings.Contains(out, "10 online, 0 stale, 0 offline") {
		t.Fatalf("status -group seoul:\n%s", out)
	}

	// 3. Push with canaries.
	out = runBlock(2)
	if !strings.Contains(out, "pushed version 2 to group seoul") {
		t.Fatalf("push:\n%s", out)
	}
	want := `{"merchant":{"lines":["Seoul Station branch","Open 07:00-23:00"]}}`
	for _, s := range specs {
		v, c, _ := fleet.devices[s.id].state(2)
		switch {
		case s.groups[0] == "seoul" && (v != 2 || c != want):
			t.Errorf("%s: version %d, config %s", s.id, v, c)
		case s.groups[0] == "busan" && v != 0:
			t.Errorf("%s (busan) changed: version %d", s.id, v)
		}
	}

	// 4. Watch it apply.
	out = runBlock(3)
	if !strings.Contains(out, "version 2 for group seoul: 10 applied") {
		t.Fatalf("config status:\n%s", out)
	}

	// 5. Roll back: the group's settings are gone, the terminals run their own file.
	runBlock(4)
	for _, id := range groupOf(specs, "seoul") {
		d := fleet.devices[id]
		waitFor(t, id+" rolled back", 30*time.Second, func() bool { v, c, _ := d.state(3); return v == 3 && c == "{}" })
	}
}
