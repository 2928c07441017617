package printer_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/walletless/walletless/printer"
	"github.com/walletless/walletless/printer/emulator"
)

func ExampleFormatAmount() {
	for _, a := range []struct {
		minor int64
		cur   string
	}{{12000, "KRW"}, {1200, "JPY"}, {1200, "HKD"}, {2372, "CNY"}} {
		s, _ := printer.FormatAmount(a.minor, a.cur)
		fmt.Println(s)
	}
	// Output:
	// ₩12,000
	// ¥1,200
	// HK$12.00
	// CN¥23.72
}

// EncodeReceipt gives the bytes for the printer; the emulator shows what they print.
func ExampleEncodeReceipt() {
	data, err := printer.EncodeReceipt(printer.Receipt{
		Header:      []string{"Cafe"},
		SaleID:      "S1",
		Time:        time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC),
		AmountMinor: 1200,
		Currency:    "HKD",
		Scheme:      "wechatpay",
		MaskedCode:  "****1234 #ab12cd",
		Status:      "approved",
	}, printer.Profile58())
	// The 58 mm profile sends the sale id's QR code as a raster image, which shows in
	// the PNG (Result.Image) but not in the text transcript.
	if err != nil {
		fmt.Println(err)
		return
	}
	res := emulator.Render(data, emulator.Options{Width: 384})
	for _, line := range strings.Split(res.Text, "\n") {
		if strings.TrimSpace(line) != "" { // skip the feeds
			fmt.Println(line)
		}
	}
	// Output:
	// Cafe
	// --------------------------------
	// Date     2026-01-02 15:04:05 UTC
	// Sale     S1
	// Scheme   wechatpay
	// Code     ****1234 #ab12cd
	// --------------------------------
	// TOTAL                   HK$12.00
	// --------------------------------
	//  APPROVED
	// Sale ID for refunds
	// S1
}
