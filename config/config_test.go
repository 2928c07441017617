package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestExampleFileParses(t *testing.T) {
	c, err := Load("../deploy/posd.example.json")
	if err != nil {
		t.Fatal(err)
	}
	if c.DeviceID != "shop-7-counter-1" || time.Duration(c.MQTT.ResendAfter) != 15*time.Second || c.Scanner.Source != "usb:1eab:0d10" ||
		time.Duration(c.Payment.PresentTimeout) != 3*time.Minute || !strings.HasPrefix(c.Merchant.EMVQR, "000201010211") {
		t.Fatalf("parsed %+v", c)
	}
}

func TestPartialFileKeepsDefaults(t *testing.T) {
	c, err := Parse(strings.NewReader(`{"version":1,"device_id":"x1"}`))
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if c.DeviceID != "x1" || c.API != d.API || c.MQTT.Window != d.MQTT.Window {
		t.Fatalf("%+v", c)
	}
}

func TestBadInputIsRejectedWithTheField(t *testing.T) {
	for in, want := range map[string]string{
		`{"version":2}`:                                                                 "version",
		`{"version":1,"device_id":"a/b"}`:                                               "device_id",
		`{"version":1,"surprise":1}`:                                                    "unknown field",
		`{"version":1} {"version":1}`:                                                   "after the JSON",
		`{"version":1,"api":{"addr":"8080"}}`:                                           "api.addr",
		`{"version":1,"mqtt":{"broker":"x"}}`:                                           "mqtt.broker",
		`{"version":1,"api":{"tls_cert_file":"/etc/api.crt"}}`:                          "api.tls_cert_file",
		`{"version":1,"mqtt":{"window":0}}`:                                             "mqtt.window",
		`{"version":1,"scanner":{"dedup":5}}`:                                           "duration",
		`{"version":1,"printer":{"language":"fr"}}`:                                     "printer.language",
		`{"version":1,"payment":{"auth_timeout":"1ms"}}`:                                "payment.auth_timeout",
		`{"version":1,"payment":{"present_timeout":"0s"}}`:                              "payment.present_timeout",
		`{"version":1,"payment":{"present_timeout":"-1m"}}`:                             "payment.present_timeout",
		`{"version":1,"payment":{"present_timeout":"2h"}}`:                              "payment.present_timeout",
		`{"version":1,"payment":{"present_timeout":3}}`:                                 "duration",
		`{"version":1,"merchant":{"emv_qr":"hello"}}`:                                   "merchant.emv_qr",
		`{"version":1,"merchant":{"emv_qr":" 000201"}}`:                                 "merchant.emv_qr",
		`{"version":1,"merchant":{"emv_qr":"000201\n"}}`:                                "merchant.emv_qr",
		`{"version":1,"merchant":{"emv_qr":"0002010102\u0000"}}`:                        "merchant.emv_qr",
		`{"version":1,"merchant":{"emv_qr":"hQVDUFYwMQ=="}}`:                            "merchant.emv_qr",
		`{"version":1,"merchant":{"emv_qr":"` + strings.Repeat("0", MaxEMVQR+1) + `"}}`: "merchant.emv_qr",
		`{"version":1,"merchant":{"emv_qr":42}}`:                                        "merchant.emv_qr",
		``:                                                                              "EOF",
		`[`:                                                                             "unexpected EOF",
	} {
		_, err := Parse(strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%s) = %v, want error mentioning %q", in, err, want)
		}
	}
	if _, err := Parse(strings.NewReader(strings.Repeat(" ", MaxSize+1))); err == nil {
		t.Error("oversize config accepted")
	}
	if _, err := Load("does-not-exist.json"); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file: %v", err)
	}
}

func TestPresentTimeoutAndMerchantQR(t *testing.T) {
	if d := Default(); time.Duration(d.Payment.PresentTimeout) != 3*time.Minute || d.Merchant.EMVQR != "" {
		t.Fatalf("defaults: present_timeout %s, emv_qr %q", time.Duration(d.Payment.PresentTimeout), d.Merchant.EMVQR)
	}
	const sample = "00020101021126480020com.example.acquirer0120SAMPLE-MERCHANT-00015204541153034105802KR5918SEOUL CORNER STORE6005SEOUL62090305SHOP76304CBD5"
	for _, ok := range []string{"1s", "3m", "1h"} {
		c, err := Parse(strings.NewReader(`{"version":1,"payment":{"present_timeout":"` + ok + `"},"merchant":{"emv_qr":"` + sample + `"}}`))
		if err != nil {
			t.Fatalf("present_timeout %s: %v", ok, err)
		}
		if c.Merchant.EMVQR != sample || c.Merchant.Name != Default().Merchant.Name {
			t.Fatalf("merchant %+v", c.Merchant)
		}
	}
	// Every bad field is reported, each naming its key.
	_, err := Parse(strings.NewReader(`{"version":1,"payment":{"present_timeout":"0s"},"merchant":{"emv_qr":"x"}}`))
	if err == nil || !strings.Contains(err.Error(), "config: payment.present_timeout: 0s is not between 1s and 1h0m0s") ||
		!strings.Contains(err.Error(), "config: merchant.emv_qr: is not an EMVCo merchant-presented QR payload") {
		t.Fatalf("both errors: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func FuzzParse(f *testing.F) {
	b, _ := os.ReadFile("../deploy/posd.example.json")
	f.Add(b)
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(strings.NewReader(string(data)))
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config that does not validate: %v", verr)
			}
		}
	})
}

// TestTLSIsNeverSilentlyOff: TLS files with a plaintext broker URL, a password over
// plaintext and a plaintext broker off loopback are refused, naming the keys;
// mqtt.allow_plaintext lets the last two through (the link warns at each connect).
func TestTLSIsNeverSilentlyOff(t *testing.T) {
	for _, tc := range []struct {
		name, mqtt string
		want       []string // empty: valid
	}{
		{"tls files over tcp", `"broker":"tcp://broker.example:1883","ca_file":"ca.pem","cert_file":"c.pem","key_file":"k.pem"`,
			[]string{"mqtt.broker", "mqtt.ca_file, mqtt.cert_file, mqtt.key_file are set", "ssl://broker.example:8883"}},
		{"ca file over mqtt", `"broker":"mqtt://127.0.0.1:1883","ca_file":"ca.pem"`, []string{"mqtt.ca_file is set", "TLS would be silently off"}},
		{"key pair over ws", `"broker":"ws://127.0.0.1:9001","cert_file":"c.pem","key_file":"k.pem"`, []string{"mqtt.cert_file, mqtt.key_file are set"}},
		{"tls files over tcp even when plaintext is allowed", `"broker":"tcp://127.0.0.1:1883","ca_file":"ca.pem","allow_plaintext":true`, []string{"mqtt.ca_file is set"}},
		{"password over loopback tcp", `"broker":"tcp://127.0.0.1:1883","username":"u","password":"p"`, []string{"mqtt.broker", "password would cross the network in clear text", "mqtt.allow_plaintext"}},
		{"password file over tcp", `"broker":"tcp://localhost:1883","username":"u","password_file":"/etc/pw"`, []string{"password would cross"}},
		{"non-loopback plaintext", `"broker":"tcp://10.0.0.5:1883"`, []string{"mqtt.broker", "not loopback", "mqtt.allow_plaintext"}},
		{"non-loopback name", `"broker":"mqtt://broker.example:1883"`, []string{"not loopback"}},
		{"password and password file", `"broker":"ssl://b:8883","password":"p","password_file":"/etc/pw"`, []string{"mqtt.password", "exclude each other"}},
		{"allowed: loopback plaintext without password", `"broker":"tcp://127.0.0.1:1883"`, nil},
		{"allowed: ipv6 loopback", `"broker":"tcp://[::1]:1883"`, nil},
		{"allowed: plaintext opt-in with password", `"broker":"tcp://10.0.0.5:1883","username":"u","password":"p","allow_plaintext":true`, nil},
		{"allowed: tls with password file", `"broker":"ssl://broker.example:8883","ca_file":"ca.pem","username":"u","password_file":"/etc/pw"`, nil},
		{"allowed: mutual tls", `"broker":"mqtts://broker.example:8883","ca_file":"ca.pem","cert_file":"c.pem","key_file":"k.pem"`, nil},
		{"allowed: wss with password", `"broker":"wss://broker.example:443","password":"p"`, nil},
	} {
		_, err := Parse(strings.NewReader(`{"version":1,"mqtt":{` + tc.mqtt + `}}`))
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
	}
}

func TestExampleFileUsesTLS(t *testing.T) {
	c, err := Load("../deploy/posd.example.json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.MQTT.Broker, "ssl://") || !strings.HasSuffix(c.MQTT.Broker, ":8883") || c.MQTT.CAFile == "" || c.MQTT.Password != "" {
		t.Fatalf("example mqtt section: %+v", c.MQTT)
	}
}
