package emulator

import (
	"image"
	"image/draw"
	"os"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// CJKFontEnv names the environment variable that points at a TrueType/OpenType font
// (or collection) with Chinese, Japanese and Korean glyphs.
const CJKFontEnv = "WALLETLESS_CJK_FONT"

// CJKFontPaths are where the emulator looks for a CJK font when CJKFontEnv is unset:
// Debian's fonts-wqy-microhei (Apache-2.0 or GPL-3+ with font exception), then other
// common packages.
var CJKFontPaths = []string{
	"/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
	"/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
	"/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
	"/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
	"/usr/share/fonts/truetype/unfonts-core/UnDotum.ttf",
	"/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
}

var cjk struct {
	once  sync.Once
	mu    sync.Mutex
	faces []font.Face // guarded by mu; tried in order for each character
	paths []string    // guarded by mu; the fonts behind faces
	next  []string    // guarded by mu; fonts not loaded yet, loaded when a character is missing
}

// maxCJKFonts bounds the fonts kept in memory for fallback.
const maxCJKFonts = 3

func initCJK() {
	paths := CJKFontPaths
	if p := os.Getenv(CJKFontEnv); p != "" {
		paths = append([]string{p}, paths...)
	}
	cjk.mu.Lock()
	defer cjk.mu.Unlock()
	cjk.next = paths
	loadNextCJK()
}

// loadNextCJK loads the next usable font; it reports false when there is none. Called
// with cjk.mu held.
func loadNextCJK() bool {
	for len(cjk.next) > 0 && len(cjk.faces) < maxCJKFonts {
		p := cjk.next[0]
		cjk.next = cjk.next[1:]
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f, err := parseFont(data)
		if err != nil {
			continue
		}
		face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: 22, DPI: 72, Hinting: font.HintingFull})
		if err != nil {
			continue
		}
		cjk.faces = append(cjk.faces, face)
		cjk.paths = append(cjk.paths, p)
		return true
	}
	return false
}

// parseFont parses a font or the first font of a collection, realigning its tables
// when the parser rejects them.
func parseFont(data []byte) (*opentype.Font, error) {
	if coll, err := opentype.ParseCollection(data); err == nil && coll.NumFonts() > 0 {
		if f, err := coll.Font(0); err == nil {
			return f, nil
		}
	}
	fixed, err := extractFont(data, 0)
	if err != nil {
		return nil, err
	}
	return opentype.Parse(fixed)
}

// CJKFont returns the path of the CJK font the emulator draws with first, or "" when
// it found none (CJK characters are then drawn as boxes).
func CJKFont() string {
	cjk.once.Do(initCJK)
	cjk.mu.Lock()
	defer cjk.mu.Unlock()
	if len(cjk.paths) == 0 {
		return ""
	}
	return cjk.paths[0]
}

// drawCJK draws r into a full-width (24x24) cell; without a CJK font, or when the font
// lacks r, it reports false.
func drawCJK(bm *bitmap, r rune, bold bool) bool {
	cjk.once.Do(initCJK)
	cjk.mu.Lock()
	defer cjk.mu.Unlock()
	var face font.Face
	var adv fixed.Int26_6
	for i := 0; face == nil; i++ {
		if i == len(cjk.faces) && !loadNextCJK() {
			return false
		}
		if a, ok := cjk.faces[i].GlyphAdvance(r); ok {
			face, adv = cjk.faces[i], a
		}
	}
	dst := image.NewAlpha(image.Rect(0, 0, bm.w, bm.h))
	x := (fixed.I(bm.w) - adv) / 2
	dr, mask, mp, _, ok := face.Glyph(fixed.Point26_6{X: x, Y: fixed.I(20)}, r)
	if !ok {
		return false
	}
	draw.DrawMask(dst, dr, image.Opaque, image.Point{}, mask, mp, draw.Over)
	for y := range bm.h {
		for x := range bm.w {
			if dst.AlphaAt(x, y).A >= 90 {
				bm.pix[y*bm.w+x] = 1
				if bold && x+1 < bm.w {
					bm.pix[y*bm.w+x+1] = 1
				}
			}
		}
	}
	return true
}
