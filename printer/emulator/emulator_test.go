package emulator

import (
	"bytes"
	"flag"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/oned"

	"github.com/walletless/walletless/printer/escpos"
	"github.com/walletless/walletless/printer/printertest"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// sample is a stream with every feature of the encoder.
func sample() []byte {
	b := escpos.New().CodeTable(escpos.CodeTablePC858)
	b.Align(escpos.Center).Bold(true).Size(2, 2).Text([]byte("EMULATOR")).LF()
	b.Size(1, 1).Bold(false).Text([]byte("centered line")).LF()
	b.Align(escpos.Left).Text([]byte("left ")).Bold(true).Text([]byte("bold ")).Bold(false)
	b.Underline(escpos.UnderlineThin).Text([]byte("underline")).Underline(0).LF()
	b.Inverse(true).Text([]byte(" inverse ")).Inverse(false).LF()
	b.Align(escpos.Right).Size(1, 2).Text([]byte("right tall")).Size(1, 1).LF()
	b.Align(escpos.Left).FontB(true).Text([]byte("font B: the quick brown fox jumps over the lazy dog")).FontB(false).LF()
	b.Text([]byte{'E', 'U', 'R', ' ', 0xd5, ' ', 'Y', 'E', 'N', ' ', 0xbe}).LF() // PC858 € and ¥
	b.LF().Align(escpos.Center).QR([]byte("S-0001-QR"), 6, escpos.QRLevelM).LF()
	b.Code128("SALE-12345", 2, 80).LF()
	b.QRRaster([]byte("raster-qr"), 4, escpos.QRLevelM).LF()
	b.Feed(2).Cut(true, 0).DrawerKick(false, 25, 250)
	out, err := b.Bytes()
	if err != nil {
		panic(err)
	}
	return out
}

func TestRenderSample(t *testing.T) {
	res := Render(sample(), Options{})
	if len(res.Warnings) != 0 {
		t.Errorf("warnings: %v", res.Warnings)
	}
	if res.Image.Bounds().Dx() != 576 {
		t.Errorf("width %d, want 576", res.Image.Bounds().Dx())
	}
	for _, want := range []string{"EMULATOR", "centered line", "left bold underline", "right tall", "EUR € YEN ¥", "[QR S-0001-QR]", "[code128 SALE-12345]", "--- cut ---"} {
		if !strings.Contains(res.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, res.Text)
		}
	}
	if res.Cuts != 1 || res.DrawerKicks != 1 {
		t.Errorf("cuts %d kicks %d, want 1 1", res.Cuts, res.DrawerKicks)
	}
	if got := printertest.QR(res.Image); !slices.Equal(got, []string{"S-0001-QR", "raster-qr"}) {
		t.Errorf("gozxing decoded %q, want both QR codes", got)
	}
	if s := decode1D(t, res.Image); s != "SALE-12345" {
		t.Errorf("Code 128 decoded as %q", s)
	}
	golden(t, "sample.png", res.Image)
}

func decode1D(t *testing.T, img *image.Gray) string {
	t.Helper()
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	r, err := oned.NewCode128Reader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true})
	if err != nil {
		return ""
	}
	return r.GetText()
}

// golden compares img with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, img image.Image) {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	wimg, err := png.Decode(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	if !sameImage(img, wimg) {
		out := filepath.Join(t.TempDir(), name)
		os.WriteFile(out, buf.Bytes(), 0o644)
		t.Errorf("%s differs from the golden image; got %s (go test -update rewrites it)", path, out)
	}
}

func sameImage(a, b image.Image) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			r1, g1, b1, _ := a.At(x, y).RGBA()
			r2, g2, b2, _ := b.At(x, y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 {
				return false
			}
		}
	}
	return true
}
