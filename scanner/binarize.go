package scanner

import (
	"github.com/makiuchi-d/gozxing"
)

// meanBinarizer is an adaptive threshold for low-contrast frames, used by the harder
// pass: a pixel (smoothed over 3x3) is black when it is darker than the mean of a
// window around it by more than a small margin. Unlike gozxing's HybridBinarizer it
// has no minimum dynamic range, so a code printed grey on grey still binarizes.
type meanBinarizer struct {
	src    gozxing.LuminanceSource
	margin int // grey levels below the local mean that count as black
	matrix *gozxing.BitMatrix
}

func newMeanBinarizer(src gozxing.LuminanceSource, margin int) *meanBinarizer {
	return &meanBinarizer{src: src, margin: margin}
}

func (b *meanBinarizer) GetLuminanceSource() gozxing.LuminanceSource { return b.src }
func (b *meanBinarizer) GetWidth() int                               { return b.src.GetWidth() }
func (b *meanBinarizer) GetHeight() int                              { return b.src.GetHeight() }

func (b *meanBinarizer) CreateBinarizer(src gozxing.LuminanceSource) gozxing.Binarizer {
	return newMeanBinarizer(src, b.margin)
}

func (b *meanBinarizer) GetBlackRow(y int, row *gozxing.BitArray) (*gozxing.BitArray, error) {
	m, err := b.GetBlackMatrix()
	if err != nil {
		return nil, err
	}
	return m.GetRow(y, row), nil
}

func (b *meanBinarizer) GetBlackMatrix() (*gozxing.BitMatrix, error) {
	if b.matrix != nil {
		return b.matrix, nil
	}
	w, h := b.src.GetWidth(), b.src.GetHeight()
	lum := b.src.GetMatrix()
	// integral image, (w+1) x (h+1)
	iw := w + 1
	sat := make([]uint32, iw*(h+1))
	for y := 0; y < h; y++ {
		var rowSum uint32
		for x := 0; x < w; x++ {
			rowSum += uint32(lum[y*w+x])
			sat[(y+1)*iw+x+1] = sat[y*iw+x+1] + rowSum
		}
	}
	sum := func(x0, y0, x1, y1 int) (uint32, int) { // [x0,x1) x [y0,y1), clipped
		x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
		return sat[y1*iw+x1] - sat[y0*iw+x1] - sat[y1*iw+x0] + sat[y0*iw+x0], (x1 - x0) * (y1 - y0)
	}
	r := max(8, min(w, h)/24)
	m, err := gozxing.NewBitMatrix(w, h)
	if err != nil {
		return nil, err
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			ls, ln := sum(x-1, y-1, x+2, y+2)
			ws, wn := sum(x-r, y-r, x+r+1, y+r+1)
			// local*wn < (window - margin)*ln, in integers
			if int64(ls)*int64(wn) < (int64(ws)-int64(b.margin*wn))*int64(ln) {
				m.Set(x, y)
			}
		}
	}
	b.matrix = m
	return m, nil
}
