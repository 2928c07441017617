package paycode_test

import (
	"errors"
	"fmt"

	"github.com/walletless/walletless/paycode"
)

func ExampleIdentify() {
	res, err := paycode.Identify("281234567890123456")
	if err != nil {
		fmt.Println("decline:", err)
		return
	}
	fmt.Println(res.Kind, res.Scheme, res.Masked)
	// Output: wallet alipay …3456#f03e9a74
}

func ExampleIdentify_declined() {
	_, err := paycode.Identify("0002010102122")
	fmt.Println(err)
	fmt.Println(errors.Is(err, paycode.ErrMalformed))
	// Output:
	// paycode: malformed code: merchant-presented QR: truncated data object at the end
	// true
}

// A rule table from configuration replaces the built-in one. Here a second rule
// overlaps Alipay's range, so a code in the overlap is ambiguous: paycode lists the
// candidates and never guesses.
func ExampleParseRules() {
	rules, err := paycode.ParseRules([]byte(`{
	  "version": "2026-12-01",
	  "wallets": [
	    {"scheme": "alipay", "operator": "Ant Group", "prefixes": [[25, 30]], "min_len": 16, "max_len": 24,
	     "source": "Alipay open platform auth_code rule", "basis": "documented"},
	    {"scheme": "examplepay", "operator": "Example Ltd", "prefixes": [[28, 28]], "min_len": 18, "max_len": 18,
	     "source": "vendor e-mail 2026-11-30", "basis": "inferred"}
	  ]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := rules.Identify("281234567890123456")
	fmt.Println(err)
	fmt.Println(res.Candidates)
	res, _ = rules.Identify("251234567890123456")
	fmt.Println(res.Scheme, res.Basis)
	// Output:
	// paycode: code matches several schemes (alipay, examplepay); ask the customer which app they use
	// [alipay examplepay]
	// alipay documented
}

// Build makes the dynamic merchant-presented code posd prints or shows for one sale.
func ExampleBuild() {
	jpy, _ := paycode.LookupCurrency("JPY")
	code, err := paycode.Build(paycode.MPM{
		PayloadFormat:     "01",
		PointOfInitiation: paycode.PointDynamic,
		MerchantAccounts: []paycode.MerchantAccount{{ID: "26", GUI: "jp.or.paymentsjapan",
			Fields: []paycode.Field{{ID: "01", Value: "0000000000001"}, {ID: "02", Value: "0001"}, {ID: "03", Value: "000001"}, {ID: "04", Value: "000001"}}}},
		MCC:          "5812",
		Currency:     jpy.Numeric,
		Amount:       paycode.FormatAmount(498, jpy),
		Country:      "JP",
		MerchantName: "CAFE",
		MerchantCity: "TOKYO",
		PostalCode:   "1066143",
		Additional:   []paycode.Field{{ID: paycode.AddTerminalLabel, Value: "POS01"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(code)
	m, warnings, err := paycode.Decode(code)
	minor, _ := m.AmountMinor()
	fmt.Println(m.Scheme().Name, minor, len(warnings), err)
	// Output:
	// 00020101021226680019jp.or.paymentsjapan01130000000000001020400010306000001040600000152045812530339254034985802JP5904CAFE6005TOKYO6107106614362090705POS0163043D02
	// jpqr 498 0 <nil>
}

func ExampleDecode() {
	// The EMVCo specification's own example (CRC A13A).
	m, warnings, err := paycode.Decode("00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A")
	if err != nil {
		fmt.Println(err)
		return
	}
	name, _ := m.LanguageField("01")
	minor, _ := m.AmountMinor()
	fmt.Println(m.MerchantName, name, m.Amount, minor, m.Currency)
	fmt.Println(warnings)
	// Output:
	// BEST TRANSPORT 最佳运输 23.72 2372 156
	// [top-level ids are not in ascending order]
}

func ExampleParseAmount() {
	krw, _ := paycode.LookupCurrency("KRW")
	usd, _ := paycode.LookupCurrency("840")
	a, _ := paycode.ParseAmount("15000", krw)
	b, _ := paycode.ParseAmount("19.99", usd)
	_, err := paycode.ParseAmount("19.999", usd)
	fmt.Println(a, b, paycode.FormatAmount(b, usd))
	fmt.Println(err)
	// Output:
	// 15000 1999 19.99
	// paycode: invalid amount: has 3 decimal places where the currency has 2
}

func ExampleMask() {
	fmt.Println(paycode.Mask("134567890123456789"))
	// Output: …6789#e4f7aec5
}
