package device

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"
)

// testJPEG encodes a YCbCr 4:2:0 frame with a pattern, as a camera would send it.
func testJPEG(t testing.TB, w, h int) ([]byte, *image.YCbCr) {
	t.Helper()
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := byte(40)
			if (x/16+y/16)%2 == 0 {
				v = 220
			}
			img.Y[y*img.YStride+x] = v
		}
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = 100, 150
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), img
}

// stripDHT removes the Huffman table segments, as many UVC cameras send frames.
func stripDHT(t testing.TB, b []byte) []byte {
	t.Helper()
	out := append([]byte(nil), b[:2]...)
	i := 2
	for i+4 <= len(b) && b[i] == 0xff && b[i+1] != 0xda {
		n := int(b[i+2])<<8 | int(b[i+3])
		if b[i+1] != 0xc4 {
			out = append(out, b[i:i+2+n]...)
		}
		i += 2 + n
	}
	out = append(out, b[i:]...)
	if len(out) == len(b) {
		t.Fatal("no DHT segment to strip")
	}
	return out
}

func TestMJPEGLuma(t *testing.T) {
	frame, orig := testJPEG(t, 1280, 720)
	for name, f := range map[string][]byte{"with tables": frame, "without tables (UVC)": stripDHT(t, frame)} {
		pix, w, h, stride, err := MJPEGLuma(f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if w != 1280 || h != 720 || stride < w || len(pix) < (h-1)*stride+w {
			t.Fatalf("%s: %dx%d stride %d, %d bytes", name, w, h, stride, len(pix))
		}
		// the luminance plane, within JPEG's loss, and no colour mixed in
		var bad int
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				d := int(pix[y*stride+x]) - int(orig.Y[y*orig.YStride+x])
				if d < -24 || d > 24 {
					bad++
				}
			}
		}
		if bad > w*h/100 {
			t.Errorf("%s: %d pixels far from the original luminance", name, bad)
		}
	}
}

func TestMJPEGLumaBadFrames(t *testing.T) {
	frame, _ := testJPEG(t, 64, 48)
	for name, f := range map[string][]byte{
		"empty":     nil,
		"not JPEG":  []byte("hello, camera"),
		"truncated": frame[:len(frame)/3],
		"SOI only":  {0xff, 0xd8, 0xff, 0xd9},
	} {
		if _, _, _, _, err := MJPEGLuma(f); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func FuzzMJPEGLuma(f *testing.F) {
	frame, _ := testJPEG(f, 32, 16)
	f.Add(frame)
	f.Add(stripDHT(f, frame))
	f.Add([]byte{0xff, 0xd8, 0xff, 0xc4, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		pix, w, h, stride, err := MJPEGLuma(b)
		if err == nil && (w <= 0 || h <= 0 || stride < w || len(pix) < (h-1)*stride+w) {
			t.Fatalf("%dx%d stride %d with %d bytes", w, h, stride, len(pix))
		}
	})
}
