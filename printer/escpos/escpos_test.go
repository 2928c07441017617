package escpos_test

import (
	"bytes"
	"errors"
	"flag"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"testing"

	"github.com/walletless/walletless/printer/escpos"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func TestCommands(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 10, 2))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	img.SetGray(0, 0, color.Gray{0})
	img.SetGray(9, 1, color.Gray{0})
	for _, tc := range []struct {
		name string
		b    *escpos.Builder
		want []byte
	}{
		{"init", new(escpos.Builder).Init(), []byte{0x1b, '@'}},
		{"bold", new(escpos.Builder).Bold(true).Bold(false), []byte{0x1b, 'E', 1, 0x1b, 'E', 0}},
		{"size", new(escpos.Builder).Size(2, 3), []byte{0x1d, '!', 0x12}},
		{"underline", new(escpos.Builder).Underline(escpos.UnderlineBold), []byte{0x1b, '-', 2}},
		{"inverse", new(escpos.Builder).Inverse(true), []byte{0x1d, 'B', 1}},
		{"align", new(escpos.Builder).Align(escpos.Right), []byte{0x1b, 'a', 2}},
		{"codetable", new(escpos.Builder).CodeTable(escpos.CodeTablePC858), []byte{0x1b, 't', 19}},
		{"kanji", new(escpos.Builder).Kanji(true).Kanji(false), []byte{0x1c, '&', 0x1c, '.'}},
		{"feed", new(escpos.Builder).Feed(3), []byte{0x1b, 'd', 3}},
		{"cut partial", new(escpos.Builder).Cut(true, 0), []byte{0x1d, 'V', 66, 0}},
		{"cut full", new(escpos.Builder).Cut(false, 10), []byte{0x1d, 'V', 65, 10}},
		{"drawer", new(escpos.Builder).DrawerKick(false, 25, 250), []byte{0x1b, 'p', 0, 25, 250}},
		{"qr", new(escpos.Builder).QR([]byte("AB"), 6, escpos.QRLevelM), []byte{
			0x1d, '(', 'k', 4, 0, '1', 'A', '2', 0,
			0x1d, '(', 'k', 3, 0, '1', 'C', 6,
			0x1d, '(', 'k', 3, 0, '1', 'E', 49,
			0x1d, '(', 'k', 5, 0, '1', 'P', '0', 'A', 'B',
			0x1d, '(', 'k', 3, 0, '1', 'Q', '0'}},
		{"code128", new(escpos.Builder).Code128("A1", 2, 60), []byte{
			0x1d, 'H', 2, 0x1d, 'w', 2, 0x1d, 'h', 60, 0x1d, 'k', 73, 4, '{', 'B', 'A', '1'}},
		{"raster", new(escpos.Builder).Raster(img), []byte{
			0x1d, 'v', '0', 0, 2, 0, 2, 0, 0x80, 0x00, 0x00, 0x40}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.b.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("got  % x\nwant % x", got, tc.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    *escpos.Builder
	}{
		{"size 0", new(escpos.Builder).Size(0, 1)},
		{"size 9", new(escpos.Builder).Size(1, 9)},
		{"qr empty", new(escpos.Builder).QR(nil, 4, escpos.QRLevelM)},
		{"qr module", new(escpos.Builder).QR([]byte("x"), 17, escpos.QRLevelM)},
		{"qr level", new(escpos.Builder).QR([]byte("x"), 4, 7)},
		{"code128 non-ascii", new(escpos.Builder).Code128("é", 2, 60)},
		{"code128 brace", new(escpos.Builder).Code128("a{b", 2, 60)},
		{"raster empty", new(escpos.Builder).Raster(image.NewGray(image.Rect(0, 0, 0, 0)))},
		{"align", new(escpos.Builder).Align(3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// After an error, further calls are no-ops and Bytes reports it.
			tc.b.Text([]byte("more"))
			if _, err := tc.b.Bytes(); !errors.Is(err, escpos.ErrInvalid) && !errors.Is(err, escpos.ErrTooLong) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

// TestGolden pins the bytes of a stream using every command.
func TestGolden(t *testing.T) {
	b := escpos.New().CodeTable(escpos.CodeTablePC858)
	b.Align(escpos.Center).Bold(true).Size(2, 2).Text([]byte("TITLE")).LF()
	b.Size(1, 1).Bold(false).Underline(1).Text([]byte("under")).Underline(0).LF()
	b.Inverse(true).Text([]byte("inverse")).Inverse(false).LF()
	b.Align(escpos.Left).FontB(true).Text([]byte("font b")).FontB(false).LF()
	b.Kanji(true).Text([]byte{0x88, 0xa4}).Kanji(false).LF()
	b.QR([]byte("https://example.com/s/1"), 6, escpos.QRLevelM)
	b.QRRaster([]byte("raster"), 4, escpos.QRLevelL)
	b.Code128("ABC-123", 2, 80)
	b.Feed(3).Cut(true, 0).DrawerKick(false, 25, 250)
	got, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "all-commands.bin")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("stream differs from %s (go test -update rewrites it)", path)
	}
}

func TestQRMatrixBytes(t *testing.T) {
	// Non-UTF-8 bytes must still encode (as ISO-8859-1 byte mode).
	m, err := escpos.QRMatrix([]byte{0xff, 0x00, 0x80}, escpos.QRLevelL)
	if err != nil || len(m) != 21 {
		t.Fatalf("QRMatrix: %d modules, %v", len(m), err)
	}
}

func TestEncodeText(t *testing.T) {
	p, err := escpos.EncodeText("€¥", escpos.CodeTableEncoding(escpos.CodeTablePC858))
	if err != nil || !bytes.Equal(p, []byte{0xd5, 0xbe}) {
		t.Errorf("PC858 €¥ = % x, %v", p, err)
	}
	if escpos.CanEncode("₩", escpos.CodeTableEncoding(escpos.CodeTablePC858)) {
		t.Error("PC858 claims ₩")
	}
	p, err = escpos.EncodeText("한", escpos.MultibyteEncoding(escpos.MultibyteEUCKR))
	if err != nil || !bytes.Equal(p, []byte{0xc7, 0xd1}) {
		t.Errorf("EUC-KR 한 = % x, %v", p, err)
	}
}
