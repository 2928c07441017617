package escpos

import (
	"fmt"
	"unicode/utf8"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode/decoder"
	"github.com/makiuchi-d/gozxing/qrcode/encoder"
)

// QRMatrix returns the modules of a QR symbol (model 2) for data, without quiet zone:
// m[y][x] is true for a dark module. Data that is valid UTF-8 with non-ASCII characters
// and data that is not UTF-8 are encoded in byte mode.
func QRMatrix(data []byte, level QRLevel) ([][]bool, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty QR data", ErrInvalid)
	}
	ec := decoder.ErrorCorrectionLevel_M
	switch level {
	case QRLevelL:
		ec = decoder.ErrorCorrectionLevel_L
	case QRLevelQ:
		ec = decoder.ErrorCorrectionLevel_Q
	case QRLevelH:
		ec = decoder.ErrorCorrectionLevel_H
	}
	// Like a printer, store the bytes as they are in byte mode without an ECI; bytes
	// that are not UTF-8 go through ISO-8859-1, which maps each byte to itself.
	var hints map[gozxing.EncodeHintType]any
	content := string(data)
	if !utf8.Valid(data) {
		rs := make([]rune, len(data))
		for i, c := range data {
			rs[i] = rune(c)
		}
		content = string(rs)
		hints = map[gozxing.EncodeHintType]any{gozxing.EncodeHintType_CHARACTER_SET: "ISO-8859-1"}
	}
	code, err := encoder.Encoder_encode(content, ec, hints)
	if err != nil {
		return nil, fmt.Errorf("%w: QR: %w", ErrInvalid, err)
	}
	bm := code.GetMatrix()
	w, h := bm.GetWidth(), bm.GetHeight()
	m := make([][]bool, h)
	for y := range h {
		m[y] = make([]bool, w)
		for x := range w {
			m[y][x] = bm.Get(x, y) == 1
		}
	}
	return m, nil
}

// QRRaster appends a QR symbol as a GS v 0 raster image, for printers without native
// QR support: each module is module dots square, with a quiet zone of four modules.
func (b *Builder) QRRaster(data []byte, module byte, level QRLevel) *Builder {
	if b.err != nil {
		return b
	}
	if module < 1 || module > 16 {
		return b.fail(fmt.Errorf("%w: QR module size %d", ErrInvalid, module))
	}
	m, err := QRMatrix(data, level)
	if err != nil {
		return b.fail(err)
	}
	bits, wb, h := PackMatrix(m, int(module), 4)
	return b.RasterBits(wb, h, bits)
}

// PackMatrix scales a module matrix by scale dots with a quiet zone of quiet modules
// and packs it as raster rows (MSB first, 1 = black). It returns the bits, the width
// in bytes and the height in dots.
func PackMatrix(m [][]bool, scale, quiet int) (bits []byte, widthBytes, height int) {
	n := len(m)
	if n == 0 {
		return nil, 0, 0
	}
	dots := (len(m[0]) + 2*quiet) * scale
	height = (n + 2*quiet) * scale
	widthBytes = (dots + 7) / 8
	bits = make([]byte, widthBytes*height)
	for y := range height {
		my := y/scale - quiet
		if my < 0 || my >= n {
			continue
		}
		row := bits[y*widthBytes:]
		for x := range dots {
			mx := x/scale - quiet
			if mx >= 0 && mx < len(m[my]) && m[my][mx] {
				row[x/8] |= 0x80 >> (x % 8)
			}
		}
	}
	return bits, widthBytes, height
}
