package scanner

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"

	"github.com/walletless/walletless/device"
)

// TestMJPEGFrames decodes codes from real JPEG frames, as an MJPEG camera sends them
// at 720p (4:2:0, camera-like quality), through the camera path's Y-plane decoding.
func TestMJPEGFrames(t *testing.T) {
	for _, c := range []struct {
		name string
		s    synth
		want string
	}{
		{"emv", synth{code: qrModules(t, testEMV), module: 4, noise: 6, seed: 1}, testEMV},
		{"wallet", synth{code: qrModules(t, testQR), module: 3, angle: 20, noise: 6, seed: 2}, testQR},
		{"code128", synth{code: code128Modules(t, test128), module: 3, barH: 240, noise: 6, seed: 3}, test128},
	} {
		c.s.w, c.s.h = 1280, 720
		g := c.s.render()
		img := image.NewYCbCr(image.Rect(0, 0, g.Width, g.Height), image.YCbCrSubsampleRatio420)
		copy(img.Y, g.Pix)
		for i := range img.Cb {
			img.Cb[i], img.Cr[i] = 110, 140 // a tint: chroma must not leak into luma
		}
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 75}); err != nil {
			t.Fatal(err)
		}
		pix, w, h, stride, err := device.MJPEGLuma(b.Bytes())
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		r, err := NewDecoder(DecodeOptions{}).Decode(Gray{Pix: pix, Width: w, Height: h, Stride: stride})
		if err != nil || r.Text != c.want {
			t.Errorf("%s: %v %v", c.name, r, err)
		}
	}
}
