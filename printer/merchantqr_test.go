package printer

import (
	"slices"
	"strings"
	"testing"

	"github.com/walletless/walletless/paycode"
	"github.com/walletless/walletless/printer/emulator"
	"github.com/walletless/walletless/printer/printertest"
)

func TestEncodeMerchantQR(t *testing.T) {
	jpy, _ := paycode.LookupCurrency("JPY")
	code, err := paycode.Build(paycode.MPM{
		PointOfInitiation: paycode.PointDynamic,
		MerchantAccounts: []paycode.MerchantAccount{{ID: "26", GUI: "jp.or.paymentsjapan",
			Fields: []paycode.Field{{ID: "01", Value: "0000000000001"}, {ID: "02", Value: "0001"}, {ID: "03", Value: "000001"}, {ID: "04", Value: "000001"}}}},
		MCC: "5812", Currency: jpy.Numeric, Amount: paycode.FormatAmount(1200, jpy),
		Country: "JP", MerchantName: "CAFE", MerchantCity: "TOKYO",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Profile{DefaultProfile(), Profile58()} {
		data, err := EncodeMerchantQR(MerchantQR{Header: []string{"CAFE"}, SaleID: "S9", Payload: code, AmountMinor: 1200, Currency: "JPY"}, p)
		if err != nil {
			t.Fatal(err)
		}
		res := emulator.Render(data, emulator.Options{Width: p.WidthDots})
		if got := printertest.QR(res.Image); !slices.Equal(got, []string{code}) {
			t.Errorf("%s: QR %q, want the MPM", p.Name, got)
		}
		if !strings.Contains(res.Text, "¥1,200") || !strings.Contains(res.Text, "Scan with your wallet") {
			t.Errorf("%s: transcript:\n%s", p.Name, res.Text)
		}
		if strings.Contains(strings.ReplaceAll(res.Text, "[QR "+code+"]", ""), code) {
			t.Errorf("%s: payload printed as text", p.Name)
		}
	}
	if _, err := EncodeMerchantQR(MerchantQR{Payload: "", Currency: "JPY"}, DefaultProfile()); err == nil {
		t.Error("empty payload accepted")
	}
}
