package printer

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/walletless/walletless/printer/emulator"
	"github.com/walletless/walletless/printer/escpos"
	"github.com/walletless/walletless/printer/printertest"
)

// cjkCases are the receipt in each CJK language on a printer with that encoding.
var cjkCases = []struct {
	lang, profile, cur string
	minor              int64
	want               []string // in the emulator's transcript
	bytes              []byte   // must appear in the ESC/POS stream (encoded label)
}{
	{"ko", "epson-80-ko", "KRW", 12000, []string{"거래번호", "합계", "승인", "￦12,000"}, []byte{0xc7, 0xd5, 0xb0, 0xe8}},  // 합계 in EUC-KR
	{"ja", "epson-80-ja", "JPY", 1200, []string{"取引番号", "合計", "承認", "¥1,200"}, []byte{0x8d, 0x87, 0x8c, 0x76}},    // 合計 in Shift_JIS
	{"zh", "epson-80-zh", "CNY", 2372, []string{"交易号", "合计", "交易成功", "CN¥23.72"}, []byte{0xba, 0xcf, 0xbc, 0xc6}}, // 合计 in GB18030
}

func TestEncodeReceiptCJK(t *testing.T) {
	for _, tc := range cjkCases {
		t.Run(tc.lang, func(t *testing.T) {
			p, _ := LookupProfile(tc.profile)
			r := sampleReceipt()
			r.Language, r.Currency, r.AmountMinor = tc.lang, tc.cur, tc.minor
			data, err := EncodeReceipt(r, p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(data, tc.bytes) {
				t.Errorf("stream lacks % x", tc.bytes)
			}
			if !bytes.Contains(data, []byte{escpos.FS, '&'}) {
				t.Error("no FS & (multibyte mode)")
			}
			goldenBytes(t, "receipt-80-"+tc.lang+".bin", data)
			res := emulator.Render(data, emulator.Options{Width: p.WidthDots, Multibyte: p.CJKEncoding})
			for _, want := range tc.want {
				if !strings.Contains(res.Text, want) {
					t.Errorf("transcript lacks %q:\n%s", want, res.Text)
				}
			}
			if got := printertest.QR(res.Image); !slices.Equal(got, []string{r.SaleID}) {
				t.Errorf("QR %q", got)
			}
			if emulator.CJKFont() == "" {
				t.Skip("no CJK font for the golden PNG: apt-get install fonts-wqy-microhei")
			}
			if len(res.Warnings) != 0 {
				t.Errorf("warnings: %v", res.Warnings)
			}
			var buf bytes.Buffer
			png.Encode(&buf, res.Image)
			if *update {
				os.WriteFile(filepath.Join("testdata", "receipt-80-"+tc.lang+".png"), buf.Bytes(), 0o644)
			}
		})
	}
}

// TestCJKWithoutMultibyteProfile: a printer without a CJK mode gets '?' rather than
// garbage, and the amount still prints.
func TestCJKWithoutMultibyteProfile(t *testing.T) {
	r := sampleReceipt()
	r.Language = "ko"
	data, err := EncodeReceipt(r, DefaultProfile())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte{escpos.FS, '&'}) {
		t.Error("FS & sent to a printer without multibyte mode")
	}
	res := emulator.Render(data, emulator.Options{})
	if !strings.Contains(res.Text, "KRW 12,000") || !strings.Contains(res.Text, "??") {
		t.Errorf("transcript:\n%s", res.Text)
	}
}
