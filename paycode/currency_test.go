package paycode

import (
	"errors"
	"math"
	"sort"
	"testing"
)

func TestCurrencyTable(t *testing.T) {
	cs := Currencies()
	if !sort.SliceIsSorted(cs, func(i, j int) bool { return cs[i].Code < cs[j].Code }) {
		t.Error("table not sorted by code")
	}
	seen := map[string]bool{}
	for _, c := range cs {
		if len(c.Code) != 3 || len(c.Numeric) != 3 || !isDigits(c.Numeric) || c.Exponent < 0 || c.Exponent > 4 {
			t.Errorf("bad entry %+v", c)
		}
		if seen[c.Code] || seen[c.Numeric] {
			t.Errorf("duplicate %+v", c)
		}
		seen[c.Code], seen[c.Numeric] = true, true
	}
	for _, tt := range []struct {
		in   string
		code string
		exp  int
	}{{"KRW", "KRW", 0}, {"392", "JPY", 0}, {"jpy", "JPY", 0}, {"156", "CNY", 2}, {"764", "THB", 2},
		{"986", "BRL", 2}, {"360", "IDR", 2}, {"704", "VND", 0}, {"414", "KWD", 3}, {"458", "MYR", 2}, {"702", "SGD", 2}} {
		c, ok := LookupCurrency(tt.in)
		if !ok || c.Code != tt.code || c.Exponent != tt.exp {
			t.Errorf("LookupCurrency(%q) = %+v, %v", tt.in, c, ok)
		}
	}
	if _, ok := LookupCurrency("XXX"); ok {
		t.Error("XXX found")
	}
}

func TestParseAmount(t *testing.T) {
	usd, _ := LookupCurrency("USD")
	jpy, _ := LookupCurrency("JPY")
	kwd, _ := LookupCurrency("KWD")
	tests := []struct {
		s    string
		c    Currency
		want int64
		ok   bool
	}{
		{"23.72", usd, 2372, true}, {"23.7", usd, 2370, true}, {"23", usd, 2300, true}, {"0.01", usd, 1, true},
		{"23.720", usd, 2372, true}, {"498", jpy, 498, true}, {"498.00", jpy, 498, true}, {"1.234", kwd, 1234, true},
		{"0.1", usd, 10, true}, {"92233720368547758.07", usd, math.MaxInt64, true},
		{"92233720368547758.08", usd, 0, false}, {"23.725", usd, 0, false}, {"498.5", jpy, 0, false},
		{"", usd, 0, false}, {".5", usd, 0, false}, {"5.", usd, 0, false}, {"-5", usd, 0, false}, {"+5", usd, 0, false},
		{"1e3", usd, 0, false}, {"1,000", usd, 0, false}, {" 5", usd, 0, false}, {"1.2.3", usd, 0, false},
	}
	for _, tt := range tests {
		got, err := ParseAmount(tt.s, tt.c)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("ParseAmount(%q, %s) = %d, %v; want %d", tt.s, tt.c.Code, got, err, tt.want)
		}
		if !tt.ok && !errors.Is(err, ErrAmount) {
			t.Errorf("ParseAmount(%q, %s) = %d, %v; want ErrAmount", tt.s, tt.c.Code, got, err)
		}
	}
}

func TestFormatAmount(t *testing.T) {
	usd, _ := LookupCurrency("USD")
	jpy, _ := LookupCurrency("JPY")
	kwd, _ := LookupCurrency("KWD")
	for _, tt := range []struct {
		v    int64
		c    Currency
		want string
	}{{2372, usd, "23.72"}, {5, usd, "0.05"}, {0, usd, "0.00"}, {498, jpy, "498"}, {1234, kwd, "1.234"},
		{-5, usd, "-0.05"}, {math.MaxInt64, usd, "92233720368547758.07"}, {math.MinInt64, jpy, "-9223372036854775808"}} {
		if got := FormatAmount(tt.v, tt.c); got != tt.want {
			t.Errorf("FormatAmount(%d, %s) = %q, want %q", tt.v, tt.c.Code, got, tt.want)
		}
		if tt.v >= 0 {
			if back, err := ParseAmount(tt.want, tt.c); err != nil || back != tt.v {
				t.Errorf("ParseAmount(FormatAmount(%d)) = %d, %v", tt.v, back, err)
			}
		}
	}
}
