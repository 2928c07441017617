package printer

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/walletless/walletless/paycode"
)

// currencySymbols are the prefixes printed before an amount, as customers in each
// market expect them (CN¥ rather than a bare ¥ so a yuan is not read as a yen).
var currencySymbols = map[string]string{
	"KRW": "₩", "JPY": "¥", "CNY": "CN¥", "HKD": "HK$", "USD": "$", "EUR": "€",
	"SGD": "S$", "THB": "฿", "MYR": "RM", "IDR": "Rp", "VND": "₫", "BRL": "R$",
	"TWD": "NT$", "GBP": "£", "AUD": "A$", "KWD": "KD ",
}

// FormatAmount formats minor units of an ISO 4217 currency the local way, exactly,
// from integers: FormatAmount(12000, "KRW") is "₩12,000", FormatAmount(2372, "CNY") is
// "CN¥23.72". A currency without a known symbol is written with its code
// ("CHF 1.50"); an unknown currency is an error.
func FormatAmount(minor int64, currency string) (string, error) {
	num, sym, err := formatParts(minor, currency)
	if err != nil {
		return "", err
	}
	neg := strings.HasPrefix(num, "-")
	num = strings.TrimPrefix(num, "-")
	s := sym + num
	if neg {
		s = "-" + s
	}
	return s, nil
}

// FormatAmountCode is FormatAmount with the ISO code instead of the symbol:
// "KRW 12,000".
func FormatAmountCode(minor int64, currency string) (string, error) {
	num, _, err := formatParts(minor, currency)
	if err != nil {
		return "", err
	}
	return strings.ToUpper(currency) + " " + num, nil
}

func formatParts(minor int64, currency string) (num, sym string, err error) {
	c, ok := paycode.LookupCurrency(currency)
	if !ok || len(currency) != 3 || currency[0] < 'A' {
		return "", "", fmt.Errorf("%w: %q", ErrCurrency, currency)
	}
	sym, ok = currencySymbols[c.Code]
	if !ok {
		sym = c.Code + " "
	}
	neg := minor < 0
	// Work on the unsigned magnitude so math.MinInt64 formats correctly.
	u := uint64(minor)
	if neg {
		u = -u
	}
	digits := strconv.FormatUint(u, 10)
	exp := c.Exponent
	if len(digits) <= exp {
		digits = strings.Repeat("0", exp-len(digits)+1) + digits
	}
	intPart, frac := digits[:len(digits)-exp], digits[len(digits)-exp:]
	var sb strings.Builder
	if neg {
		sb.WriteByte('-')
	}
	for i, d := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			sb.WriteByte(',')
		}
		sb.WriteRune(d)
	}
	if exp > 0 {
		sb.WriteByte('.')
		sb.WriteString(frac)
	}
	return sb.String(), sym, nil
}
