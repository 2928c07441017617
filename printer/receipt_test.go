package printer

import (
	"bytes"
	"flag"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/printer/emulator"
	"github.com/walletless/walletless/printer/printertest"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func sampleReceipt() Receipt {
	seoul := time.FixedZone("KST", 9*3600)
	return Receipt{
		Header:      []string{"Walletless Cafe", "12 Sejong-daero, Jung-gu, Seoul", "Tel 02-123-4567"},
		SaleID:      "S01JD4ZQ8R5W3X",
		Time:        time.Date(2026, 11, 22, 14, 5, 9, 0, seoul),
		AmountMinor: 12000,
		Currency:    "KRW",
		Scheme:      "alipay",
		Operator:    "Alipay+",
		MaskedCode:  "****4321 #7f3a9c",
		Status:      "approved",
		Language:    "en",
	}
}

func TestEncodeReceiptGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    func() Receipt
		p    Profile
	}{
		{"receipt-80-en", sampleReceipt, DefaultProfile()},
		{"receipt-58-en", func() Receipt {
			r := sampleReceipt()
			r.Status, r.Reason, r.AmountMinor, r.Currency = "declined", "code expired", 2372, "CNY"
			return r
		}, Profile58()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r()
			data, err := EncodeReceipt(r, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			goldenBytes(t, tc.name+".bin", data)
			res := emulator.Render(data, emulator.Options{Width: tc.p.WidthDots, Multibyte: tc.p.CJKEncoding})
			if len(res.Warnings) > 0 {
				t.Errorf("emulator warnings: %v", res.Warnings)
			}
			var buf bytes.Buffer
			if err := png.Encode(&buf, res.Image); err != nil {
				t.Fatal(err)
			}
			goldenBytes(t, tc.name+".png", buf.Bytes())
			if got := printertest.QR(res.Image); !slices.Equal(got, []string{r.SaleID}) {
				t.Errorf("gozxing read QR %q, want %q", got, r.SaleID)
			}
			path := filepath.Join(t.TempDir(), "r.png")
			if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := printertest.Zbar(t, path); !slices.Equal(got, []string{"QR-Code:" + r.SaleID}) {
				t.Errorf("zbarimg read %q, want QR-Code:%s", got, r.SaleID)
			}
		})
	}
}

func TestEncodeReceiptText(t *testing.T) {
	r := sampleReceipt()
	data, err := EncodeReceipt(r, DefaultProfile())
	if err != nil {
		t.Fatal(err)
	}
	res := emulator.Render(data, emulator.Options{})
	for _, want := range []string{"Walletless Cafe", "2026-11-22 14:05:09 KST", "S01JD4ZQ8R5W3X", "alipay", "Alipay+", "****4321 #7f3a9c", "KRW 12,000", "APPROVED"} {
		if !strings.Contains(res.Text, want) {
			t.Errorf("receipt lacks %q:\n%s", want, res.Text)
		}
	}
	if res.Cuts != 1 {
		t.Errorf("%d cuts, want 1", res.Cuts)
	}
}

// goldenBytes compares got with testdata/name, or rewrites it with -update.
func goldenBytes(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		out := filepath.Join(t.TempDir(), name)
		os.WriteFile(out, got, 0o644)
		t.Errorf("%s differs from golden; got %s (go test -update rewrites it)", path, out)
	}
}
