package printer

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/walletless/walletless/printer/emulator"
	"github.com/walletless/walletless/printer/printertest"
)

func TestOpenSpecs(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		spec string
		ok   bool
	}{
		{"none", true},
		{"emulator:" + filepath.Join(dir, "out"), true},
		{filepath.Join(dir, "new.bin"), true},
		{"file:" + filepath.Join(dir, "f.bin"), true},
		{"tcp:127.0.0.1", true},
		{"tcp:127.0.0.1:9101", true},
		{"/dev/ttyUSB9:19200", true},
		{"serial:/dev/ttyS0:abc", false},
		{"", false},
		{"emulator:", false},
		{dir, false},
		{filepath.Join(dir, "missing", "x.bin"), false},
		{"none?color=red", false},
	} {
		p, err := Open(tc.spec, nil)
		if (err == nil) != tc.ok {
			t.Errorf("Open(%q) err = %v, want ok=%v", tc.spec, err, tc.ok)
		}
		if p != nil {
			p.Close()
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, good := range []string{"S01JD4", "sale-1_2.x"} {
		if err := CheckName(good); err != nil {
			t.Errorf("CheckName(%q) = %v", good, err)
		}
	}
	for _, bad := range []string{"", ".hidden", "../x", "a/b", "a b", string(make([]byte, 200))} {
		if err := CheckName(bad); !errors.Is(err, ErrName) {
			t.Errorf("CheckName(%q) = %v, want ErrName", bad, err)
		}
	}
}

func TestFilePrinterAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "paper.bin")
	p, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	for _, s := range []string{"one", "two"} {
		if err := p.Print(ctx, s, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := os.ReadFile(path)
	if string(got) != "onetwo" {
		t.Errorf("file holds %q", got)
	}
}

func TestEmulatorPrinter(t *testing.T) {
	dir := t.TempDir()
	p, err := OpenWith("emulator:"+dir, Options{Profile: Profile58()})
	if err != nil {
		t.Fatal(err)
	}
	r := sampleReceipt()
	data, err := EncodeReceipt(r, Profile58())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Print(context.Background(), r.SaleID, data); err != nil {
		t.Fatal(err)
	}
	if err := p.Print(context.Background(), "../evil", data); !errors.Is(err, ErrName) {
		t.Errorf("bad name: %v", err)
	}
	p.Close()
	if err := p.Print(context.Background(), "late", data); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	bin, err := os.ReadFile(filepath.Join(dir, r.SaleID+".bin"))
	if err != nil || !bytes.Equal(bin, data) {
		t.Fatalf(".bin: %v", err)
	}
	f, err := os.Open(filepath.Join(dir, r.SaleID+".png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() != 384 {
		t.Errorf("PNG %d dots wide, want 384", img.Bounds().Dx())
	}
	if got := printertest.QR(img); !slices.Equal(got, []string{r.SaleID}) {
		t.Errorf("QR in PNG = %q", got)
	}
}

func TestEncodeReceiptErrors(t *testing.T) {
	r := sampleReceipt()
	r.Currency = "XXX"
	if _, err := EncodeReceipt(r, DefaultProfile()); !errors.Is(err, ErrCurrency) {
		t.Errorf("currency: %v", err)
	}
	r = sampleReceipt()
	r.Language = "xx"
	if _, err := EncodeReceipt(r, DefaultProfile()); err == nil {
		t.Error("unknown language accepted")
	}
	r = sampleReceipt()
	r.SaleID = ""
	if _, err := EncodeReceipt(r, DefaultProfile()); err == nil {
		t.Error("empty sale id accepted")
	}
	p := DefaultProfile()
	p.Columns = 500
	if _, err := EncodeReceipt(sampleReceipt(), p); err == nil {
		t.Error("bad profile accepted")
	}
}

func TestProfiles(t *testing.T) {
	for _, n := range ProfileNames() {
		p, ok := LookupProfile(n)
		if !ok || p.Name != n {
			t.Errorf("LookupProfile(%q) = %+v", n, p)
		}
		if err := p.Validate(); err != nil {
			t.Error(err)
		}
	}
}

func TestEncodeTestPage(t *testing.T) {
	for _, p := range []Profile{DefaultProfile(), Profile58()} {
		data, err := EncodeTestPage(TestPage{Title: "Walletless printer test", Fields: [][2]string{{"Version", "dev"}}, QR: "walletless-test"}, p)
		if err != nil {
			t.Fatal(err)
		}
		res := emulator.Render(data, emulator.Options{Width: p.WidthDots})
		if len(res.Warnings) != 0 {
			t.Errorf("%s: warnings %v", p.Name, res.Warnings)
		}
		if got := printertest.QR(res.Image); !slices.Equal(got, []string{"walletless-test"}) {
			t.Errorf("%s: QR %q", p.Name, got)
		}
		if !strings.Contains(res.Text, "[code128 WALLETLESS]") {
			t.Errorf("%s: no barcode:\n%s", p.Name, res.Text)
		}
	}
}
