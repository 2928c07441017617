package scanner

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// The frame generator: every frame class of the benchmark and of the read-what-the-
// peers-read test, rendered by synth. To write them as PGM files (to look at them or
// feed them to another decoder):
//
//	go test ./scanner -run '^TestWriteFrames$' -frames-out /tmp/frames
var framesOut = flag.String("frames-out", "", "TestWriteFrames writes the benchmark frames as PGM files into this directory")

// benchFrame is one generated frame and the text it holds ("" for none).
type benchFrame struct {
	name string // class-WxH
	g    Gray
	want string
}

// frameSizes are the camera sizes of the frame set: VGA and 720p.
var frameSizes = [][2]int{{640, 480}, {1280, 720}}

// codeFrames renders the frame classes with a code at w x h: the classes
// (clean, blur, noise, rotation, low contrast, 2-3 px modules, combo) for an EMVCo QR,
// a wallet QR and a Code 128, and harder ones (very low contrast down to 17 grey
// levels, 2 px modules,
// rotation to 45°, motion blur, phone-screen glare, and all of them together).
func codeFrames(tb testing.TB, w, h int) []benchFrame {
	tb.Helper()
	emv, wallet, c128 := qrModules(tb, testEMV), qrModules(tb, testQR), code128Modules(tb, test128)
	type cls struct {
		name string
		s    synth
		want string
	}
	// EMVCo QR codes are big (version 10 here, 57+8 modules): their modules are
	// smaller for the same printed size.
	cs := []cls{
		{"emv", synth{code: emv, module: 5, noise: 6}, testEMV},
		{"emv-blur", synth{code: emv, module: 4, blur: true, noise: 6}, testEMV},
		{"emv-noise", synth{code: emv, module: 5, noise: 30}, testEMV},
		{"emv-rot30", synth{code: emv, module: 5, angle: 30, noise: 8}, testEMV},
		{"emv-lowcontr", synth{code: emv, module: 5, dark: 105, light: 150, noise: 4}, testEMV},
		{"emv-small3", synth{code: emv, module: 3, noise: 6}, testEMV},
		{"emv-combo", synth{code: emv, module: 4, angle: 20, blur: true, noise: 12, glare: 0.5, dark: 60, light: 200}, testEMV},
		{"wallet", synth{code: wallet, module: 5, noise: 6}, testQR},
		{"wallet-blur", synth{code: wallet, module: 3, blur: true, noise: 6}, testQR},
		{"wallet-noise", synth{code: wallet, module: 5, noise: 30}, testQR},
		{"wallet-rot30", synth{code: wallet, module: 5, angle: 30, noise: 8}, testQR},
		{"wallet-lowcontr", synth{code: wallet, module: 5, dark: 105, light: 150, noise: 4}, testQR},
		{"wallet-small2", synth{code: wallet, module: 2, noise: 6}, testQR},
		{"wallet-flat", synth{code: wallet, module: 4}, testQR},
		{"wallet-combo", synth{code: wallet, module: 3, angle: 20, blur: true, noise: 12, glare: 0.5, dark: 60, light: 200}, testQR},
		{"c128", synth{code: c128, module: 3, barH: h / 3, noise: 6}, test128},
		{"c128-blur", synth{code: c128, module: 3, barH: h / 3, blur: true, noise: 6}, test128},
		{"c128-noise", synth{code: c128, module: 3, barH: h / 3, noise: 30}, test128},
		{"c128-rot10", synth{code: c128, module: 3, barH: h / 2, angle: 10, noise: 8}, test128},
		{"c128-rot90", synth{code: c128, module: 2, barH: w / 3, angle: 90, noise: 8}, test128},
		{"c128-lowcontr", synth{code: c128, module: 3, barH: h / 3, dark: 100, light: 150, noise: 4}, test128},
		{"c128-thin2", synth{code: c128, module: 2, barH: h / 4, noise: 4}, test128},
		{"c128-flat", synth{code: c128, module: 3, barH: h / 3}, test128}, // no noise: one quiet run from the edge
		{"c128-combo", synth{code: c128, module: 3, barH: h / 3, angle: 8, blur: true, noise: 12, glare: 0.5, dark: 60, light: 200}, test128},
		// harder ones
		{"hard-qr-lowcontr", synth{code: wallet, module: 4, dark: 125, light: 150, noise: 3}, testQR},
		{"hard-qr-small2-blur", synth{code: wallet, module: 2.5, blur: true, noise: 4}, testQR},
		{"hard-qr-rot45", synth{code: emv, module: 5, angle: 45, noise: 8}, testEMV},
		{"hard-qr-motion", synth{code: wallet, module: 5, motion: 5, noise: 6}, testQR},
		{"hard-qr-glare", synth{code: emv, module: 5, glare: 0.8, noise: 6}, testEMV},
		{"hard-qr-combo", synth{code: wallet, module: 4, angle: 40, motion: 3, blur: true, glare: 0.6, dark: 70, light: 190, noise: 12}, testQR},
		{"hard-c128-motion", synth{code: c128, module: 3, barH: h / 3, motion: 3, noise: 6}, test128},
		{"hard-c128-glare", synth{code: c128, module: 3, barH: h / 3, glare: 0.8, noise: 6}, test128},
		{"hard-c128-combo", synth{code: c128, module: 3, barH: h / 3, angle: 5, motion: 2, blur: true, glare: 0.6, dark: 70, light: 190, noise: 12}, test128},
		{"hard-qr-lowcontr17", synth{code: wallet, module: 4, dark: 133, light: 150, noise: 3}, testQR},
		{"hard-c128-lowcontr17", synth{code: c128, module: 3, barH: h / 3, dark: 133, light: 150, noise: 3}, test128},
	}
	var out []benchFrame
	for i, c := range cs {
		s := c.s
		s.w, s.h, s.seed = w, h, uint64(100+i)
		out = append(out, benchFrame{fmt.Sprintf("%s-%dx%d", c.name, w, h), s.render(), c.want})
	}
	return out
}

// emptyFrames renders n frames with no code at w x h: noise and blobs (noiseFrame)
// and textures a counter camera sees (stripes, checks, print-like text, wood grain).
func emptyFrames(w, h, n int, seed uint64) []benchFrame {
	out := make([]benchFrame, 0, n)
	for i := 0; i < n; i++ {
		s := seed + uint64(i)
		var g Gray
		kind := []string{"noise", "texture"}[i%2]
		if kind == "noise" {
			g = noiseFrame(w, h, s)
		} else {
			g = textureFrame(w, h, s)
		}
		out = append(out, benchFrame{name: fmt.Sprintf("empty-%s%d-%dx%d", kind, i/2, w, h), g: g})
	}
	return out
}

// textureFrame is a frame with no code but with edges everywhere: regular and
// irregular stripes, checkerboards, rows of print-like marks and a grain, at random
// scales, angles and contrasts.
func textureFrame(w, h int, seed uint64) Gray {
	rng := rand.New(rand.NewPCG(seed, 13))
	pix := make([]byte, w*h)
	base := 80 + rng.IntN(120)
	for i := range pix {
		pix[i] = byte(base + rng.IntN(11) - 5)
	}
	for k := 0; k < 3+rng.IntN(6); k++ {
		x0, y0 := rng.IntN(w), rng.IntN(h)
		bw, bh := 20+rng.IntN(w/3), 20+rng.IntN(h/3)
		dark, light := rng.IntN(120), 120+rng.IntN(136)
		period := 2 + rng.IntN(14)
		kind := rng.IntN(5)
		sin, cos := math.Sincos(rng.Float64() * math.Pi)
		widths := make([]int, 64) // irregular stripes: random bar widths
		for i := range widths {
			widths[i] = 1 + rng.IntN(period)
		}
		for y := y0; y < min(h, y0+bh); y++ {
			for x := x0; x < min(w, x0+bw); x++ {
				u := cos*float64(x-x0) - sin*float64(y-y0)
				v := sin*float64(x-x0) + cos*float64(y-y0)
				var on bool
				switch kind {
				case 0: // stripes
					on = int(math.Floor(u/float64(period)))%2 == 0
				case 1: // checks
					on = (int(math.Floor(u/float64(period)))+int(math.Floor(v/float64(period))))%2 == 0
				case 2: // irregular stripes
					on = widths[(int(math.Abs(u))/max(1, period/2))%len(widths)]%2 == 0
				case 3: // print-like: rows of short marks
					row := int(math.Floor(v / float64(2*period)))
					on = int(v)%(2*period) < period && (int(u)/period+row*7)%5 < 3
				default: // grain
					on = math.Sin(u/float64(period)+3*math.Sin(v/float64(3*period))) > 0
				}
				if on {
					pix[y*w+x] = byte(dark)
				} else {
					pix[y*w+x] = byte(light)
				}
			}
		}
	}
	return Gray{Pix: pix, Width: w, Height: h}
}

// TestWriteFrames writes the frame set as PGM files when -frames-out is given.
func TestWriteFrames(t *testing.T) {
	if *framesOut == "" {
		t.Skip("no -frames-out directory")
	}
	if err := os.MkdirAll(*framesOut, 0o755); err != nil {
		t.Fatal(err)
	}
	var all []benchFrame
	for _, sz := range frameSizes {
		all = append(all, codeFrames(t, sz[0], sz[1])...)
		all = append(all, emptyFrames(sz[0], sz[1], 4, 1)...)
	}
	for _, f := range all {
		writeFrame(t, *framesOut, f.name+".pgm", f.g)
	}
	t.Logf("%d frames in %s", len(all), filepath.Clean(*framesOut))
}
