package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walletless/walletless/paycode"
)

// sampleMerchantQR is the static KRW code of deploy/posd.example.json.
const sampleMerchantQR = "00020101021126480020com.example.acquirer0120SAMPLE-MERCHANT-00015204541153034105802KR5918SEOUL CORNER STORE6005SEOUL62090305SHOP76304CBD5"

func TestMerchantCheck(t *testing.T) {
	code, out, errOut := runPosctl(t, "", "merchant", "check", sampleMerchantQR, "-amount", "4500", "-device-id", "till-3")
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	for _, want := range []string{"valid", "SEOUL CORNER STORE, SEOUL KR, MCC 5411", "account 26:", "com.example.acquirer",
		"KRW (410)", "terminal_label:         till-3", "4500 KRW"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The last line is the example dynamic code: it decodes, with the amount.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	m, _, err := paycode.Decode(lines[len(lines)-1])
	if err != nil {
		t.Fatalf("example code: %v\n%s", err, out)
	}
	if v, ok := m.AmountMinor(); !ok || v != 4500 || !m.Dynamic() || m.MerchantAccounts[0].GUI != "com.example.acquirer" {
		t.Errorf("example code %+v", m)
	}
}

func TestMerchantCheckFromConfigAndStdin(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "posd.json")
	os.WriteFile(cfg, []byte(`{"version":1,"device_id":"shop-9","merchant":{"emv_qr":"`+sampleMerchantQR+`"}}`), 0o600)
	code, out, errOut := runPosctl(t, "", "merchant", "check", "-config", cfg)
	if code != 0 || !strings.Contains(out, "terminal_label:         shop-9") {
		t.Fatalf("-config: exit %d: %s %s", code, out, errOut)
	}
	code, out, _ = runPosctl(t, sampleMerchantQR+"\r\n", "merchant", "check")
	if code != 0 || !strings.Contains(out, "valid") {
		t.Fatalf("stdin: exit %d: %s", code, out)
	}
	os.WriteFile(cfg, []byte(`{"version":1}`), 0o600)
	if code, _, errOut := runPosctl(t, "", "merchant", "check", "-config", cfg); code != 1 || !strings.Contains(errOut, "no merchant.emv_qr") {
		t.Fatalf("config without the key: exit %d: %s", code, errOut)
	}
}

func TestMerchantCheckInvalid(t *testing.T) {
	noCRC := sampleMerchantQR[:len(sampleMerchantQR)-4]
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{noCRC + "0000"}, "checksum"},
		{[]string{"281234567890123456"}, "merchant.emv_qr"},
		{[]string{"hello"}, "merchant.emv_qr"},
		{[]string{sampleMerchantQR, "-currency", "JPY"}, "KRW only"},
		{[]string{sampleMerchantQR, "-amount", "0"}, "amount_minor"},
	} {
		code, out, _ := runPosctl(t, "", append([]string{"merchant", "check"}, tc.args...)...)
		if code != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, want 1 and %q:\n%s", tc.args, code, tc.want, out)
		}
		if strings.Contains(out, "281234567890123456") {
			t.Errorf("a customer's code was echoed:\n%s", out)
		}
	}
	if code, _, _ := runPosctl(t, "", "merchant"); code != 2 {
		t.Errorf("no subcommand: exit %d, want 2", code)
	}
	if code, _, _ := runPosctl(t, "", "merchant", "check"); code != 2 {
		t.Errorf("no payload: exit %d, want 2", code)
	}
}
