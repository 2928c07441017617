package printer_test

import (
	"fmt"
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
// This 58 mm profile has no native QR, so the sale id's QR code goes as a raster image
// and shows in the PNG only, not in the transcript.
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
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(emulator.Render(data, emulator.Options{Width: 384}).Text)
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
	//
	//
	// Sale ID for refunds
	// S1
}
