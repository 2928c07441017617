package printer

import (
	"testing"
	"time"

	"github.com/walletless/walletless/printer/emulator"
)

// FuzzEncodeReceipt: any text from config or the payment engine encodes without
// panicking or looping, and the emulator reads the result without warnings.
func FuzzEncodeReceipt(f *testing.F) {
	f.Add("Walletless Cafe", "S01JD4", "alipay", "****4321 #7f3a9c", "declined", "code expired", "ko", int64(12000), "KRW", uint8(0))
	f.Add("", "x", "", "", "", "", "ja", int64(-1), "JPY", uint8(1))
	f.Add("한국어 상점 이름이 아주 길어서 줄을 넘어갑니다 한국어 상점 이름", "S", "微信支付", "", "stored_offline", "", "zh", int64(0), "CNY", uint8(2))
	f.Fuzz(func(t *testing.T, header, sale, scheme, code, status, reason, lang string, amount int64, cur string, prof uint8) {
		names := ProfileNames()
		p, _ := LookupProfile(names[int(prof)%len(names)])
		r := Receipt{Header: []string{header, header}, SaleID: sale, Time: time.Unix(1700000000, 0).UTC(),
			AmountMinor: amount, Currency: cur, Scheme: scheme, Operator: scheme, MaskedCode: code,
			Status: status, Reason: reason, Language: lang}
		data, err := EncodeReceipt(r, p)
		if err != nil {
			return
		}
		res := emulator.Render(data, emulator.Options{Width: p.WidthDots, Multibyte: p.CJKEncoding, MaxHeight: 20000})
		for _, w := range res.Warnings {
			if w.Msg[:2] != "no" { // "no CJK font" is the machine's, not the stream's
				t.Fatalf("emulator warning on our own stream: %v", w)
			}
		}
	})
}
