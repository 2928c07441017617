package scanner

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	qrdecoder "github.com/makiuchi-d/gozxing/qrcode/decoder"
)

// qrGrid encodes text as a QR code's modules only (no quiet zone), at an error
// correction level ("L", "M", "Q", "H").
func qrGrid(tb testing.TB, text, level string) *gozxing.BitMatrix {
	tb.Helper()
	m, err := qrcode.NewQRCodeWriter().Encode(text, gozxing.BarcodeFormat_QR_CODE, 0, 0,
		map[gozxing.EncodeHintType]interface{}{gozxing.EncodeHintType_MARGIN: 0, gozxing.EncodeHintType_ERROR_CORRECTION: level})
	if err != nil {
		tb.Fatalf("encoding %d bytes at level %s: %v", len(text), level, err)
	}
	return m
}

// gozxingGrid decodes a module grid with gozxing's QR decoder, on a copy (it
// unmasks in place).
func gozxingGrid(bits *gozxing.BitMatrix) (string, bool) {
	c := copyBits(bits)
	r, err := qrdecoder.NewDecoder().Decode(c, nil)
	if err != nil {
		return "", false
	}
	return r.GetText(), true
}

// TestQRFastReadsWhatGozxingReads: on grids of numeric, alphanumeric, ASCII and
// UTF-8 text, at every error correction level and versions from 1 to 38, clean and
// with one module wrong, the fast decode reads the text gozxing reads; with more and
// more modules wrong, whatever it reads gozxing reads the same (where it declines,
// gozxing still gets the grid).
func TestQRFastReadsWhatGozxingReads(t *testing.T) {
	texts := []struct {
		text string
		fast bool // the fast decode must read it (else it may leave it to gozxing)
	}{
		{testQR, true},
		{testEMV, true},
		{"HTTPS://PAY.EXAMPLE/ABC-123 $%*+-./:", true},
		{"https://pay.example/p?id=42&amp=1", true},
		{strings.Repeat("0123456789", 60), true},         // version 10+ (count fields of 12 bits)
		{strings.Repeat("WALLETLESS-", 110), true},       // alphanumeric, big
		{strings.Repeat("wallet code ", 80), true},       // bytes, versions 22-38
		{"caf\xe9 cr\xe8me", false},                      // ISO-8859-1 bytes: gozxing guesses
		{"\u6700\u4f73\u8fd0\u8f93 \u5317\u4eac", false}, // no ASCII: the encoder may choose Kanji/ECI
	}
	var fq qrFast
	for _, tc := range texts {
		for _, level := range []string{"L", "M", "Q", "H"} {
			m := qrGrid(t, tc.text, level)
			want, ok := gozxingGrid(m)
			if !ok {
				t.Fatalf("gozxing does not read its own %s code of %q", level, tc.text[:min(20, len(tc.text))])
			}
			got, fok := fq.decode(m)
			switch {
			case fok && got != want:
				t.Errorf("level %s, %d modules: fast read %q, gozxing %q", level, m.GetWidth(), got, want)
			case tc.fast && !fok:
				t.Errorf("level %s, %d modules: the fast decode declined %.20q", level, m.GetWidth(), tc.text)
			}
			// one module wrong (at the left edge, mid-height: one of the last
			// codewords read, error correction): both correct it
			bad := copyBits(m)
			bad.Flip(0, m.GetWidth()/2)
			if got, ok := gozxingGrid(bad); !ok || got != want {
				t.Fatalf("level %s: gozxing does not correct one module", level)
			}
			if got, fok := fq.decode(bad); tc.fast && (!fok || got != want) {
				t.Errorf("level %s, %d modules: with one module wrong the fast decode read %q, %v", level, m.GetWidth(), got, fok)
			}
			// more and more modules wrong, up to far beyond what Reed-Solomon
			// corrects: whatever the fast decode reads, gozxing reads the same
			rng := rand.New(rand.NewPCG(uint64(len(tc.text)), uint64(level[0])))
			bad = copyBits(m)
			for k := 0; k < 150; k++ {
				bad.Flip(rng.IntN(m.GetWidth()), rng.IntN(m.GetWidth()))
				got, fok := fq.decode(bad)
				if !fok {
					continue
				}
				if g, ok := gozxingGrid(bad); !ok || g != got {
					t.Errorf("level %s, %d modules, %d flipped: the fast decode read %q, gozxing %q (%v)", level, m.GetWidth(), k+1, got, g, ok)
					break
				}
			}
		}
	}
	// what was not a grid of a code
	for _, dim := range []int{21, 25, 57, 177} {
		m, _ := gozxing.NewSquareBitMatrix(dim)
		if _, ok := fq.decode(m); ok {
			t.Errorf("empty %d-module grid read", dim)
		}
	}
	m, _ := gozxing.NewSquareBitMatrix(22)
	if _, ok := fq.decode(m); ok {
		t.Error("22-module grid read")
	}
}

// TestQRFastNoAllocs: a warmed fast decode allocates nothing, and a repeated text
// costs no new string.
func TestQRFastNoAllocs(t *testing.T) {
	var fq qrFast
	for _, text := range []string{testQR, testEMV} {
		m := qrGrid(t, text, "M")
		if got, ok := fq.decode(m); !ok || got != text {
			t.Fatalf("fast decode: %v", ok)
		}
		if n := testing.AllocsPerRun(20, func() { fq.decode(m) }); n != 0 {
			t.Errorf("%d modules: %v allocations per decode, want 0", m.GetWidth(), n)
		}
	}
}

// FuzzQRFast feeds module grids (a code's, with modules flipped by the input, or
// arbitrary bits) to the fast decode: no panic, and whatever it reads gozxing's
// decoder reads the same.
func FuzzQRFast(f *testing.F) {
	f.Add(uint8(0), []byte{})
	f.Add(uint8(1), []byte{3, 17, 200})
	f.Add(uint8(2), []byte{0xff, 0, 0x55, 0xaa})
	f.Add(uint8(200), []byte("arbitrary bits of a grid"))
	seeds := []*gozxing.BitMatrix{qrGrid(f, testQR, "M"), qrGrid(f, testEMV, "L"), qrGrid(f, "HTTPS://X.EXAMPLE/1", "H")}
	var fq qrFast
	f.Fuzz(func(t *testing.T, which uint8, flips []byte) {
		var m *gozxing.BitMatrix
		if int(which) < len(seeds) {
			// flip the modules the input names (two bytes each: x, y)
			m = copyBits(seeds[which])
			for k := 0; k+1 < len(flips); k += 2 {
				m.Flip(int(flips[k])%m.GetWidth(), int(flips[k+1])%m.GetWidth())
			}
		} else {
			dim := 17 + 4*(1+int(which)%10)
			m, _ = gozxing.NewSquareBitMatrix(dim)
			for k := 0; k < dim*dim && k/8 < len(flips); k++ {
				if flips[k/8]>>(k%8)&1 == 1 {
					m.Set(k%dim, k/dim)
				}
			}
		}
		got, ok := fq.decode(m)
		if !ok {
			return
		}
		if want, gok := gozxingGrid(m); !gok || got != want {
			t.Fatalf("fast decode read %q, gozxing %q (%v)", got, want, gok)
		}
	})
}

// copyBits copies a bit matrix (gozxing has no Clone).
func copyBits(m *gozxing.BitMatrix) *gozxing.BitMatrix {
	c, _ := gozxing.NewBitMatrix(m.GetWidth(), m.GetHeight())
	for y := 0; y < m.GetHeight(); y++ {
		for x := 0; x < m.GetWidth(); x++ {
			if m.Get(x, y) {
				c.Set(x, y)
			}
		}
	}
	return c
}
