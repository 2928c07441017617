package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// EMVCo QRCPS MPM specification example (CRC A13A).
const posctlSpecSample = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A"

func decodeJSON(t *testing.T, out string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return m
}

func TestPaycodeDecodeMPMJSON(t *testing.T) {
	code, out, errOut := runPosctl(t, "", "paycode", "decode", "-json", posctlSpecSample)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	m := decodeJSON(t, out)
	want := map[string]any{
		"kind": "mpm", "scheme": "emvco", "valid": true, "crc": "A13A", "point_of_initiation": "dynamic",
		"mcc": "4111", "currency": "156", "amount": "23.72", "amount_minor": float64(2372), "country": "CN",
		"merchant_name": "BEST TRANSPORT", "merchant_city": "BEIJING", "postal_code": "",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	add, _ := m["additional"].(map[string]any)
	if add["store_label"] != "1234" || add["terminal_label"] != "A6008667" || add["consumer_data_request"] != "ME" {
		t.Errorf("additional = %v", add)
	}
	lang, _ := m["language"].(map[string]any)
	if lang["language"] != "ZH" || lang["name"] != "最佳运输" || lang["city"] != "北京" {
		t.Errorf("language = %v", lang)
	}
	accts, _ := m["merchant_accounts"].([]any)
	if len(accts) != 2 || accts[0].(map[string]any)["guid"] != "D15600000000" {
		t.Errorf("merchant_accounts = %v", accts)
	}
	if _, ok := m["code"]; ok {
		t.Error("full code printed without -reveal")
	}
	if w, _ := m["warnings"].([]any); len(w) != 1 {
		t.Errorf("warnings = %v", m["warnings"])
	}
}

func TestPaycodeDecodeWalletStdin(t *testing.T) {
	code, out, _ := runPosctl(t, "281234567890123456\r\n", "paycode", "decode", "-json")
	m := decodeJSON(t, out)
	if code != 0 || m["kind"] != "wallet" || m["scheme"] != "alipay" || m["valid"] != true || m["basis"] != "documented" {
		t.Errorf("exit %d, %v", code, m)
	}
	if strings.Contains(out, "281234567890123456") {
		t.Errorf("code not masked: %s", out)
	}
	for _, k := range []string{"amount", "crc", "applications"} {
		if _, ok := m[k]; ok {
			t.Errorf("wallet output has %q", k)
		}
	}
	// -reveal shows it; flags may follow the code.
	_, out, _ = runPosctl(t, "", "paycode", "decode", "-json", "281234567890123456", "-reveal")
	if decodeJSON(t, out)["code"] != "281234567890123456" {
		t.Errorf("-reveal: %s", out)
	}
}

func TestPaycodeDecodeInvalid(t *testing.T) {
	bad := posctlSpecSample[:len(posctlSpecSample)-4] + "0000"
	code, out, _ := runPosctl(t, "", "paycode", "decode", "-json", bad)
	m := decodeJSON(t, out)
	if code != 1 || m["kind"] != "mpm" || m["valid"] != false || !strings.Contains(m["error"].(string), "checksum mismatch") {
		t.Errorf("exit %d, %v", code, m)
	}
	if strings.Contains(out, "BEST TRANSPORT6007") {
		t.Error("invalid code printed")
	}
	code, out, _ = runPosctl(t, "", "paycode", "decode", "-json", "hello")
	if m := decodeJSON(t, out); code != 1 || m["kind"] != "unknown" || m["valid"] != false {
		t.Errorf("exit %d, %v", code, m)
	}
	// Text output, several lines on stdin: exit 1 when any is invalid.
	code, out, _ = runPosctl(t, "134567890123456789\n"+bad+"\n", "paycode", "decode")
	if code != 1 || !strings.Contains(out, "wechatpay") || !strings.Contains(out, "INVALID") || strings.Contains(out, "134567890123456789") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

func TestPaycodeUsage(t *testing.T) {
	for _, args := range [][]string{
		{"paycode"}, {"paycode", "encode"}, {"paycode", "decode", "a", "b"}, {"paycode", "decode", "-nope"}, {"paycode", "decode"},
	} {
		if code, _, _ := runPosctl(t, "", args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

func TestPaycodeDecodeRulesFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rules.json")
	table := `{"version": "t1", "wallets": [
		{"scheme": "alipay", "operator": "Ant", "prefixes": [[25, 30]], "min_len": 16, "max_len": 24, "source": "s", "basis": "documented"},
		{"scheme": "examplepay", "operator": "Ex", "prefixes": [[28, 28]], "min_len": 18, "max_len": 18, "source": "s", "basis": "guessed"}]}`
	if err := os.WriteFile(file, []byte(table), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runPosctl(t, "", "paycode", "decode", "-json", "-rules", file, "281234567890123456")
	m := decodeJSON(t, out)
	c, _ := m["candidates"].([]any)
	if code != 1 || m["kind"] != "wallet" || m["valid"] != false || len(c) != 2 || !strings.Contains(m["error"].(string), "several schemes") {
		t.Errorf("exit %d, %v", code, m)
	}
	if err := os.WriteFile(file, []byte(`{"version": "t1", "wallets": [{}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runPosctl(t, "", "paycode", "decode", "-rules", file, "281234567890123456"); code != 1 || !strings.Contains(errOut, "invalid rule table") {
		t.Errorf("bad table: exit %d, %s", code, errOut)
	}
}
