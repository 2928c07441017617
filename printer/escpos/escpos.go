package escpos

import (
	"errors"
	"fmt"
	"image"
)

// Control bytes.
const (
	ESC = 0x1b
	GS  = 0x1d
	FS  = 0x1c
	DLE = 0x10
	EOT = 0x04
	LF  = 0x0a
)

// Errors reported by the builder.
var (
	// ErrTooLong is returned when data does not fit the command's length field.
	ErrTooLong = errors.New("escpos: data too long for the command")
	// ErrInvalid is returned for data a printer cannot accept (e.g. a Code 128
	// character outside ASCII, an empty QR payload).
	ErrInvalid = errors.New("escpos: invalid data")
)

// Align is a justification for ESC a.
type Align byte

// Justifications.
const (
	Left   Align = 0
	Center Align = 1
	Right  Align = 2
)

// Underline thickness for ESC -.
const (
	UnderlineOff  = 0
	UnderlineThin = 1
	UnderlineBold = 2
)

// QR error correction levels for GS ( k fn 169 (values as sent to the printer).
type QRLevel byte

// QR error correction levels.
const (
	QRLevelL QRLevel = 48
	QRLevelM QRLevel = 49
	QRLevelQ QRLevel = 50
	QRLevelH QRLevel = 51
)

// Code tables for ESC t (Epson numbering).
const (
	CodeTablePC437    = 0
	CodeTableKatakana = 1
	CodeTablePC850    = 2
	CodeTablePC860    = 3
	CodeTablePC863    = 4
	CodeTablePC865    = 5
	CodeTableWPC1252  = 16
	CodeTablePC866    = 17
	CodeTablePC852    = 18
	CodeTablePC858    = 19
)

// Builder accumulates an ESC/POS command stream. The zero value is ready to use.
type Builder struct {
	buf []byte
	err error
}

// New returns a builder whose stream starts with ESC @ (initialize printer).
func New() *Builder {
	b := &Builder{buf: make([]byte, 0, 1024)}
	return b.Init()
}

// Bytes returns the stream built so far, or the first error.
func (b *Builder) Bytes() ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	return b.buf, nil
}

// Err returns the first error met while building, if any.
func (b *Builder) Err() error { return b.err }

// Len returns the number of bytes built so far.
func (b *Builder) Len() int { return len(b.buf) }

func (b *Builder) put(p ...byte) *Builder {
	if b.err == nil {
		b.buf = append(b.buf, p...)
	}
	return b
}

func (b *Builder) fail(err error) *Builder {
	if b.err == nil {
		b.err = err
	}
	return b
}

// Raw appends bytes unchanged.
func (b *Builder) Raw(p []byte) *Builder { return b.put(p...) }

// Init appends ESC @: clear the print buffer and reset all modes.
func (b *Builder) Init() *Builder { return b.put(ESC, '@') }

// Text appends already-encoded text bytes; see [EncodeText].
func (b *Builder) Text(p []byte) *Builder { return b.put(p...) }

// LF appends one line feed: print the line buffer and advance one line.
func (b *Builder) LF() *Builder { return b.put(LF) }

// Feed appends ESC d n: print and feed n lines.
func (b *Builder) Feed(n byte) *Builder { return b.put(ESC, 'd', n) }

// Bold appends ESC E n (emphasized mode).
func (b *Builder) Bold(on bool) *Builder { return b.put(ESC, 'E', bit(on)) }

// Underline appends ESC - n with n one of UnderlineOff, UnderlineThin, UnderlineBold.
func (b *Builder) Underline(n byte) *Builder {
	if n > 2 {
		return b.fail(fmt.Errorf("%w: underline %d", ErrInvalid, n))
	}
	return b.put(ESC, '-', n)
}

// Inverse appends GS B n (white on black).
func (b *Builder) Inverse(on bool) *Builder { return b.put(GS, 'B', bit(on)) }

// Size appends GS ! n: character width and height multipliers, each 1 to 8.
func (b *Builder) Size(w, h int) *Builder {
	if w < 1 || w > 8 || h < 1 || h > 8 {
		return b.fail(fmt.Errorf("%w: size %dx%d", ErrInvalid, w, h))
	}
	return b.put(GS, '!', byte((w-1)<<4|(h-1)))
}

// Align appends ESC a n (justification of the following lines).
func (b *Builder) Align(a Align) *Builder {
	if a > Right {
		return b.fail(fmt.Errorf("%w: align %d", ErrInvalid, a))
	}
	return b.put(ESC, 'a', byte(a))
}

// FontB appends ESC M n: font B (smaller, 9x17 dots) when on, font A (12x24) when off.
func (b *Builder) FontB(on bool) *Builder { return b.put(ESC, 'M', bit(on)) }

// CodeTable appends ESC t n (select a single-byte character code table).
func (b *Builder) CodeTable(n byte) *Builder { return b.put(ESC, 't', n) }

// Kanji appends FS & (enter) or FS . (leave) the multibyte Kanji/Hangul/Chinese mode.
func (b *Builder) Kanji(on bool) *Builder {
	if on {
		return b.put(FS, '&')
	}
	return b.put(FS, '.')
}

// LineSpacing appends ESC 3 n (line spacing in dots); DefaultLineSpacing restores it.
func (b *Builder) LineSpacing(n byte) *Builder { return b.put(ESC, '3', n) }

// DefaultLineSpacing appends ESC 2.
func (b *Builder) DefaultLineSpacing() *Builder { return b.put(ESC, '2') }

// QR appends the GS ( k sequence that stores data in the printer's QR symbol memory and
// prints it: model 2, module size (1-16 dots), error correction level.
func (b *Builder) QR(data []byte, module byte, level QRLevel) *Builder {
	if len(data) == 0 {
		return b.fail(fmt.Errorf("%w: empty QR data", ErrInvalid))
	}
	if len(data) > 7089 {
		return b.fail(fmt.Errorf("%w: QR data of %d bytes", ErrTooLong, len(data)))
	}
	if module < 1 || module > 16 {
		return b.fail(fmt.Errorf("%w: QR module size %d", ErrInvalid, module))
	}
	if level < QRLevelL || level > QRLevelH {
		return b.fail(fmt.Errorf("%w: QR level %d", ErrInvalid, level))
	}
	b.put(GS, '(', 'k', 4, 0, '1', 'A', '2', 0) // fn 165: model 2
	b.put(GS, '(', 'k', 3, 0, '1', 'C', module) // fn 167: module size
	b.put(GS, '(', 'k', 3, 0, '1', 'E', byte(level))
	n := len(data) + 3
	b.put(GS, '(', 'k', byte(n), byte(n>>8), '1', 'P', '0') // fn 180: store
	b.put(data...)
	return b.put(GS, '(', 'k', 3, 0, '1', 'Q', '0') // fn 181: print
}

// Code128 appends GS k m=73 with code set B (all printable ASCII), HRI text below,
// module width w (2-6 dots) and height h dots.
func (b *Builder) Code128(data string, w, h byte) *Builder {
	if len(data) == 0 || len(data) > 253 {
		return b.fail(fmt.Errorf("%w: Code 128 data of %d bytes", ErrInvalid, len(data)))
	}
	for i := 0; i < len(data); i++ {
		if data[i] < 0x20 || data[i] > 0x7e || data[i] == '{' {
			return b.fail(fmt.Errorf("%w: Code 128 byte 0x%02x", ErrInvalid, data[i]))
		}
	}
	if w < 2 || w > 6 {
		return b.fail(fmt.Errorf("%w: Code 128 module width %d", ErrInvalid, w))
	}
	if h == 0 {
		return b.fail(fmt.Errorf("%w: Code 128 height 0", ErrInvalid))
	}
	b.put(GS, 'H', 2) // HRI below
	b.put(GS, 'w', w, GS, 'h', h)
	b.put(GS, 'k', 73, byte(len(data)+2), '{', 'B')
	return b.put([]byte(data)...)
}

// Raster appends GS v 0 with the image thresholded to black and white: a pixel prints
// when its luminance is below half. The width is padded to a multiple of 8 dots.
func (b *Builder) Raster(img image.Image) *Builder {
	r := img.Bounds()
	w, h := r.Dx(), r.Dy()
	if w <= 0 || h <= 0 {
		return b.fail(fmt.Errorf("%w: empty image", ErrInvalid))
	}
	xb := (w + 7) / 8
	if xb > 0xffff || h > 0xffff {
		return b.fail(fmt.Errorf("%w: image %dx%d", ErrTooLong, w, h))
	}
	b.put(GS, 'v', '0', 0, byte(xb), byte(xb>>8), byte(h), byte(h>>8))
	if b.err != nil {
		return b
	}
	row := make([]byte, xb)
	for y := 0; y < h; y++ {
		clear(row)
		for x := 0; x < w; x++ {
			cr, cg, cb, ca := img.At(r.Min.X+x, r.Min.Y+y).RGBA()
			// Transparent counts as paper; luminance per Rec. 601.
			lum := (299*cr + 587*cg + 114*cb) / 1000
			if ca > 0x8000 && lum < 0x8000 {
				row[x/8] |= 0x80 >> (x % 8)
			}
		}
		b.buf = append(b.buf, row...)
	}
	return b
}

// RasterBits appends GS v 0 from packed rows: widthBytes bytes per row, MSB first,
// 1 = black. len(bits) must be widthBytes*height.
func (b *Builder) RasterBits(widthBytes, height int, bits []byte) *Builder {
	if widthBytes <= 0 || height <= 0 || widthBytes > 0xffff || height > 0xffff || len(bits) != widthBytes*height {
		return b.fail(fmt.Errorf("%w: raster %dx%d with %d bytes", ErrInvalid, widthBytes, height, len(bits)))
	}
	b.put(GS, 'v', '0', 0, byte(widthBytes), byte(widthBytes>>8), byte(height), byte(height>>8))
	return b.put(bits...)
}

// Cut appends GS V 66 n: feed n dots to the cutter position and cut, partially (one
// point left uncut) or fully.
func (b *Builder) Cut(partial bool, feed byte) *Builder {
	m := byte(65)
	if partial {
		m = 66
	}
	return b.put(GS, 'V', m, feed)
}

// DrawerKick appends ESC p m t1 t2: a pulse on drawer connector pin 2 (pin5=false) or
// pin 5, on for on*2 ms and off for off*2 ms.
func (b *Builder) DrawerKick(pin5 bool, on, off byte) *Builder {
	return b.put(ESC, 'p', bit(pin5), on, off)
}

func bit(on bool) byte {
	if on {
		return 1
	}
	return 0
}
