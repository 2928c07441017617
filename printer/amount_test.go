package printer

import (
	"errors"
	"math"
	"testing"
)

func TestFormatAmount(t *testing.T) {
	for _, tc := range []struct {
		minor    int64
		cur, sym string
		code     string
	}{
		{12000, "KRW", "₩12,000", "KRW 12,000"},
		{1200, "JPY", "¥1,200", "JPY 1,200"},
		{1200, "HKD", "HK$12.00", "HKD 12.00"},
		{2372, "CNY", "CN¥23.72", "CNY 23.72"},
		{5, "USD", "$0.05", "USD 0.05"},
		{0, "EUR", "€0.00", "EUR 0.00"},
		{-150, "GBP", "-£1.50", "GBP -1.50"},
		{1234567, "KWD", "KD 1,234.567", "KWD 1,234.567"},
		{100000000, "VND", "₫100,000,000", "VND 100,000,000"},
		{150, "CHF", "CHF 1.50", "CHF 1.50"},
		{math.MaxInt64, "KRW", "₩9,223,372,036,854,775,807", "KRW 9,223,372,036,854,775,807"},
		{math.MinInt64, "USD", "-$92,233,720,368,547,758.08", "USD -92,233,720,368,547,758.08"},
	} {
		got, err := FormatAmount(tc.minor, tc.cur)
		if err != nil || got != tc.sym {
			t.Errorf("FormatAmount(%d, %s) = %q, %v; want %q", tc.minor, tc.cur, got, err, tc.sym)
		}
		got, err = FormatAmountCode(tc.minor, tc.cur)
		if err != nil || got != tc.code {
			t.Errorf("FormatAmountCode(%d, %s) = %q, %v; want %q", tc.minor, tc.cur, got, err, tc.code)
		}
	}
	for _, bad := range []string{"", "XXX", "410", "KRWX"} {
		if _, err := FormatAmount(1, bad); !errors.Is(err, ErrCurrency) {
			t.Errorf("FormatAmount(1, %q) err = %v, want ErrCurrency", bad, err)
		}
	}
}
