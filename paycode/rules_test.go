package paycode

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDefaultRules(t *testing.T) {
	r := DefaultRules()
	if r.Version() != DefaultRulesVersion || len(r.Wallets()) != len(DefaultWalletRules) {
		t.Fatalf("default rules = %s %d", r.Version(), len(r.Wallets()))
	}
	for _, w := range r.Wallets() {
		if w.Source == "" || w.Basis == "" {
			t.Errorf("%s: rule without source or basis", w.Scheme)
		}
	}
	// The JSON form round-trips through ParseRules.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseRules(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Errorf("round trip: %+v != %+v", back, r)
	}
	// Wallets returns a copy.
	r.Wallets()[0].Prefixes[0][0] = 99
	if DefaultRules().Wallets()[0].Prefixes[0][0] == 99 {
		t.Error("Wallets shares memory")
	}
}

func TestParseRulesErrors(t *testing.T) {
	rule := `{"scheme": "x", "operator": "o", "prefixes": [[25, 30]], "min_len": 16, "max_len": 24, "source": "s", "basis": "documented"}`
	tests := []struct{ name, json, text string }{
		{"not json", `{`, "invalid rule table"},
		{"unknown field", `{"version": "1", "wallets": [], "extra": 1}`, "unknown field"},
		{"trailing", `{"version": "1", "wallets": []} {}`, "trailing data"},
		{"no wallets", `{"version": "1"}`, "no \"wallets\""},
		{"no version", `{"wallets": []}`, "version is empty"},
		{"duplicate", `{"version": "1", "wallets": [` + rule + `,` + rule + `]}`, "appears twice"},
		{"bad basis", `{"version": "1", "wallets": [` + strings.Replace(rule, "documented", "sure", 1) + `]}`, "basis must be"},
		{"no source", `{"version": "1", "wallets": [` + strings.Replace(rule, `"source": "s"`, `"source": ""`, 1) + `]}`, "source are required"},
		{"bad lengths", `{"version": "1", "wallets": [` + strings.Replace(rule, `"min_len": 16`, `"min_len": 30`, 1) + `]}`, "min_len"},
		{"prefix too wide", `{"version": "1", "wallets": [` + strings.Replace(rule, "[25, 30]", "[25, 300]", 1) + `]}`, "not within 2 digits"},
		{"prefix reversed", `{"version": "1", "wallets": [` + strings.Replace(rule, "[25, 30]", "[30, 25]", 1) + `]}`, "prefix range"},
		{"bad check", `{"version": "1", "wallets": [` + strings.Replace(rule, `"source"`, `"check": "crc", "source"`, 1) + `]}`, "check must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRules([]byte(tt.json))
			if !errors.Is(err, ErrRules) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("err = %v, want ErrRules with %q", err, tt.text)
			}
		})
	}
}

func TestRulesPrefixLenAndLuhn(t *testing.T) {
	r, err := NewRules("t", []WalletRule{{Scheme: "card", Operator: "o", Prefixes: [][2]int{{4000, 4999}}, PrefixLen: 4,
		MinLen: 16, MaxLen: 16, Check: "luhn", Source: "test", Basis: BasisGuessed}})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := r.Identify("4111111111111111"); err != nil || res.Scheme != "card" {
		t.Errorf("luhn-valid: %+v %v", res, err)
	}
	if _, err := r.Identify("4111111111111112"); !errors.Is(err, ErrUnknown) {
		t.Errorf("luhn-invalid: %v", err)
	}
	var zero Rules
	if _, err := zero.Identify("281234567890123456"); !errors.Is(err, ErrUnknown) {
		t.Errorf("zero Rules: %v", err)
	}
}

func TestMask(t *testing.T) {
	m := Mask("281234567890123456")
	if !strings.HasPrefix(m, "…3456#") || len(m) != len("…3456#")+8 || strings.Contains(m, "2812") {
		t.Errorf("Mask = %q", m)
	}
	if Mask("最佳运输北京") != "…运输北京#"+Mask("最佳运输北京")[len("…运输北京#"):] {
		t.Errorf("Mask does not keep four runes: %q", Mask("最佳运输北京"))
	}
	if Mask("a") == Mask("b") {
		t.Error("different codes share a mask")
	}
}

func TestRulesInConfigStruct(t *testing.T) {
	var cfg struct {
		Wallets *Rules `json:"wallet_rules"`
	}
	b, _ := json.Marshal(map[string]any{"wallet_rules": DefaultRules()})
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.Wallets == nil || !reflect.DeepEqual(*cfg.Wallets, DefaultRules()) {
		t.Fatalf("unmarshal: %v", err)
	}
	err := json.Unmarshal([]byte(`{"wallet_rules": {"version": "1", "wallets": [{"scheme": "x"}]}}`), &cfg)
	if !errors.Is(err, ErrRules) {
		t.Errorf("invalid table in config: %v", err)
	}
}
