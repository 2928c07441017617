package api

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/walletless/walletless/payment"
)

// qrModule is the size of one QR module in pixels on the page.
const qrModule = 8

// saleQR is GET /v1/sales/{id}/qr.png: the merchant-presented sale's dynamic code
// (public merchant data) as a PNG for the page to show the customer, while it waits
// for payment (404 once it no longer has one).
func (s *Server) saleQR(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !payment.ValidID(id) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no sale with id %q", id))
		return
	}
	sale, err := s.sales.Get(id)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	if sale.QR == "" {
		writeError(w, http.StatusNotFound, "this sale has no code to show (not merchant-presented, or no longer waiting for payment)")
		return
	}
	img, err := qrImage(sale.QR)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(img)
}

// qrImage draws text as a QR code (error correction M, a 4-module quiet zone).
func qrImage(text string) ([]byte, error) {
	hints := map[gozxing.EncodeHintType]any{gozxing.EncodeHintType_MARGIN: 4, gozxing.EncodeHintType_ERROR_CORRECTION: "M"}
	m, err := qrcode.NewQRCodeWriter().Encode(text, gozxing.BarcodeFormat_QR_CODE, 0, 0, hints)
	if err != nil {
		return nil, fmt.Errorf("api: qr: %w", err)
	}
	w, h := m.GetWidth(), m.GetHeight()
	img := image.NewPaletted(image.Rect(0, 0, w*qrModule, h*qrModule), color.Palette{color.White, color.Black})
	for y := 0; y < h*qrModule; y++ {
		for x := 0; x < w*qrModule; x++ {
			if m.Get(x/qrModule, y/qrModule) {
				img.SetColorIndex(x, y, 1)
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("api: qr: %w", err)
	}
	return buf.Bytes(), nil
}
