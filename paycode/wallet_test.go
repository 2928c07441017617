package paycode

import (
	"errors"
	"strings"
	"testing"
)

func TestIdentifyWallet(t *testing.T) {
	tests := []struct {
		name, code, scheme string
		err                error
	}{
		{"alipay 18", "281234567890123456", "alipay", nil},
		{"alipay 16", "2512345678901234", "alipay", nil},
		{"alipay 24", "301234567890123456789012", "alipay", nil},
		{"alipay too short", "251234567890123", "", ErrUnknown},
		{"alipay too long", "3012345678901234567890123", "", ErrUnknown},
		{"wechat", "134567890123456789", "wechatpay", nil},
		{"wechat 10", "101234567890123456", "wechatpay", nil},
		{"wechat 17 digits", "13456789012345678", "", ErrUnknown},
		{"unionpay", "6212345678901234567", "unionpay", nil},
		{"unionpay 18 digits", "621234567890123456", "", ErrUnknown},
		{"card-like", "4111111111111111", "", ErrUnknown},
		{"prefix 16", "161234567890123456", "", ErrUnknown},
		{"empty", "", "", ErrEmpty},
		{"text", "hello world", "", ErrUnknown},
		{"url", "https://qr.alipay.com/abc", "", ErrUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Identify(tt.code)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if r.Scheme != tt.scheme {
				t.Errorf("scheme = %q, want %q", r.Scheme, tt.scheme)
			}
			if tt.err == nil && (r.Kind != KindWallet || r.Operator == "" || r.Basis == "" || r.RulesVersion != DefaultRulesVersion) {
				t.Errorf("result = %+v", r)
			}
			if err != nil && tt.code != "" && strings.Contains(err.Error(), tt.code) {
				t.Errorf("error %q contains the code", err)
			}
		})
	}
}

func TestAmbiguous(t *testing.T) {
	rules, err := ParseRules([]byte(`{"version": "test-1", "wallets": [
		{"scheme": "alipay", "operator": "Ant", "prefixes": [[25, 30]], "min_len": 16, "max_len": 24, "source": "s", "basis": "documented"},
		{"scheme": "linepay_jp", "operator": "LY Corp", "prefixes": [[0, 99]], "min_len": 19, "max_len": 19, "source": "s", "basis": "guessed"}
	]}`))
	if err != nil {
		t.Fatal(err)
	}
	code := "2812345678901234567"
	r, err := rules.Identify(code)
	if !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("err = %v, want ErrAmbiguous", err)
	}
	if r.Kind != "" || r.Scheme != "" || len(r.Candidates) != 2 || r.Candidates[0] != "alipay" || r.Candidates[1] != "linepay_jp" {
		t.Errorf("result = %+v", r)
	}
	if strings.Contains(err.Error(), code) || !strings.Contains(err.Error(), "alipay, linepay_jp") {
		t.Errorf("error = %q", err)
	}
	// Outside the overlap each rule still decides alone, with the basis reported.
	r, err = rules.Identify("1112345678901234567")
	if err != nil || r.Scheme != "linepay_jp" || r.Basis != BasisGuessed || len(r.Warnings) != 1 {
		t.Errorf("Identify = %+v, %v", r, err)
	}
}
