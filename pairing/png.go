package pairing

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// PNG draws a pairing QR's text as a PNG (error correction M, a 4-module quiet zone,
// module pixels per module). It returns the image and the symbol's size in modules
// (without the quiet zone): 21 + 4 per version above 1.
func PNG(text string, module int) ([]byte, int, error) {
	if module < 1 {
		module = 6
	}
	hints := map[gozxing.EncodeHintType]any{gozxing.EncodeHintType_MARGIN: 4, gozxing.EncodeHintType_ERROR_CORRECTION: "M"}
	m, err := qrcode.NewQRCodeWriter().Encode(text, gozxing.BarcodeFormat_QR_CODE, 0, 0, hints)
	if err != nil {
		return nil, 0, fmt.Errorf("pairing: qr: %w", err)
	}
	w, h := m.GetWidth(), m.GetHeight()
	img := image.NewPaletted(image.Rect(0, 0, w*module, h*module), color.Palette{color.White, color.Black})
	for y := 0; y < h*module; y++ {
		for x := 0; x < w*module; x++ {
			if m.Get(x/module, y/module) {
				img.SetColorIndex(x, y, 1)
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, 0, fmt.Errorf("pairing: qr: %w", err)
	}
	return buf.Bytes(), w - 8, nil
}
