package emulator

import (
	"image"
	"image/draw"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/gomonobold"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// bitmap is a 1-bit picture: pix[y*w+x] != 0 is ink.
type bitmap struct {
	w, h int
	pix  []byte
}

func newBitmap(w, h int) *bitmap { return &bitmap{w: w, h: h, pix: make([]byte, w*h)} }

func (b *bitmap) at(x, y int) bool { return b.pix[y*b.w+x] != 0 }

// Character cells of the two ESC/POS fonts, in dots.
const (
	fontAW, fontAH = 12, 24
	fontBW, fontBH = 9, 17
)

type glyphKey struct {
	r           rune
	bold, small bool
	wide        bool
}

// fontSet holds the parsed faces; font.Face is not safe for concurrent use, so
// rasterizing goes through mu. Rasterized glyphs are cached for good.
type fontSet struct {
	mu    sync.Mutex
	faces map[[2]bool]font.Face // guarded by mu; key: bold, small
	cache sync.Map              // glyphKey -> *bitmap
}

var fonts = &fontSet{faces: map[[2]bool]font.Face{}}

func (fs *fontSet) face(bold, small bool) font.Face {
	k := [2]bool{bold, small}
	if f, ok := fs.faces[k]; ok {
		return f
	}
	ttf := gomono.TTF
	if bold {
		ttf = gomonobold.TTF
	}
	size := 20.0 // Go Mono advances 0.6 em: 12 dots
	if small {
		size = 15.0 // 9 dots
	}
	var f font.Face
	if ft, err := opentype.Parse(ttf); err == nil {
		f, _ = opentype.NewFace(ft, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
	}
	fs.faces[k] = f // nil on failure: glyphs become boxes
	return f
}

// glyph returns the cell bitmap of r (12x24 or 9x17 dots; twice as wide when wide).
func (fs *fontSet) glyph(r rune, bold, small, wide bool) *bitmap {
	k := glyphKey{r, bold, small, wide}
	if g, ok := fs.cache.Load(k); ok {
		return g.(*bitmap)
	}
	cw, ch, base := fontAW, fontAH, 19
	if small {
		cw, ch, base = fontBW, fontBH, 13
	}
	if wide {
		cw *= 2
	}
	bm := newBitmap(cw, ch)
	if r != ' ' {
		if !fs.drawWide(bm, r, bold, small, wide) {
			fs.mu.Lock()
			f := fs.face(bold, small)
			var ok bool
			if f != nil {
				_, ok = f.GlyphAdvance(r)
			}
			if ok {
				dst := image.NewAlpha(image.Rect(0, 0, cw, ch))
				dr, mask, mp, _, ok2 := f.Glyph(fixed.P(0, base), r)
				if ok2 {
					draw.DrawMask(dst, dr, image.Opaque, image.Point{}, mask, mp, draw.Over)
				}
				for y := range ch {
					for x := range cw {
						if dst.AlphaAt(x, y).A >= 100 {
							bm.pix[y*cw+x] = 1
						}
					}
				}
			} else {
				box(bm)
			}
			fs.mu.Unlock()
		}
	}
	g, _ := fs.cache.LoadOrStore(k, bm)
	return g.(*bitmap)
}

// drawWide draws a full-width character with the CJK font when one is available.
// It reports whether it drew.
func (fs *fontSet) drawWide(bm *bitmap, r rune, bold, small, wide bool) bool {
	if !wide {
		return false
	}
	return drawCJK(bm, r, bold)
}

// box draws the "no glyph" rectangle.
func box(bm *bitmap) {
	x0, y0, x1, y1 := 2, 4, bm.w-3, bm.h-4
	for x := x0; x <= x1; x++ {
		bm.pix[y0*bm.w+x], bm.pix[y1*bm.w+x] = 1, 1
	}
	for y := y0; y <= y1; y++ {
		bm.pix[y*bm.w+x0], bm.pix[y*bm.w+x1] = 1, 1
	}
}
