package scanner

import (
	"fmt"

	"github.com/makiuchi-d/gozxing"
)

// Gray is an 8-bit luminance plane: the Y plane of a YUV camera frame, a PGM file or
// an *image.Gray. Row y starts at Pix[y*Stride]. Decoding reads it in place.
type Gray struct {
	Pix           []byte
	Width, Height int
	Stride        int // bytes per row; 0 means Width
}

func (g Gray) stride() int {
	if g.Stride > 0 {
		return g.Stride
	}
	return g.Width
}

// check reports whether Pix holds the whole plane.
func (g Gray) check() error {
	if g.Width <= 0 || g.Height <= 0 {
		return fmt.Errorf("scanner: empty %dx%d plane", g.Width, g.Height)
	}
	if s := g.stride(); s < g.Width || len(g.Pix) < (g.Height-1)*s+g.Width {
		return fmt.Errorf("scanner: %dx%d plane with stride %d needs more than %d bytes", g.Width, g.Height, s, len(g.Pix))
	}
	return nil
}

// planeSource is a gozxing.LuminanceSource over a Gray plane, with a crop window. Rows
// are handed out as sub-slices of the plane (gozxing never writes to them), so a frame
// is never converted or copied pixel by pixel; only rotation copies.
type planeSource struct {
	g               Gray
	left, top, w, h int
	invert          bool   // hand out 255-v (copies: the plane is never written)
	matrix          []byte // lazily built when the window is not contiguous or inverted
	gozxing.LuminanceSourceBase
}

func newPlaneSource(g Gray) *planeSource {
	return &planeSource{g: g, w: g.Width, h: g.Height, LuminanceSourceBase: gozxing.LuminanceSourceBase{Width: g.Width, Height: g.Height}}
}

func (p *planeSource) GetRow(y int, row []byte) ([]byte, error) {
	if y < 0 || y >= p.h {
		return nil, fmt.Errorf("scanner: row %d outside the image", y)
	}
	off := (p.top+y)*p.g.stride() + p.left
	src := p.g.Pix[off : off+p.w : off+p.w]
	if !p.invert {
		return src, nil
	}
	if len(row) < p.w {
		row = make([]byte, p.w)
	}
	for i, v := range src {
		row[i] = 255 - v
	}
	return row[:p.w], nil
}

func (p *planeSource) GetMatrix() []byte {
	s := p.g.stride()
	if p.left == 0 && p.w == s && !p.invert {
		off := p.top * s
		return p.g.Pix[off : off+p.w*p.h : off+p.w*p.h]
	}
	if p.matrix == nil {
		m := make([]byte, p.w*p.h)
		for y := 0; y < p.h; y++ {
			off := (p.top+y)*s + p.left
			copy(m[y*p.w:], p.g.Pix[off:off+p.w])
		}
		if p.invert {
			for i, v := range m {
				m[i] = 255 - v
			}
		}
		p.matrix = m
	}
	return p.matrix
}

func (p *planeSource) IsCropSupported() bool { return true }

func (p *planeSource) Crop(left, top, width, height int) (gozxing.LuminanceSource, error) {
	if left < 0 || top < 0 || width <= 0 || height <= 0 || left+width > p.w || top+height > p.h {
		return nil, fmt.Errorf("scanner: crop %d,%d %dx%d outside %dx%d", left, top, width, height, p.w, p.h)
	}
	return &planeSource{g: p.g, left: p.left + left, top: p.top + top, w: width, h: height, invert: p.invert,
		LuminanceSourceBase: gozxing.LuminanceSourceBase{Width: width, Height: height}}, nil
}

func (p *planeSource) IsRotateSupported() bool { return true }

// RotateCounterClockwise copies the window rotated by 90° (for 1D codes held upright).
func (p *planeSource) RotateCounterClockwise() (gozxing.LuminanceSource, error) {
	w, h := p.w, p.h
	out := make([]byte, w*h)
	s := p.g.stride()
	// new (x', y') = (y, w-1-x); new width h, height w
	for y := 0; y < h; y++ {
		row := p.g.Pix[(p.top+y)*s+p.left:]
		for x := 0; x < w; x++ {
			out[(w-1-x)*h+y] = row[x]
		}
	}
	r := newPlaneSource(Gray{Pix: out, Width: h, Height: w})
	r.invert = p.invert
	return r, nil
}

func (p *planeSource) RotateCounterClockwise45() (gozxing.LuminanceSource, error) {
	return nil, fmt.Errorf("scanner: 45° rotation is not supported")
}

// Invert returns the source with black and white swapped. (gozxing's own inverted
// source writes into the rows it is given, which would change the caller's frame.)
func (p *planeSource) Invert() gozxing.LuminanceSource {
	q := *p
	q.invert = !p.invert
	q.matrix = nil
	return &q
}

func (p *planeSource) String() string { return gozxing.LuminanceSourceString(p) }

// downscale2 halves a plane by averaging 2x2 blocks, for the cheap pass on big frames.
func downscale2(g Gray, buf []byte) (Gray, []byte) {
	w, h := g.Width/2, g.Height/2
	if cap(buf) < w*h {
		buf = make([]byte, w*h)
	}
	buf = buf[:w*h]
	s := g.stride()
	for y := 0; y < h; y++ {
		r0 := g.Pix[2*y*s:]
		r1 := g.Pix[(2*y+1)*s:]
		o := buf[y*w : y*w+w]
		for x := range o {
			o[x] = byte((int(r0[2*x]) + int(r0[2*x+1]) + int(r1[2*x]) + int(r1[2*x+1]) + 2) >> 2)
		}
	}
	return Gray{Pix: buf, Width: w, Height: h}, buf
}

// sharpen returns an unsharp-masked copy of g (2·v − mean of the 3x3 around v), for
// the harder pass on blurred frames: it restores the edges between small modules that
// a soft focus merges.
func sharpen(g Gray, buf []byte) (Gray, []byte) {
	w, h, s := g.Width, g.Height, g.stride()
	if cap(buf) < w*h {
		buf = make([]byte, w*h)
	}
	out := buf[:w*h]
	for y := 0; y < h; y++ {
		y0, y1 := max(y-1, 0), min(y+1, h-1)
		for x := 0; x < w; x++ {
			x0, x1 := max(x-1, 0), min(x+1, w-1)
			sum, n := 0, 0
			for yy := y0; yy <= y1; yy++ {
				r := g.Pix[yy*s:]
				for xx := x0; xx <= x1; xx++ {
					sum += int(r[xx])
				}
				n += x1 - x0 + 1
			}
			v := 2*int(g.Pix[y*s+x]) - sum/n
			out[y*w+x] = byte(max(0, min(255, v)))
		}
	}
	return Gray{Pix: out, Width: w, Height: h}, buf
}
