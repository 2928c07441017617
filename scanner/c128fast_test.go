package scanner

import (
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/oned"
)

// c128Row is a Code 128 code's modules as one row of pixels, each module px wide,
// with a quiet zone of quiet pixels on both sides.
func c128Row(tb testing.TB, text string, px, quiet int) *gozxing.BitArray {
	tb.Helper()
	m, err := oned.NewCode128Writer().Encode(text, gozxing.BarcodeFormat_CODE_128, 0, 0,
		map[gozxing.EncodeHintType]interface{}{gozxing.EncodeHintType_MARGIN: 0})
	if err != nil {
		tb.Fatalf("encoding %q: %v", text, err)
	}
	row := gozxing.NewBitArray(m.GetWidth()*px + 2*quiet)
	for x := 0; x < m.GetWidth(); x++ {
		if m.Get(x, 0) {
			for k := 0; k < px; k++ {
				row.Set(quiet + x*px + k)
			}
		}
	}
	return row
}

// gozxingRow reads a row with gozxing's Code 128 reader.
func gozxingRow(row *gozxing.BitArray) (string, bool) {
	r, err := oned.NewCode128Reader().(interface {
		DecodeRow(int, *gozxing.BitArray, map[gozxing.DecodeHintType]interface{}) (*gozxing.Result, error)
	}).DecodeRow(0, row, nil)
	if err != nil || r == nil {
		return "", false
	}
	return r.GetText(), true
}

// TestC128FastMatchesGozxing: on rows of codes in code sets A, B and C, with shifts,
// control characters, FNC4 (characters above 127) and FNC1, at 1 to 3 pixels a
// module, forwards and backwards, with a short quiet zone and with bars damaged, the
// fast decoder reads what gozxing's reads, and fails where it fails.
func TestC128FastMatchesGozxing(t *testing.T) {
	texts := []string{test128, "1234567890123456", "ab12CD\x01\x1fx", "A\tB\nC", "\u00f4A\u00f4\u00f4BC\u00f4", "\u00f1", "\u00f2x\u00f3",
		"12a34b56c", "HELLO world 0042", "\u00f101095011010209171719050810ABCD1234", "x"}
	var c c128Fast
	n := 0
	for _, text := range texts {
		for px := 1; px <= 3; px++ {
			for _, quiet := range []int{40, 3} {
				row := c128Row(t, text, px, quiet)
				rev := gozxing.NewBitArray(row.GetSize())
				for i := 0; i < row.GetSize(); i++ {
					if row.Get(i) {
						rev.Set(row.GetSize() - 1 - i)
					}
				}
				// damaged: a bar widened by a pixel every 13 pixels
				bad := gozxing.NewBitArray(row.GetSize())
				for i := 0; i < row.GetSize(); i++ {
					if row.Get(i) || (i%13 == 0 && i+1 < row.GetSize() && row.Get(i+1)) {
						bad.Set(i)
					}
				}
				for _, r := range []*gozxing.BitArray{row, rev, bad} {
					want, wok := gozxingRow(r)
					got, ok := c.decodeRow(r)
					if ok != wok || got != want {
						t.Errorf("%q, %d px, quiet %d: fast %q %v, gozxing %q %v", text, px, quiet, got, ok, want, wok)
					}
					if ok {
						n++
					}
				}
			}
		}
	}
	if n < len(texts)*3*2 {
		t.Errorf("only %d reads: the rows are not codes", n)
	}
	// rows built symbol by symbol: start B, "Wal" and "12" in set C, a check symbol
	// right or wrong, the stop, and a quiet zone after it or a bar too close
	codes := []int{c128StartB, 'W' - ' ', 'a' - ' ', 'l' - ' ', c128CodeC, 12}
	sum := codes[0]
	for i, c := range codes[1:] {
		sum += (i + 1) * c
	}
	for _, tc := range []struct {
		name   string
		check  int
		after  int
		want   string
		wantOK bool
	}{
		{"right", sum % 103, 30, "Wal12", true},
		{"check symbol wrong", (sum + 1) % 103, 30, "", false},
		{"a bar 2 pixels after the stop", sum % 103, 2, "", false},
	} {
		row := c128FromCodes(append(append([]int{}, codes...), tc.check, c128Stop), 2, 30, 30)
		if tc.after < 30 {
			end := row.GetSize() - 30
			row.SetRange(end+tc.after, end+tc.after+4)
		}
		want, wok := gozxingRow(row)
		got, ok := c.decodeRow(row)
		if ok != tc.wantOK || got != tc.want || ok != wok || got != want {
			t.Errorf("%s: fast %q %v, gozxing %q %v, want %q %v", tc.name, got, ok, want, wok, tc.want, tc.wantOK)
		}
	}
}

// c128FromCodes renders symbol values (start, data, check, stop) as a row, px pixels
// a module, with before and after pixels of quiet zone.
func c128FromCodes(codes []int, px, before, after int) *gozxing.BitArray {
	n := before + after
	for _, c := range codes {
		for _, w := range c128Patterns[c] {
			n += w * px
		}
	}
	row := gozxing.NewBitArray(n)
	x := before
	for _, c := range codes {
		for k, w := range c128Patterns[c] {
			if k%2 == 0 { // bars at even positions
				row.SetRange(x, x+w*px)
			}
			x += w * px
		}
	}
	return row
}

// FuzzC128Fast feeds rows (a code's with pixels flipped, or arbitrary bits) to the
// fast Code 128 decoder and to gozxing's: the same result or the same failure.
func FuzzC128Fast(f *testing.F) {
	f.Add(uint8(0), []byte{})
	f.Add(uint8(1), []byte{5, 70, 9})
	f.Add(uint8(2), []byte{0xff, 0x0f})
	f.Add(uint8(200), []byte("\x00\x00\x00\x00\xcb\x12\x34\x56\x78\x9a"))
	seeds := []*gozxing.BitArray{c128Row(f, test128, 2, 30), c128Row(f, "1234567890", 1, 20), c128Row(f, "a\x01\u00f4B", 3, 10)}
	var c c128Fast
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		var row *gozxing.BitArray
		if int(which) < len(seeds) {
			s := seeds[which]
			row = gozxing.NewBitArray(s.GetSize())
			for i := 0; i < s.GetSize(); i++ {
				if s.Get(i) {
					row.Set(i)
				}
			}
			for _, b := range data { // flip the pixels the input names
				row.Flip(int(b) * s.GetSize() / 256)
			}
		} else {
			row = gozxing.NewBitArray(max(1, len(data)*8))
			for i := 0; i < len(data)*8; i++ {
				if data[i/8]>>(i%8)&1 == 1 {
					row.Set(i)
				}
			}
		}
		want, wok := gozxingRow(row)
		got, ok := c.decodeRow(row)
		if ok != wok || got != want {
			t.Fatalf("fast %q %v, gozxing %q %v", got, ok, want, wok)
		}
	})
}
