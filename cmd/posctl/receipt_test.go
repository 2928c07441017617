package main

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/walletless/walletless/printer/printertest"
)

func runReceiptCmd(t *testing.T, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, bytes.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestReceiptSampleAndPreview(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "r.bin")
	out := filepath.Join(dir, "r.png")
	if code, _, stderr := runReceiptCmd(t, nil, "receipt", "sample", "-profile", "generic-58", "-o", bin); code != 0 {
		t.Fatalf("sample: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := runReceiptCmd(t, nil, "receipt", "preview", bin, "-o", out, "-profile", "generic-58", "-text")
	if code != 0 {
		t.Fatalf("preview: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "APPROVED") || !strings.Contains(stderr, "384x") {
		t.Errorf("stdout %q stderr %q", stdout, stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := printertest.QR(img); !slices.Equal(got, []string{"S-SAMPLE-0001"}) {
		t.Errorf("QR = %q", got)
	}
}

func TestReceiptPreviewStdinAndWarnings(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.png")
	code, _, stderr := runReceiptCmd(t, []byte("hello\x1b\x01\n"), "receipt", "preview", "-", "-o", out)
	if code != 0 || !strings.Contains(stderr, "warning: offset 5: unknown command ESC 0x01") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestReceiptUsage(t *testing.T) {
	for _, args := range [][]string{
		{"receipt"},
		{"receipt", "preview", "in.bin"},
		{"receipt", "frobnicate"},
		{"print-test"},
	} {
		if code, _, _ := runReceiptCmd(t, nil, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	if code, _, stderr := runReceiptCmd(t, nil, "receipt", "sample", "-profile", "nope"); code != 1 || !strings.Contains(stderr, "unknown profile") {
		t.Errorf("bad profile: exit %d %q", code, stderr)
	}
}

func TestPrintTestEmulator(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("POSCTL_API", "http://127.0.0.1:1") // posd not running
	code, stdout, stderr := runReceiptCmd(t, nil, "print-test", "-printer", "emulator:"+dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "test page sent") {
		t.Errorf("stdout %q", stdout)
	}
	pngs, _ := filepath.Glob(filepath.Join(dir, "print-test-*.png"))
	if len(pngs) != 1 {
		t.Fatalf("PNGs: %v", pngs)
	}
	got := printertest.Zbar(t, pngs[0])
	if len(got) != 2 || !strings.HasPrefix(got[0], "CODE-128:WALLETLESS") || !strings.HasPrefix(got[1], "QR-Code:walletless print-test") {
		t.Errorf("zbarimg: %q", got)
	}
}
