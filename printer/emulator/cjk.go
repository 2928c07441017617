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
	paths []string
}

// maxCJKFonts bounds the fonts kept in memory for fallback.
const maxCJKFonts = 3

func loadCJK() {
	paths := CJKFontPaths
	if p := os.Getenv(CJKFontEnv); p != "" {
		paths = append([]string{p}, paths...)
	}
	for _, p := range paths {
		if len(cjk.faces) >= maxCJKFonts {
			return
		}
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
	}
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
	cjk.once.Do(loadCJK)
	if len(cjk.paths) == 0 {
		return ""
	}
	return cjk.paths[0]
}

// drawCJK draws r into a full-width (24x24) cell; without a CJK font, or when the font
// lacks r, it reports false.
func drawCJK(bm *bitmap, r rune, bold bool) bool {
	cjk.once.Do(loadCJK)
	cjk.mu.Lock()
	defer cjk.mu.Unlock()
	var face font.Face
	var adv fixed.Int26_6
	for _, f := range cjk.faces {
		if a, ok := f.GlyphAdvance(r); ok {
			face, adv = f, a
			break
		}
	}
	if face == nil {
		return false
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
