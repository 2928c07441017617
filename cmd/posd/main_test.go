package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walletless/walletless/daemon"
	"github.com/walletless/walletless/paycode"
)

func TestBannerSamplesAreRecognised(t *testing.T) {
	b := banner(daemon.Info{APIURL: "http://127.0.0.1:8080", BrokerURL: "tcp://127.0.0.1:1", Printer: "emulator:demo/receipts", DataDir: "demo"})
	for _, want := range []string{"curl -s -X POST http://127.0.0.1:8080/v1/sales", `"amount_minor": 12000`, SampleAlipay, SampleWeChat, "demo/receipts"} {
		if !strings.Contains(b, want) {
			t.Errorf("banner lacks %q", want)
		}
	}
	for code, scheme := range map[string]string{SampleAlipay: "alipay", SampleWeChat: "wechatpay"} {
		r, err := paycode.Identify(code)
		if err != nil || r.Scheme != scheme {
			t.Errorf("sample %s: %+v %v, want %s", code, r, err, scheme)
		}
	}
}

func TestBadFlagsAndConfigFailClearly(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"version": 1, "mqtt": {"window": 0}}`), 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-config", bad}, "mqtt.window"},
		{[]string{"-config", filepath.Join(dir, "missing.json")}, "no such file"},
		{[]string{"-device-id", "a/b", "-data", dir}, "device_id"},
		{[]string{"-printer", "emulator:"}, "printer.target"},
		{[]string{"-log-level", "loud", "-data", dir}, "log-level"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), c.args, strings.NewReader(""), &out, &errb)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("posd %v = %v, want an error about %q", c.args, err, c.want)
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-version"}, nil, &out, &out); err != nil || !strings.HasPrefix(out.String(), "posd ") {
		t.Errorf("-version: %v %q", err, out.String())
	}
}
