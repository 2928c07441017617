package scanner

import (
	"math"

	"github.com/makiuchi-d/gozxing"
)

// Regions of interest: the pre-check knows where it saw a code, so the decoder first
// looks there only.
//   - QR: the three finder patterns give the code's corner and axes. The region is
//     resampled straight (rotation undone, up to 45° and beyond), with small modules
//     enlarged to about 4 pixels, and gozxing reads the small upright image.
//   - 1D: the line on which the start pattern and two symbols were seen, and lines
//     beside it, are averaged over three lines (noise), thresholded against the
//     middle of the local minimum and maximum (glare, uneven light) and handed to
//     gozxing's row decoder, forwards and backwards.
// Whatever the region does not give, the full passes still try.

// rowDecoder is gozxing's one-row interface of its 1D readers.
type rowDecoder interface {
	DecodeRow(rowNumber int, row *gozxing.BitArray, hints map[gozxing.DecodeHintType]interface{}) (*gozxing.Result, error)
}

// decodeROI tries the region the pre-check found.
func (d *Decoder) decodeROI(g Gray) (Decoded, bool) {
	switch d.pre.found {
	case "finder":
		return d.decodeQRRegion(g)
	case "row-1d", "col-1d":
		return d.decodeLines(g, d.c128, "code128")
	case "ean":
		return d.decodeLines(g, d.ean13, "ean13")
	}
	return Decoded{}, false
}

// decodeQRRegion resamples the code the three finders span, upright, and reads it.
func (d *Decoder) decodeQRRegion(g Gray) (Decoded, bool) {
	t := d.pre.tri
	dist := func(a, b psFinder) float64 { return math.Hypot(float64(a.x-b.x), float64(a.y-b.y)) }
	// the corner finder is the one opposite the longest side
	c, p1, p2 := t[0], t[1], t[2]
	if l01, l02, l12 := dist(t[0], t[1]), dist(t[0], t[2]), dist(t[1], t[2]); l01 > l12 && l01 > l02 {
		c, p1, p2 = t[2], t[0], t[1]
	} else if l02 > l12 && l02 > l01 {
		c, p1, p2 = t[1], t[0], t[2]
	}
	// p1 along the top, p2 down the left: y grows downwards
	if float64(p1.x-c.x)*float64(p2.y-c.y)-float64(p1.y-c.y)*float64(p2.x-c.x) < 0 {
		p1, p2 = p2, p1
	}
	m := (c.module + p1.module + p2.module) / 3
	if m <= 0 {
		return Decoded{}, false
	}
	if r, ok := d.decodeQRGrid(g, c, p1, p2, m); ok {
		return r, true
	}
	k := min(3, max(1, 4/m)) // output pixels per frame pixel: modules of ~4 pixels
	margin := 8 * m          // finder half-width, quiet zone and slack
	lu, lv := dist(c, p1), dist(c, p2)
	ux, uy := float64(p1.x-c.x)/lu, float64(p1.y-c.y)/lu
	vx, vy := float64(p2.x-c.x)/lv, float64(p2.y-c.y)/lv
	w, h := int((lu+2*margin)*k), int((lv+2*margin)*k)
	if w < 21 || h < 21 || lu/m > 180 || lv/m > 180 || w*h > 2*g.Width*g.Height {
		return Decoded{}, false
	}
	if cap(d.roi) < w*h {
		d.roi = make([]byte, w*h)
	}
	out := d.roi[:w*h]
	s := g.stride()
	for j := 0; j < h; j++ {
		sv := float64(j)/k - margin
		for i := 0; i < w; i++ {
			su := float64(i)/k - margin
			x := float64(c.x) + 0.5 + su*ux + sv*vx - 0.5
			y := float64(c.y) + 0.5 + su*uy + sv*vy - 0.5
			out[j*w+i] = bilinear(g.Pix, s, g.Width, g.Height, x, y)
		}
	}
	crop := Gray{Pix: out, Width: w, Height: h}
	src := newPlaneSource(crop)
	steps := []decodeStep{
		{gozxing.NewHybridBinarizer(src), d.cheap, nil, false},
		{newMeanBinarizer(src, 3), d.harder, nil, false},
		{gozxing.NewHybridBinarizer(src.Invert()), d.cheap, nil, false},
	}
	return d.run(steps)
}

// bilinear samples the plane at (x, y), clamped to its edges.
func bilinear(pix []byte, stride, w, h int, x, y float64) byte {
	x = min(max(x, 0), float64(w-1))
	y = min(max(y, 0), float64(h-1))
	x0, y0 := int(x), int(y)
	x1, y1 := min(x0+1, w-1), min(y0+1, h-1)
	fx, fy := x-float64(x0), y-float64(y0)
	a := float64(pix[y0*stride+x0])*(1-fx) + float64(pix[y0*stride+x1])*fx
	b := float64(pix[y1*stride+x0])*(1-fx) + float64(pix[y1*stride+x1])*fx
	return byte(a*(1-fy) + b*fy + 0.5)
}

// decodeLines reads a 1D code on the line the pre-check found and on lines beside it.
func (d *Decoder) decodeLines(g Gray, reader gozxing.Reader, sym string) (Decoded, bool) {
	rd, ok := reader.(rowDecoder)
	if !ok {
		return Decoded{}, false
	}
	row := d.pre.lineRow
	n, lines := g.Width, g.Height
	if !row {
		n, lines = g.Height, g.Width
	}
	m := max(1, float64(d.pre.lineM16)/16)
	win := max(4, int(3*m+0.5)) // half-window: any 6 modules hold a bar and a space
	if cap(d.line) < n {
		d.line = make([]int32, n)
	}
	line := d.line[:n]
	s := g.stride()
	first := ""
	for _, off := range []int{0, -3, 3, -6, 6, -10, 10, -16, 16} {
		i := d.pre.line + off
		if i < 1 || i+1 >= lines {
			continue
		}
		for j := range line {
			var v int32
			for o := -1; o <= 1; o++ {
				if row {
					v += int32(g.Pix[(i+o)*s+j])
				} else {
					v += int32(g.Pix[j*s+i+o])
				}
			}
			line[j] = v
		}
		var full int32 // the line's own contrast, to tell a quiet zone from bars
		lo, hi := line[0], line[0]
		for _, v := range line {
			lo, hi = min(lo, v), max(hi, v)
		}
		full = hi - lo
		// the line thresholded, forwards and backwards (gozxing's BitArray.Reverse
		// allocates); buffers for rows and for columns, reused
		k := 0
		if !row {
			k = 2
		}
		for _, b := range [2]int{k, k + 1} {
			if d.lineBits[b] == nil || d.lineBits[b].GetSize() != n {
				d.lineBits[b] = gozxing.NewBitArray(n)
			}
			d.lineBits[b].Clear()
		}
		fwd, back := d.lineBits[k], d.lineBits[k+1]
		for j := range line {
			a, b := max(0, j-win), min(n, j+win+1)
			llo, lhi := line[a], line[a]
			for _, v := range line[a:b] {
				llo, lhi = min(llo, v), max(lhi, v)
			}
			if (lhi-llo)*5 >= full && 2*line[j] < llo+lhi {
				fwd.Set(j)
				back.Set(n - 1 - j)
			}
		}
		for rev := 0; rev < 2; rev++ {
			bits := fwd
			if rev == 1 {
				bits = back
			}
			if sym == "code128" { // gozxing's decoder, without its allocations
				if text, ok := d.c128f.decodeRow(bits); ok && text != "" {
					return Decoded{Text: text, Symbology: sym}, true
				}
				continue
			}
			res, err := rd.DecodeRow(i, bits, d.cheap)
			reader.Reset()
			if err != nil || res == nil || res.GetText() == "" {
				continue
			}
			// EAN-13's one check digit lets noise through now and then: a second
			// line must agree (its bars are tall).
			if sym == "ean13" && res.GetText() != first {
				first = res.GetText()
				break
			}
			return Decoded{Text: res.GetText(), Symbology: sym}, true
		}
	}
	return Decoded{}, false
}
