package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/walletless/walletless/device"
)

func runPosctl(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestPorts(t *testing.T) {
	old := listPorts
	defer func() { listPorts = old }()
	listPorts = func() ([]device.PortInfo, error) {
		return []device.PortInfo{
			{Name: "/dev/ttyACM0", IsUSB: true, VID: "05E0", PID: "1200", Serial: "S123", Manufacturer: "Zebra", Product: "Symbol Bar Code Scanner"},
			{Name: "/dev/ttyS0"},
		}, nil
	}
	code, out, errOut := runPosctl(t, "", "ports")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"/dev/ttyACM0", "05E0", "S123", "usb:05E0:1200:S123", "/dev/ttyS0"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runPosctl(t, "", "ports", "-json")
	var rows []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 2 || rows[0]["selector"] != "usb:05E0:1200:S123" {
		t.Fatalf("ports -json: exit %d, %s", code, out)
	}
	listPorts = func() ([]device.PortInfo, error) { return nil, nil }
	if code, out, _ := runPosctl(t, "", "ports"); code != 0 || !strings.Contains(out, "no serial ports") {
		t.Errorf("no ports: exit %d, %q", code, out)
	}
	oldIn := listInputs
	defer func() { listInputs = oldIn }()
	listInputs = func() ([]device.InputInfo, error) {
		return []device.InputInfo{{Path: "/dev/input/event3", Name: "Honeywell Scanner", VID: "0C2E", PID: "0B61"}, {Path: "/dev/input/event0", Name: "Power Button", VID: "0000", PID: "0001"}}, nil
	}
	code, out, _ = runPosctl(t, "", "ports", "-input")
	if code != 0 || !strings.Contains(out, "input:usb:0C2E:0B61") || !strings.Contains(out, "input:/dev/input/event0") {
		t.Errorf("ports -input: exit %d\n%s", code, out)
	}
	if code, _, _ := runPosctl(t, "", "ports", "extra"); code != 2 {
		t.Errorf("ports extra: exit %d, want 2", code)
	}
}
