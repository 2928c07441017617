package scanner

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/oned"
)

// TestPrescanKeepsEveryCode checks that the pre-check passes every frame class with a
// code (whether or not a decoder reads it), so that it can never cost a read.
func TestPrescanKeepsEveryCode(t *testing.T) {
	var p prescanner
	for _, sz := range frameSizes {
		for _, f := range codeFrames(t, sz[0], sz[1]) {
			if !p.codeLike(f.g, false) {
				t.Errorf("%s: pre-check finds nothing code-like", f.name)
			}
		}
	}
}

// TestNoFalseReads decodes 2100 frames without a code (noise with blobs and
// stripes, and textures: stripes, checks, irregular bars, print-like marks, grain)
// at both camera sizes and at 320x240 with EAN-13 on, and wants no read at all. It
// also logs how many looked code-like to the pre-check (each costs a decode). Last,
// noise frames on which gozxing alone reads an EAN-13 must not be read by the full
// passes (NoPrecheck), which confirm an EAN-13 on the frame.
func TestNoFalseReads(t *testing.T) {
	sets := []struct {
		w, h, n int
		ean     bool
	}{{640, 480, 600, false}, {1280, 720, 300, false}, {320, 240, 1200, true}}
	for _, s := range sets {
		if raceEnabled || testing.Short() {
			s.n /= 6
		}
		d := NewDecoder(DecodeOptions{EAN13: s.ean})
		codeLike := map[string]int{}
		for _, f := range emptyFrames(s.w, s.h, s.n, 5000) {
			if r, err := d.Decode(f.g); err == nil {
				t.Errorf("%s: false read: %v", f.name, r)
			}
			if d.pre.found != "" {
				codeLike[d.pre.found]++
			}
		}
		t.Logf("%dx%d (EAN-13 %v): %d empty frames, no read; the pre-check passed %v", s.w, s.h, s.ean, s.n, codeLike)
	}
	// Frames on which gozxing's EAN-13 reader, on the whole frame in try-harder
	// mode, reads a code from one row of noise (its one check digit lets one in
	// ten through). Found by a seeded search: noiseFrame(320, 240, seed) for seeds
	// 5000-5199 decoded with NoPrecheck and the EAN-13 confirmation removed read
	// these six. The full passes must confirm such a read on the frame and drop it.
	for _, seed := range []uint64{5004, 5058, 5100, 5146, 5180, 5198} {
		g := noiseFrame(320, 240, seed)
		// the hazard is real: unconfirmed, gozxing reads something here
		bmp, err := gozxing.NewBinaryBitmap(gozxing.NewHybridBinarizer(newPlaneSource(g)))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := oned.NewEAN13Reader().Decode(bmp, map[gozxing.DecodeHintType]interface{}{gozxing.DecodeHintType_TRY_HARDER: true})
		if err != nil {
			t.Errorf("noise seed %d: gozxing no longer reads an EAN-13 here; find new seeds", seed)
			continue
		}
		d := NewDecoder(DecodeOptions{EAN13: true, NoPrecheck: true})
		if r, err := d.Decode(g); err == nil {
			t.Errorf("noise seed %d: false read with the full passes: %v (gozxing's unconfirmed read: %d digits)", seed, r, len(raw.GetText()))
		}
	}
}

// TestDecodeEmptyFrameAllocs: a warmed decoder allocates nothing on an empty frame
// (the steady state of a camera at a counter).
func TestDecodeEmptyFrameAllocs(t *testing.T) {
	for _, sz := range frameSizes {
		for _, f := range emptyFrames(sz[0], sz[1], 2, 1) {
			d := NewDecoder(DecodeOptions{})
			if _, err := d.Decode(f.g); err == nil {
				t.Fatalf("%s: read something", f.name)
			}
			if n := testing.AllocsPerRun(20, func() { d.Decode(f.g) }); n != 0 {
				t.Errorf("%s: %v allocations per frame, want 0", f.name, n)
			}
			if n := testing.AllocsPerRun(20, func() { d.DecodeCheap(f.g) }); n != 0 {
				t.Errorf("%s: %v allocations per frame in the cheap mode, want 0", f.name, n)
			}
		}
	}
}

// FuzzDecodePlane feeds arbitrary planes (any size and stride) to the pre-check and
// the region decoding: no panic, no read of text that is not there is checked by
// TestNoFalseReads.
func FuzzDecodePlane(f *testing.F) {
	qr := synth{w: 96, h: 96, code: qrModules(f, testQR), module: 3, angle: 30, seed: 1}.render()
	c128 := synth{w: 200, h: 40, code: code128Modules(f, test128), module: 1.5, barH: 30, seed: 2}.render()
	f.Add(qr.Pix, uint16(96), uint8(0))
	f.Add(c128.Pix, uint16(200), uint8(0))
	f.Add(noiseFrame(40, 30, 1).Pix, uint16(37), uint8(3))
	f.Fuzz(func(t *testing.T, pix []byte, w uint16, pad uint8) {
		width := int(w)
		if width == 0 || width > 512 {
			return
		}
		stride := width + int(pad)
		h := len(pix) / stride
		if h == 0 || h > 512 {
			return
		}
		d := NewDecoder(DecodeOptions{EAN13: true, NoHarder: true})
		d.Decode(Gray{Pix: pix, Width: width, Height: h, Stride: stride})
	})
}

func BenchmarkPrescan(b *testing.B) {
	for _, sz := range frameSizes {
		for _, f := range emptyFrames(sz[0], sz[1], 2, 1) {
			b.Run(f.name, func(b *testing.B) {
				var p prescanner
				b.ReportAllocs()
				for b.Loop() {
					p.codeLike(f.g, false)
				}
			})
		}
	}
}

// TestPrescanForgetsTheLastFrame: the pre-check computes its thresholds lazily, as
// far down the frame as it looks; what it finds on a frame must not depend on the
// frame before (a threshold left from it). Each frame is checked after a frame of
// another kind and with a fresh pre-check.
func TestPrescanForgetsTheLastFrame(t *testing.T) {
	frames := codeFrames(t, 640, 480)
	frames = append(frames, emptyFrames(640, 480, 6, 77)...)
	type seen struct {
		ok      bool
		found   string
		tri     [3]psFinder
		line    int
		lineM16 int32
		lineRow bool
	}
	look := func(p *prescanner, g Gray) seen {
		s := seen{ok: p.codeLike(g, true), found: p.found}
		switch p.found { // what the decoder uses of each kind
		case "finder":
			s.tri = p.tri
		case "":
		default:
			s.line, s.lineM16, s.lineRow = p.line, p.lineM16, p.lineRow
		}
		return s
	}
	var shared prescanner
	for i, f := range frames {
		// before it, a frame with the darkest and the lightest blocks swapped
		prev := frames[(i+len(frames)/2)%len(frames)].g
		inv := Gray{Pix: make([]byte, len(prev.Pix)), Width: prev.Width, Height: prev.Height}
		for k, v := range prev.Pix {
			inv.Pix[k] = 255 - v
		}
		look(&shared, inv)
		var fresh prescanner
		if a, b := look(&shared, f.g), look(&fresh, f.g); a != b {
			t.Errorf("%s: after another frame the pre-check found %+v, on its own %+v", f.name, a, b)
		}
	}
}

// TestBlockStats16 checks the eight-bytes-at-a-time block statistics against a
// pixel-by-pixel count on random blocks, flat ones and ones at the extremes.
func TestBlockStats16(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const stride = 40
	pix := make([]byte, 16*stride)
	for n := 0; n < 20000; n++ {
		base, spread := rng.IntN(256), 1+rng.IntN(256)
		for i := range pix {
			switch n % 4 {
			case 0:
				pix[i] = byte(rng.IntN(256))
			case 1:
				pix[i] = byte(base)
			case 2:
				pix[i] = []byte{0, 255, 127, 128}[rng.IntN(4)]
			default:
				pix[i] = byte(min(255, base+rng.IntN(spread)))
			}
		}
		var s int32
		lo, hi := uint8(255), uint8(0)
		for y := 0; y < 16; y += 2 {
			for _, v := range pix[y*stride : y*stride+16] {
				s += int32(v)
				lo, hi = min(lo, v), max(hi, v)
			}
		}
		m, l, h := blockStats16(pix, stride)
		if m != s/128 || l != lo || h != hi {
			t.Fatalf("block %d: got mean %d, min %d, max %d; want %d, %d, %d", n, m, l, h, s/128, lo, hi)
		}
	}
}

// TestPrescanNoiseFloor: the flat-block limit follows the frame's noise (so that a
// noisy background is not walked run by run) but never hides a code: on a clean
// frame it stays at psMinRange, and codes that fill the frame (no plain background
// to measure the noise on), low in contrast or noisy, are still found and read.
func TestPrescanNoiseFloor(t *testing.T) {
	wallet, emv := qrModules(t, testQR), qrModules(t, testEMV)
	var p prescanner
	for _, c := range []struct {
		noise  int
		lo, hi int // the limit wanted
	}{{0, psMinRange, psMinRange}, {3, psMinRange, psMinRange}, {8, 28, 36}, {30, psMaxRange, psMaxRange}} {
		g := synth{w: 640, h: 480, code: wallet, module: 4, noise: c.noise, seed: 3}.render()
		p.codeLike(g, false)
		if p.minRange < c.lo || p.minRange > c.hi {
			t.Errorf("noise of ±%d: flat-block limit %d, want %d to %d", c.noise, p.minRange, c.lo, c.hi)
		}
	}
	for _, code := range []struct {
		name string
		m    *gozxing.BitMatrix
		text string
	}{{"wallet", wallet, testQR}, {"emv", emv, testEMV}} {
		for _, c := range []struct{ dark, light, noise int }{{30, 220, 8}, {30, 220, 20}, {105, 150, 4}, {125, 150, 3}, {90, 150, 12}} {
			for _, sz := range frameSizes {
				// the code (quiet zone included) fills the frame's height, in modules
				// of up to 9 pixels (from about 15 on, the pre-check misses some of
				// these codes, with the fixed limit as with this one: a finder's
				// centre fills the 3x3-block neighbourhoods around it)
				module := min(9, float64(sz[1])/float64(code.m.GetHeight()))
				g := synth{w: sz[0], h: sz[1], code: code.m, module: module, dark: c.dark, light: c.light, noise: c.noise, seed: 4}.render()
				name := fmt.Sprintf("%s in %dx%d (modules of %.1f px), %d-%d, noise ±%d", code.name, sz[0], sz[1], module, c.dark, c.light, c.noise)
				if !p.codeLike(g, false) {
					t.Errorf("%s (flat-block limit %d): the pre-check finds nothing", name, p.minRange)
				}
				if r, err := NewDecoder(DecodeOptions{}).Decode(g); err != nil || r.Text != code.text {
					t.Errorf("%s (flat-block limit %d): read %v, %v", name, p.minRange, r, err)
				}
			}
		}
	}
}
