package scanner

import (
	"math"

	"github.com/makiuchi-d/gozxing"
)

// The grid read: the fast way to read the QR code whose three finder patterns the
// pre-check found. The finders' centres fix the code's corner, its two axes and,
// with the module size, its version; each module's centre is then sampled straight
// from the frame (bilinear), thresholded against the mean of the modules around it,
// and the module grid goes to gozxing's QR decoder (format information, Reed-Solomon,
// the text). This skips what costs most in gozxing on a region: binarizing it and
// finding the finder patterns again. It assumes the code is flat in the frame (an
// affine grid: any rotation and scale, no perspective); when it does not read, the
// region is resampled and read by gozxing's detector (decodeQRRegion), which follows
// perspective through the alignment pattern.

// gridTries is the number of versions tried around the estimated one: the module
// size of the pre-check is rough, the finders' distance is not.
var gridTries = [...]int{0, -1, 1}

// decodeQRGrid reads the QR code spanned by the corner finder c and the finders p1
// (along the top) and p2 (down the left), with m pixels per module (estimate).
func (d *Decoder) decodeQRGrid(g Gray, c, p1, p2 psFinder, m float64) (Decoded, bool) {
	// first the allocation-free decode, at the pre-check's centres and then at the
	// refined ones, then gozxing's decoder (whose failures allocate) at the first
	if r, ok := d.gridAt(g, c, p1, p2, m, true); ok {
		return r, true
	}
	rc, r1, r2 := refineFinder(g, c, m), refineFinder(g, p1, m), refineFinder(g, p2, m)
	if rc != c || r1 != p1 || r2 != p2 {
		if r, ok := d.gridAt(g, rc, r1, r2, m, true); ok {
			return r, true
		}
	}
	return d.gridAt(g, c, p1, p2, m, false)
}

// gridAt samples the grid at each candidate version and decodes it, with the fast
// decode or with gozxing's.
func (d *Decoder) gridAt(g Gray, c, p1, p2 psFinder, m float64, fast bool) (Decoded, bool) {
	lu := math.Hypot(float64(p1.x-c.x), float64(p1.y-c.y))
	lv := math.Hypot(float64(p2.x-c.x), float64(p2.y-c.y))
	// finder centres are 3.5 modules in from the code's edges: dim-7 modules apart
	est := ((lu+lv)/2/m + 7 - 17) / 4
	v0 := int(math.Round(est))
	for _, dv := range gridTries {
		v := v0 + dv
		if v < 1 || v > 40 {
			continue
		}
		if !d.sampleGrid(g, c, p1, p2, 17+4*v) {
			return Decoded{}, false
		}
		if fast {
			if text, ok := d.qrf.decode(d.bits); ok {
				return Decoded{Text: text, Symbology: "qr"}, true
			}
			continue
		}
		res, err := d.qrdec.Decode(d.bits, d.cheap)
		if err != nil || res == nil || res.GetText() == "" {
			continue
		}
		return Decoded{Text: res.GetText(), Symbology: "qr"}, true
	}
	return Decoded{}, false
}

// sampleGrid fills d.bits with the dim x dim modules of the code: module (i, j)'s
// centre is c + (i-3)/(dim-7) (p1-c) + (j-3)/(dim-7) (p2-c). It returns false when
// the grid leaves the frame by more than a module.
func (d *Decoder) sampleGrid(g Gray, c, p1, p2 psFinder, dim int) bool {
	n := float64(dim - 7)
	ux, uy := float64(p1.x-c.x)/n, float64(p1.y-c.y)/n
	vx, vy := float64(p2.x-c.x)/n, float64(p2.y-c.y)/n
	ox, oy := float64(c.x)-3*ux-3*vx, float64(c.y)-3*uy-3*vy // module (0, 0)
	// the four corners' module centres must be in the frame (give or take a module)
	mod := math.Max(math.Hypot(ux, uy), math.Hypot(vx, vy))
	e := float64(dim - 1)
	for _, k := range [4][2]float64{{0, 0}, {e, 0}, {0, e}, {e, e}} {
		x, y := ox+k[0]*ux+k[1]*vx, oy+k[0]*uy+k[1]*vy
		if x < -mod || y < -mod || x > float64(g.Width)+mod || y > float64(g.Height)+mod {
			return false
		}
	}
	if cap(d.grid) < dim*dim {
		d.grid = make([]byte, dim*dim)
		d.gsum = make([]int32, (dim+1)*(dim+1))
	}
	grid, sum := d.grid[:dim*dim], d.gsum[:(dim+1)*(dim+1)]
	s := g.stride()
	for j := 0; j < dim; j++ {
		x, y := ox+float64(j)*vx, oy+float64(j)*vy
		for i := 0; i < dim; i++ {
			grid[j*dim+i] = bilinear(g.Pix, s, g.Width, g.Height, x, y)
			x += ux
			y += uy
		}
	}
	// integral image of the samples, for the local means (row 0 and column 0 are
	// zero; the buffer may hold another size's sums)
	w := dim + 1
	clear(sum[:w])
	for j := 1; j <= dim; j++ {
		sum[j*w] = 0
	}
	for j := 0; j < dim; j++ {
		var row int32
		for i := 0; i < dim; i++ {
			row += int32(grid[j*dim+i])
			sum[(j+1)*w+i+1] = sum[j*w+i+1] + row
		}
	}
	if v := (dim - 17) / 4; d.bitsFor[v] == nil {
		d.bitsFor[v], _ = gozxing.NewSquareBitMatrix(dim)
	}
	d.bits = d.bitsFor[(dim-17)/4]
	d.bits.Clear()
	const r = 4 // the local mean is over 9x9 modules (clipped at the code's edges)
	for j := 0; j < dim; j++ {
		j0, j1 := max(0, j-r), min(dim, j+r+1)
		for i := 0; i < dim; i++ {
			i0, i1 := max(0, i-r), min(dim, i+r+1)
			tot := sum[j1*w+i1] - sum[j0*w+i1] - sum[j1*w+i0] + sum[j0*w+i0]
			if int32(grid[j*dim+i])*int32((j1-j0)*(i1-i0)) < tot {
				d.bits.Set(i, j)
			}
		}
	}
	return true
}

// refineFinder moves a finder's centre to the centroid of its centre stone (3x3
// modules): the pre-check's centre is a whole pixel, from runs against a block
// threshold, and with modules of 2-3 pixels its error shifts the far modules of the
// grid by half a module. The centroid is over a disc of 2.2 modules' radius, which
// holds the stone and, at any rotation, only the light ring around it; each pixel
// weighs by how much darker (lighter, for a light-on-dark code) it is than the
// middle of the disc's range. Twice, from the new centre. Positions stay pixels
// (psFinder's), rounded: the gain is the half pixel.
func refineFinder(g Gray, f psFinder, m float64) psFinder {
	r := 2.2 * m
	ri := int(math.Ceil(r))
	s := g.stride()
	for iter := 0; iter < 2; iter++ {
		x0, y0 := f.x, f.y
		if x0-ri < 0 || y0-ri < 0 || x0+ri >= g.Width || y0+ri >= g.Height {
			return f
		}
		lo, hi := 255, 0
		for dy := -ri; dy <= ri; dy++ {
			for dx := -ri; dx <= ri; dx++ {
				if float64(dx*dx+dy*dy) <= r*r {
					v := int(g.Pix[(y0+dy)*s+x0+dx])
					lo, hi = min(lo, v), max(hi, v)
				}
			}
		}
		if hi-lo < 16 {
			return f
		}
		mid := (lo + hi) / 2
		dark := int(g.Pix[y0*s+x0]) < mid
		var sw, sx, sy float64
		for dy := -ri; dy <= ri; dy++ {
			for dx := -ri; dx <= ri; dx++ {
				if float64(dx*dx+dy*dy) > r*r {
					continue
				}
				w := mid - int(g.Pix[(y0+dy)*s+x0+dx])
				if !dark {
					w = -w
				}
				if w > 0 {
					sw += float64(w)
					sx += float64(w * dx)
					sy += float64(w * dy)
				}
			}
		}
		if sw == 0 {
			return f
		}
		nx, ny := x0+int(math.Round(sx/sw)), y0+int(math.Round(sy/sw))
		if math.Abs(float64(nx-x0)) > m || math.Abs(float64(ny-y0)) > m {
			return f // not a stone where we looked
		}
		f.x, f.y = nx, ny
	}
	return f
}
