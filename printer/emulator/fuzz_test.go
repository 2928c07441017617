package emulator

import (
	"testing"
)

// FuzzRender feeds arbitrary bytes to the emulator: it must not panic, must not hang
// and must keep the paper within its cap.
func FuzzRender(f *testing.F) {
	f.Add(sample())
	for _, seed := range [][]byte{
		{},
		{0x1b}, // lone ESC
		{0x1d, 'v', '0', 0, 0xff, 0xff, 0xff, 0xff}, // huge raster, no data
		{0x1d, '(', 'k', 0xff, 0xff, '1', 'P', '0'}, // huge store, truncated
		{0x1d, '(', 'k', 3, 0, '1', 'Q', '0'},       // print with nothing stored
		{0x1d, 'k', 4, 'A', 'B', 'C'},               // NUL-terminated barcode without NUL
		{0x1d, 'k', 73, 10, '{', 'C', 1, 2, 3},      // Code 128 truncated
		{0x1d, 'k', 67, 3, 'x', 'y', 'z'},           // bad EAN-13
		{0x1b, 'd', 0xff, 0x1b, 'd', 0xff, 0x1b, 'd', 0xff},
		{0x1b, '*', 33, 0xff, 0xff, 1, 2, 3},
		{0x1c, '&', 0x88, 0x9f, 0xb0, 0xa1, 0x81}, // multibyte, odd tail
		{0x1b, 'D', 1, 2, 3},                      // tabs without NUL
		{0x1d, '!', 0x77, 'W', 'I', 'D', 'E', '\n'},
		{0x1d, '8', 'L', 0xff, 0xff, 0xff, 0x7f, 0x30},
		{0x10, 0x04, 1, 0x10, 0x14, 1, 0, 1},
		{0x1d, 'L', 0x40, 0x02, 'x', '\t', 'y', '\n'},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Vary the printer: 80 or 58 mm, and each multibyte encoding.
		encs := []string{"shift_jis", "euc-kr", "gb18030", "big5"}
		opt := Options{MaxHeight: 4000, Width: 576, Multibyte: encs[len(data)%len(encs)]}
		if len(data)%2 == 1 {
			opt.Width = 384
		}
		res := Render(data, opt)
		if res.Image == nil {
			t.Fatal("no image")
		}
		if h := res.Image.Bounds().Dy(); h > 4000+64 {
			t.Fatalf("paper %d dots long, cap 4000", h)
		}
		if len(res.Warnings) > 100 {
			t.Fatalf("%d warnings kept", len(res.Warnings))
		}
	})
}
