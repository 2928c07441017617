package scanner

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

const (
	testQR  = "286512345678901234" // an Alipay-shaped one-time code
	test128 = "WLT-0042-ABC"
	testEAN = "4901234567894"
	testEMV = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A"
)

func TestDecodeFrames(t *testing.T) {
	type tc struct {
		name  string
		s     synth
		want  string
		sym   string
		pass1 bool // must be read by the cheap pass
	}
	var tests []tc
	sizes := [][2]int{{640, 480}, {1280, 720}}
	if raceEnabled {
		sizes = sizes[:1]
	}
	for _, size := range sizes {
		w, h := size[0], size[1]
		p := fmt.Sprintf("%dx%d ", w, h)
		qr := qrModules(t, testQR)
		c128 := code128Modules(t, test128)
		tests = append(tests,
			tc{p + "qr", synth{w: w, h: h, code: qr, module: 5, noise: 10, seed: 1}, testQR, "qr", true},
			tc{p + "qr rotated 30°", synth{w: w, h: h, code: qr, module: 5, angle: 30, noise: 10, seed: 2}, testQR, "qr", false},
			tc{p + "qr blurred", synth{w: w, h: h, code: qr, module: 5, blur: true, noise: 6, seed: 3}, testQR, "qr", false},
			tc{p + "qr small blurred", synth{w: w, h: h, code: qr, module: 3, blur: true, noise: 6, seed: 4}, testQR, "qr", false},
			tc{p + "qr light on dark", synth{w: w, h: h, code: qr, module: 5, dark: 220, light: 30, noise: 6, seed: 6}, testQR, "qr", false},
			tc{p + "qr low contrast", synth{w: w, h: h, code: qr, module: 5, dark: 110, light: 150, noise: 4, seed: 4}, testQR, "qr", false},
			tc{p + "qr off centre", synth{w: w, h: h, code: qr, module: 4, dx: -w / 4, dy: h / 5, noise: 10, seed: 5}, testQR, "qr", false},
			tc{p + "code128", synth{w: w, h: h, code: c128, module: 3, barH: h / 3, noise: 10, seed: 6}, test128, "code128", true},
			tc{p + "code128 rotated 90°", synth{w: w, h: h, code: c128, module: 2, barH: w / 3, angle: 90, noise: 8, seed: 7}, test128, "code128", false},
			tc{p + "code128 low contrast", synth{w: w, h: h, code: c128, module: 3, barH: h / 3, dark: 100, light: 150, noise: 4, seed: 8}, test128, "code128", false},
		)
	}
	tests = append(tests, tc{"emv mpm qr", synth{w: 640, h: 480, code: qrModules(t, testEMV), module: 3, noise: 8, seed: 9}, testEMV, "qr", false})
	d := NewDecoder(DecodeOptions{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := tt.s.render()
			r, err := d.Decode(g)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if r.Text != tt.want || r.Symbology != tt.sym {
				t.Fatalf("decoded %q/%s, want %q/%s", r.Text, r.Symbology, tt.want, tt.sym)
			}
			if tt.pass1 && r.Pass != 1 {
				t.Errorf("needed pass %d, want the cheap pass", r.Pass)
			}
		})
	}
}

func TestDecodeNoCode(t *testing.T) {
	d := NewDecoder(DecodeOptions{EAN13: true})
	sizes := [][2]int{{640, 480}, {320, 240}, {1280, 720}, {640, 480}}
	if raceEnabled {
		sizes = sizes[:2]
	}
	for i, size := range sizes {
		g := noiseFrame(size[0], size[1], uint64(i))
		if r, err := d.Decode(g); !errors.Is(err, ErrNoCode) {
			t.Errorf("frame %d: false read %v / %v", i, r, err)
		}
	}
}

func TestDecodeEAN13OnlyWhenEnabled(t *testing.T) {
	g := synth{w: 640, h: 480, code: ean13Modules(t, testEAN), module: 3, barH: 150, noise: 6, seed: 3}.render()
	if r, err := NewDecoder(DecodeOptions{}).Decode(g); err == nil {
		t.Errorf("EAN-13 read while disabled: %v", r)
	}
	r, err := NewDecoder(DecodeOptions{EAN13: true}).Decode(g)
	if err != nil || r.Text != testEAN || r.Symbology != "ean13" {
		t.Errorf("EAN-13 enabled: %v, %v", r, err)
	}
}

func TestDecodeBadPlane(t *testing.T) {
	d := NewDecoder(DecodeOptions{})
	for _, g := range []Gray{{}, {Pix: make([]byte, 10), Width: 4, Height: 4}, {Pix: make([]byte, 100), Width: 10, Height: 10, Stride: 5}} {
		if _, err := d.Decode(g); err == nil || errors.Is(err, ErrNoCode) {
			t.Errorf("Decode(%dx%d, %d bytes) = %v, want a plane error", g.Width, g.Height, len(g.Pix), err)
		}
	}
}

// TestPlaneSourceStride decodes a code from a window of a larger buffer (stride >
// width), as a camera's padded Y plane is.
func TestPlaneSourceStride(t *testing.T) {
	g := synth{w: 400, h: 300, code: qrModules(t, testQR), module: 4, noise: 5, seed: 4}.render()
	const pad = 37
	big := make([]byte, (g.Width+pad)*(g.Height+2))
	for y := 0; y < g.Height; y++ {
		copy(big[(y+1)*(g.Width+pad)+pad:], g.Pix[y*g.Width:(y+1)*g.Width])
	}
	window := Gray{Pix: big[(g.Width+pad)+pad:], Width: g.Width, Height: g.Height, Stride: g.Width + pad}
	r, err := NewDecoder(DecodeOptions{}).Decode(window)
	if err != nil || r.Text != testQR {
		t.Fatalf("strided plane: %v, %v", r, err)
	}
	src := newPlaneSource(window)
	row, _ := src.GetRow(10, nil)
	if !bytes.Equal(row, g.Pix[10*g.Width:11*g.Width]) {
		t.Error("GetRow returned the wrong bytes")
	}
	if !bytes.Equal(src.GetMatrix(), g.Pix) {
		t.Error("GetMatrix returned the wrong bytes")
	}
	c, err := src.Crop(5, 6, 20, 10)
	if err != nil {
		t.Fatal(err)
	}
	crow, _ := c.GetRow(2, nil)
	if !bytes.Equal(crow, g.Pix[8*g.Width+5:8*g.Width+25]) {
		t.Error("cropped row wrong")
	}
	rot, _ := c.RotateCounterClockwise()
	// the cropped window's top-right pixel becomes the rotated top-left one
	rrow, _ := rot.GetRow(0, nil)
	if rot.GetWidth() != 10 || rot.GetHeight() != 20 || rrow[0] != crow[0]-crow[0]+g.Pix[6*g.Width+24] {
		t.Errorf("rotation wrong: %dx%d", rot.GetWidth(), rot.GetHeight())
	}
}

func TestLoadImageFormats(t *testing.T) {
	dir := t.TempDir()
	g := synth{w: 240, h: 200, code: qrModules(t, testQR), module: 3, noise: 5, seed: 6}.render()
	img := image.NewGray(image.Rect(0, 0, g.Width, g.Height))
	copy(img.Pix, g.Pix)
	rgba := image.NewRGBA(img.Bounds())
	for y := 0; y < g.Height; y++ {
		for x := 0; x < g.Width; x++ {
			v := g.Pix[y*g.Width+x]
			rgba.Set(x, y, color.RGBA{v, v, v, 255})
		}
	}
	write := func(name string, f func(*os.File) error) string {
		p := filepath.Join(dir, name)
		fh, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := f(fh); err != nil {
			t.Fatal(err)
		}
		fh.Close()
		return p
	}
	files := []string{
		write("a.png", func(f *os.File) error { return png.Encode(f, img) }),
		write("b.png", func(f *os.File) error { return png.Encode(f, rgba) }),
		write("c.jpg", func(f *os.File) error { return jpeg.Encode(f, rgba, &jpeg.Options{Quality: 90}) }),
		write("d.pgm", func(f *os.File) error { return WritePGM(f, g) }),
	}
	d := NewDecoder(DecodeOptions{})
	for _, p := range files {
		lg, err := LoadImage(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if lg.Width != g.Width || lg.Height != g.Height {
			t.Fatalf("%s: %dx%d", p, lg.Width, lg.Height)
		}
		if r, err := d.Decode(lg); err != nil || r.Text != testQR {
			t.Errorf("%s: %v, %v", p, r, err)
		}
	}
	pg, _ := LoadImage(files[3])
	if !bytes.Equal(pg.Pix, g.Pix) {
		t.Error("PGM round trip changed pixels")
	}
	bad := write("e.png", func(f *os.File) error { _, err := f.WriteString("not a picture"); return err })
	if _, err := LoadImage(bad); err == nil {
		t.Error("garbage file decoded")
	}
	for _, hdr := range []string{"P5\n", "P5\n10 10\n65535\n", "P5\n# c\n99999 99999\n255\n", "P5\n4 4\n255\nabc"} {
		if _, err := ReadImage(bytes.NewReader([]byte(hdr))); err == nil {
			t.Errorf("bad PGM %q accepted", hdr)
		}
	}
	if got, err := ImageFiles(dir); err != nil || len(got) != 5 {
		t.Errorf("ImageFiles = %v, %v", got, err)
	}
}

// TestDecodeLeavesFrameAlone checks that no pass writes into the caller's plane.
func TestDecodeLeavesFrameAlone(t *testing.T) {
	for _, g := range []Gray{noiseFrame(320, 240, 5), synth{w: 320, h: 240, code: qrModules(t, testQR), module: 3, dark: 200, light: 40, seed: 1}.render()} {
		before := bytes.Clone(g.Pix)
		NewDecoder(DecodeOptions{EAN13: true}).Decode(g)
		if !bytes.Equal(before, g.Pix) {
			t.Fatal("Decode modified the frame")
		}
	}
	src := newPlaneSource(Gray{Pix: []byte{0, 10, 250, 255}, Width: 2, Height: 2})
	inv := src.Invert()
	row, _ := inv.GetRow(1, nil)
	if !bytes.Equal(row, []byte{5, 0}) || !bytes.Equal(inv.GetMatrix(), []byte{255, 245, 5, 0}) || !bytes.Equal(src.GetMatrix(), []byte{0, 10, 250, 255}) {
		t.Errorf("inverted row %v, matrix %v", row, inv.GetMatrix())
	}
}

// FuzzReadImage feeds hostile image files to the loader and the decoder: no panic,
// and a plane that is returned is consistent.
func FuzzReadImage(f *testing.F) {
	var pgm bytes.Buffer
	WritePGM(&pgm, noiseFrame(32, 24, 1))
	f.Add(pgm.Bytes())
	f.Add([]byte("P5\n# comment\n2 2\n15\n\x00\x05\x0a\x0f"))
	f.Add([]byte("P5 3 1 255 abc"))
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ReadImage(bytes.NewReader(data))
		if err != nil {
			return
		}
		if err := g.check(); err != nil {
			t.Fatalf("ReadImage returned a bad plane: %v", err)
		}
		if g.Width*g.Height <= 64*64 {
			NewDecoder(DecodeOptions{NoHarder: true}).Decode(g)
		}
	})
}
