package scanner

import (
	"errors"
	"fmt"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/oned"
	"github.com/makiuchi-d/gozxing/qrcode"
	qrdecoder "github.com/makiuchi-d/gozxing/qrcode/decoder"
)

// ErrNoCode means a frame held no code the decoder could read.
var ErrNoCode = errors.New("scanner: no code found")

// DecodeOptions choose what a Decoder looks for.
type DecodeOptions struct {
	// EAN13 also reads EAN-13/UPC-A (off by default: retail barcodes on goods are not
	// payment codes and would be noise at a payment counter).
	EAN13 bool
	// NoHarder skips the second, slower full-frame pass (try-harder, rotated 1D
	// codes, inverted and globally thresholded images) when the cheap pass finds
	// nothing. It only matters with NoPrecheck.
	NoHarder bool
	// NoPrecheck decodes every frame with gozxing's full-frame passes instead of
	// the pre-check and its regions (slow on empty frames; for tests and for
	// comparing).
	NoPrecheck bool
}

// Decoded is a code found in a frame.
type Decoded struct {
	Text      string `json:"text"`
	Symbology string `json:"format"` // "qr", "code128", "ean13"
	Pass      int    `json:"pass"`   // 1 for the cheap pass, 2 for the harder one
}

// Decoder reads QR and Code 128 (and optionally EAN-13) codes from gray planes with
// gozxing. A Decoder is not safe for concurrent use: give each goroutine its own.
type Decoder struct {
	opts     DecodeOptions
	qr       gozxing.Reader
	c128     gozxing.Reader
	ean13    gozxing.Reader
	cheap    map[gozxing.DecodeHintType]interface{}
	harder   map[gozxing.DecodeHintType]interface{}
	small    []byte // downscale buffer, reused
	sharp    []byte // sharpen buffer, reused
	pre      prescanner
	roi      []byte               // resampled QR region, reused
	line     []int32              // one averaged line of a 1D code, reused
	lineBits [4]*gozxing.BitArray // a row and a column thresholded, forwards and backwards, reused
	qrdec    *qrdecoder.Decoder
	grid     []byte                 // module samples of the grid read, reused
	gsum     []int32                // their integral image, reused
	bits     *gozxing.BitMatrix     // the grid read's modules
	bitsFor  [41]*gozxing.BitMatrix // module grids per QR version, reused
	qrf      qrFast                 // the grid's allocation-free decode
	c128f    c128Fast               // gozxing's Code 128 row decoder without allocation
}

// NewDecoder returns a Decoder.
func NewDecoder(opts DecodeOptions) *Decoder {
	d := &Decoder{
		opts:   opts,
		qr:     qrcode.NewQRCodeReader(),
		c128:   oned.NewCode128Reader(),
		qrdec:  qrdecoder.NewDecoder(),
		cheap:  map[gozxing.DecodeHintType]interface{}{},
		harder: map[gozxing.DecodeHintType]interface{}{gozxing.DecodeHintType_TRY_HARDER: true},
	}
	if opts.EAN13 {
		d.ean13 = oned.NewEAN13Reader()
	}
	return d
}

// Decode looks for one code in g. A pre-check (about a millisecond on a 720p frame,
// no allocation) looks for three QR finder patterns placed like a QR code's, or a 1D
// start pattern followed by code-like symbols; a frame without them is not decoded
// (ErrNoCode). Where it found one, the region is decoded (roi.go): the QR code
// resampled upright, the 1D code on its lines; up to four candidates per frame.
//
// With NoPrecheck, the whole frame goes through gozxing instead: the cheap pass
// binarizes the plane once and tries each reader once (on frames wider than 1024
// pixels QR is tried on a halved plane first); only if that finds nothing does the
// harder pass (unless NoHarder) try gozxing's try-harder mode (every row, rotated 1D
// codes), an adaptive threshold for low contrast, light-on-dark QR codes and finally
// a sharpened copy for blurred small QR codes.
func (d *Decoder) Decode(g Gray) (Decoded, error) { return d.decode(g, !d.opts.NoHarder) }

// DecodeCheap runs the cheap pass only.
func (d *Decoder) DecodeCheap(g Gray) (Decoded, error) { return d.decode(g, false) }

func (d *Decoder) decode(g Gray, harder bool) (Decoded, error) {
	if err := g.check(); err != nil {
		return Decoded{}, err
	}
	if !d.opts.NoPrecheck {
		// Up to four candidates: three finders that were not a QR code are not
		// tried again, and after a line that was not a 1D code only QR codes are
		// looked for.
		found := d.pre.codeLike(g, d.opts.EAN13)
		for try := 0; found; try++ {
			if r, ok := d.decodeROI(g); ok {
				d.pre.forget()
				r.Pass = 1
				return r, nil
			}
			if try == 3 {
				break
			}
			if d.pre.found == "finder" {
				d.pre.skipTriple()
			} else {
				d.pre.no1D = true
			}
			found = d.pre.codeLikeAgain()
		}
		// No full-frame pass after the regions: on the generated frame classes it
		// read nothing the regions missed, and on a frame whose noise looks like
		// finders it costs tens of milliseconds. The full passes below run with
		// NoPrecheck.
		d.pre.forget()
		return Decoded{}, ErrNoCode
	}
	src := gozxing.LuminanceSource(newPlaneSource(g))
	type step = decodeStep
	// The cheap pass: one binarization, every reader once, on a halved plane for
	// big frames (and the full plane for QR codes too small to survive halving).
	cheap := []step{{gozxing.NewHybridBinarizer(src), d.cheap, d.cheap, true}}
	if g.Width > 1024 {
		var small Gray
		small, d.small = downscale2(g, d.small)
		full := gozxing.NewHybridBinarizer(src)
		cheap = []step{
			{gozxing.NewHybridBinarizer(newPlaneSource(small)), d.cheap, nil, false},
			{full, nil, d.cheap, true},  // thin bars do not survive halving
			{full, d.cheap, nil, false}, // nor do small QR codes
		}
	}
	if r, ok := d.runOn(g, cheap); ok {
		r.Pass = 1
		return r, nil
	}
	if !harder {
		return Decoded{}, ErrNoCode
	}
	// The harder pass: gozxing's try-harder (every row, rotated 1D codes), an
	// adaptive threshold for low contrast, and light-on-dark QR codes.
	hard := []step{
		{gozxing.NewHybridBinarizer(src), d.harder, d.harder, false},
		{newMeanBinarizer(src, 3), d.harder, d.cheap, false},
		{gozxing.NewHybridBinarizer(src.Invert()), d.cheap, nil, false},
	}
	if r, ok := d.run(hard); ok {
		r.Pass = 2
		return r, nil
	}
	// Last, small codes in a soft focus: sharpen, then the adaptive threshold.
	var sharp Gray
	sharp, d.sharp = sharpen(g, d.sharp)
	hard = []step{{newMeanBinarizer(newPlaneSource(sharp), 3), d.harder, nil, false}}
	if r, ok := d.run(hard); ok {
		r.Pass = 2
		return r, nil
	}
	return Decoded{}, ErrNoCode
}

// decodeStep is one binarization and the hints for the 2D and 1D readers on it; nil
// hints skip those readers.
type decodeStep struct {
	b        gozxing.Binarizer
	qr, oned map[gozxing.DecodeHintType]interface{}
	// upright: the binarizer's rows are the frame's rows, so an EAN-13 read can be
	// checked on the frame (EAN-13's one check digit lets noise through)
	upright bool
}

// run tries the steps in order and returns the first code found.
func (d *Decoder) run(steps []decodeStep) (Decoded, bool) { return d.runOn(Gray{}, steps) }

// runOn is run with the frame, to check EAN-13 reads of upright steps on it: the
// same text must be read on two lines near the row gozxing read it on.
func (d *Decoder) runOn(g Gray, steps []decodeStep) (Decoded, bool) {
	for _, s := range steps {
		bmp, err := gozxing.NewBinaryBitmap(s.b)
		if err != nil {
			continue
		}
		readers := []struct {
			r     gozxing.Reader
			sym   string
			hints map[gozxing.DecodeHintType]interface{}
		}{{d.qr, "qr", s.qr}, {d.c128, "code128", s.oned}, {d.ean13, "ean13", s.oned}}
		for _, rd := range readers {
			if rd.r == nil || rd.hints == nil {
				continue
			}
			res, err := rd.r.Decode(bmp, rd.hints)
			rd.r.Reset()
			if err != nil || res == nil || res.GetText() == "" {
				continue
			}
			if rd.sym == "ean13" && (!s.upright || g.Pix == nil || !d.confirmEAN(g, res)) {
				continue
			}
			return Decoded{Text: res.GetText(), Symbology: rd.sym}, true
		}
	}
	return Decoded{}, false
}

// confirmEAN reads the EAN-13 again on the frame's lines around the row gozxing read
// it on, and wants the same text on two of them.
func (d *Decoder) confirmEAN(g Gray, res *gozxing.Result) bool {
	pts := res.GetResultPoints()
	if len(pts) < 2 {
		return false
	}
	w := pts[len(pts)-1].GetX() - pts[0].GetX()
	if w <= 0 {
		return false
	}
	d.pre.line, d.pre.lineRow = int(pts[0].GetY()), true
	d.pre.lineM16 = int32(w * 16 / 95) // 95 modules between the guards' outer edges
	r, ok := d.decodeLines(g, d.ean13, "ean13")
	return ok && r.Text == res.GetText()
}

// String describes a decoded code without revealing it.
func (r Decoded) String() string { return fmt.Sprintf("%s code of %d bytes", r.Symbology, len(r.Text)) }
