package emulator

import (
	"fmt"
	"image"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"

	"github.com/walletless/walletless/printer/escpos"
)

// Options describe the emulated printer.
type Options struct {
	// Width is the printable width in dots: 576 for 80 mm paper (the default), 384
	// for 58 mm.
	Width int
	// Multibyte is the encoding of the Kanji/Hangul/Chinese mode (FS &), one of the
	// escpos.Multibyte constants; empty means Shift_JIS, as Epson's Japanese models.
	Multibyte string
	// MaxHeight caps the paper length in dots (default 32768, about 4 m).
	MaxHeight int
	// MaxWarnings caps the number of warnings kept (default 100); Result.Dropped
	// counts the rest.
	MaxWarnings int
}

// Warning reports a command the emulator skipped or could not follow.
type Warning struct {
	Offset int    // byte offset of the command in the stream
	Msg    string // what happened
}

func (w Warning) String() string { return fmt.Sprintf("offset %d: %s", w.Offset, w.Msg) }

// Symbol is a QR code or barcode the stream printed, with its content as sent.
type Symbol struct {
	Kind string // "qr", "code128", "ean13", ...
	Data []byte
}

// Result is a rendered stream.
type Result struct {
	Image       *image.Gray // the paper, white background, Width dots wide
	Text        string      // the printed text, one line per printed line
	Symbols     []Symbol    // QR codes and barcodes in print order
	Warnings    []Warning
	Dropped     int // warnings not kept
	Cuts        int // GS V / ESC i / ESC m seen
	DrawerKicks int // ESC p seen
	Truncated   bool
}

// Render interprets data and returns the printed paper. It never fails on input: bad
// commands become warnings.
func Render(data []byte, opt Options) *Result {
	if opt.Width <= 0 {
		opt.Width = 576
	}
	if opt.Width > 4096 {
		opt.Width = 4096
	}
	if opt.MaxHeight <= 0 {
		opt.MaxHeight = 32768
	}
	if opt.MaxWarnings <= 0 {
		opt.MaxWarnings = 100
	}
	if opt.Multibyte == "" {
		opt.Multibyte = escpos.MultibyteShiftJIS
	}
	m := &machine{opt: opt, data: data, res: &Result{}}
	m.paper.w = opt.Width
	m.paper.max = opt.MaxHeight
	m.reset()
	m.paper.grow(8) // a little paper above the first line
	m.run()
	m.flush(false)
	m.paper.grow(16)
	res := m.res
	res.Truncated = res.Truncated || m.paper.full
	res.Text = strings.TrimRight(m.text.String(), "\n")
	if res.Text != "" {
		res.Text += "\n"
	}
	res.Image = m.paper.image()
	return res
}

// paper is the printed roll: one byte per dot, 0 paper, 1 ink, 2 cut mark.
type paper struct {
	w, h, max int
	pix       []byte
	full      bool
}

// grow adds n blank rows and returns the first new row, or -1 when the paper is full.
func (p *paper) grow(n int) int {
	if n <= 0 {
		return p.h
	}
	if p.h+n > p.max {
		p.full = true
		n = p.max - p.h
		if n <= 0 {
			return -1
		}
	}
	y := p.h
	p.pix = append(p.pix, make([]byte, n*p.w)...)
	p.h += n
	return y
}

func (p *paper) set(x, y int, v byte) {
	if x >= 0 && x < p.w && y >= 0 && y < p.h {
		p.pix[y*p.w+x] = v
	}
}

func (p *paper) image() *image.Gray {
	h := max(p.h, 1)
	img := image.NewGray(image.Rect(0, 0, p.w, h))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	for i, v := range p.pix {
		switch v {
		case 1:
			img.Pix[i] = 0
		case 2:
			img.Pix[i] = 0xa0
		}
	}
	return img
}

// item is one thing on the current line: a character or an inline bit image.
type item struct {
	x   int // pen position, dots from the left margin
	bm  *bitmap
	sx  int // horizontal scale
	sy  int // vertical scale
	inv bool
	ul  int // underline thickness
}

func (it item) width() int  { return it.bm.w * it.sx }
func (it item) height() int { return it.bm.h * it.sy }

type machine struct {
	opt  Options
	data []byte
	pos  int
	res  *Result
	text strings.Builder

	paper paper

	// print modes
	fontB, bold, inv, kanji   bool
	sw, sh                    int // GS ! multipliers
	ksw, ksh                  int // FS ! multipliers for multibyte characters
	ul, kul                   int
	align                     escpos.Align
	lineSpacing               int
	charSpacing               int
	leftMargin, areaWidth     int
	table                     byte
	tabs                      []int // in characters
	hriPos, barW, barH, hriFB int

	fontWarned bool

	// QR state
	qrModule int
	qrLevel  escpos.QRLevel
	qrData   []byte

	// current line
	line    []item
	pen     int
	lineTxt strings.Builder
}

func (m *machine) reset() {
	m.fontB, m.bold, m.inv, m.kanji = false, false, false, false
	m.sw, m.sh, m.ksw, m.ksh = 1, 1, 1, 1
	m.ul, m.kul = 0, 0
	m.align = escpos.Left
	m.lineSpacing = 30
	m.charSpacing = 0
	m.leftMargin, m.areaWidth = 0, m.opt.Width
	m.table = 0
	m.tabs = nil
	m.hriPos, m.barW, m.barH, m.hriFB = 0, 3, 162, 0
	m.qrModule, m.qrLevel, m.qrData = 3, escpos.QRLevelL, nil
}

func (m *machine) warn(off int, format string, args ...any) {
	if len(m.res.Warnings) >= m.opt.MaxWarnings {
		m.res.Dropped++
		return
	}
	m.res.Warnings = append(m.res.Warnings, Warning{Offset: off, Msg: fmt.Sprintf(format, args...)})
}

// need reports whether n more bytes are available at the current position; if not it
// warns about a truncated command and consumes the rest of the stream.
func (m *machine) need(start, n int, what string) bool {
	if m.pos+n <= len(m.data) {
		return true
	}
	m.warn(start, "truncated %s", what)
	m.res.Truncated = true
	m.pos = len(m.data)
	return false
}

func (m *machine) byteArg() byte {
	b := m.data[m.pos]
	m.pos++
	return b
}

func (m *machine) run() {
	for m.pos < len(m.data) {
		if m.paper.full {
			m.warn(m.pos, "paper length limit of %d dots reached; rest of the stream ignored", m.opt.MaxHeight)
			return
		}
		start := m.pos
		c := m.data[m.pos]
		m.pos++
		switch c {
		case escpos.LF:
			m.flush(true)
		case '\r':
			// Carriage return is ignored with auto line feed off (the default).
		case '\t':
			m.tab()
		case 0x0c: // FF: in standard mode, print and feed like LF
			m.flush(true)
		case escpos.ESC:
			m.esc(start)
		case escpos.GS:
			m.gs(start)
		case escpos.FS:
			m.fs(start)
		case escpos.DLE:
			m.dle(start)
		case 0x00:
			// NUL padding: harmless.
		default:
			if c < 0x20 || c == 0x7f {
				m.warn(start, "control byte 0x%02x skipped", c)
				continue
			}
			m.pos = start
			m.char()
		}
	}
}

// char decodes one character at the current position and puts it on the line.
func (m *machine) char() {
	start := m.pos
	c := m.data[m.pos]
	if m.kanji && c >= 0x80 {
		if r, n, ok := m.decodeMultibyte(); ok {
			m.pos += n
			m.putRune(r, true)
			return
		}
		m.warn(start, "invalid multibyte character 0x%02x", c)
		m.pos++
		return
	}
	m.pos++
	if c < 0x80 {
		m.putRune(rune(c), false)
		return
	}
	enc := escpos.CodeTableEncoding(m.table)
	if enc == nil {
		m.putRune('?', false)
		return
	}
	out, err := enc.NewDecoder().Bytes([]byte{c})
	r, _ := utf8.DecodeRune(out)
	if err != nil || r == utf8.RuneError {
		r = '?'
	}
	m.putRune(r, false)
}

func (m *machine) decodeMultibyte() (rune, int, bool) {
	enc := escpos.MultibyteEncoding(m.opt.Multibyte)
	if enc == nil {
		return 0, 0, false
	}
	rest := m.data[m.pos:]
	for _, n := range []int{2, 4} {
		if len(rest) < n {
			break
		}
		if r, ok := decodeOne(enc, rest[:n]); ok {
			return r, n, true
		}
	}
	return 0, 0, false
}

func decodeOne(enc encoding.Encoding, p []byte) (rune, bool) {
	out, err := enc.NewDecoder().Bytes(p)
	if err != nil || utf8.RuneCount(out) != 1 {
		return 0, false
	}
	r, _ := utf8.DecodeRune(out)
	if r == utf8.RuneError || r == '\ufffd' {
		return 0, false
	}
	return r, true
}

func (m *machine) putRune(r rune, wide bool) {
	bm := fonts.glyph(r, m.bold, m.fontB && !wide, wide)
	sx, sy, ul := m.sw, m.sh, m.ul
	if wide {
		// GS ! sizes every character; FS ! and FS - add to it for multibyte ones.
		sx, sy, ul = max(m.sw, m.ksw), max(m.sh, m.ksh), max(m.ul, m.kul)
		if !m.fontWarned && CJKFont() == "" {
			m.fontWarned = true
			m.warn(m.pos, "no CJK font found: multibyte characters drawn as boxes (apt-get install fonts-wqy-microhei, or set %s)", CJKFontEnv)
		}
	}
	it := item{bm: bm, sx: sx, sy: sy, inv: m.inv, ul: ul}
	adv := it.width() + m.charSpacing*sx
	if m.pen+it.width() > m.areaWidth && len(m.line) > 0 {
		m.flush(true) // automatic line wrap
	}
	it.x = m.pen
	m.line = append(m.line, it)
	m.pen += adv
	m.lineTxt.WriteRune(r)
}

func (m *machine) charWidth() int {
	if m.fontB {
		return fontBW * m.sw
	}
	return fontAW * m.sw
}

func (m *machine) tab() {
	cw := m.charWidth() + m.charSpacing
	col := m.pen / max(cw, 1)
	next := -1
	if m.tabs == nil {
		next = (col/8 + 1) * 8
	} else {
		for _, t := range m.tabs {
			if t > col {
				next = t
				break
			}
		}
	}
	if next < 0 || next*cw > m.areaWidth {
		return
	}
	m.pen = next * cw
	m.lineTxt.WriteByte('\t')
}

// flush prints the current line. With feed, an empty line still advances the paper
// by the line spacing.
func (m *machine) flush(feed bool) {
	if len(m.line) == 0 {
		if feed {
			m.paper.grow(m.lineSpacing)
			m.text.WriteByte('\n')
		}
		return
	}
	h := 0
	for _, it := range m.line {
		h = max(h, it.height())
	}
	lineW := m.pen
	if n := len(m.line); n > 0 {
		lineW = max(lineW, m.line[n-1].x+m.line[n-1].width())
	}
	off := m.leftMargin + m.alignOffset(lineW)
	y0 := m.paper.grow(max(h, m.lineSpacing))
	if y0 >= 0 {
		for _, it := range m.line {
			m.drawItem(it, off+it.x, y0+h-it.height())
		}
	}
	m.line = m.line[:0]
	m.pen = 0
	m.text.WriteString(strings.TrimRight(m.lineTxt.String(), " "))
	m.text.WriteByte('\n')
	m.lineTxt.Reset()
}

func (m *machine) alignOffset(w int) int {
	free := m.areaWidth - w
	if free <= 0 {
		return 0
	}
	switch m.align {
	case escpos.Center:
		return free / 2
	case escpos.Right:
		return free
	}
	return 0
}

func (m *machine) drawItem(it item, x0, y0 int) {
	w, h := it.width(), it.height()
	for y := range h {
		for x := range w {
			ink := it.bm.at(x/it.sx, y/it.sy)
			if it.ul > 0 && y >= h-it.ul*it.sy {
				ink = true
			}
			if it.inv {
				ink = !ink
			}
			if ink {
				m.paper.set(x0+x, y0+y, 1)
			}
		}
	}
}

// block prints a picture on its own lines (QR codes, barcodes, raster images), placed
// by the current justification.
func (m *machine) block(bm *bitmap, sx, sy int) {
	m.flush(false)
	w, h := bm.w*sx, bm.h*sy
	off := m.leftMargin + m.alignOffset(w)
	y0 := m.paper.grow(h)
	if y0 < 0 {
		return
	}
	for y := 0; y < h && y0+y < m.paper.h; y++ {
		for x := 0; x < w && off+x < m.paper.w; x++ {
			if bm.at(x/sx, y/sy) {
				m.paper.set(off+x, y0+y, 1)
			}
		}
	}
}

func (m *machine) cutMark(partial bool) {
	m.flush(false)
	m.res.Cuts++
	y := m.paper.grow(12)
	if y < 0 {
		return
	}
	for x := 0; x < m.paper.w; x++ {
		if partial && x > m.paper.w/2-20 && x < m.paper.w/2+20 {
			continue // the uncut point of a partial cut
		}
		if (x/6)%2 == 0 {
			m.paper.set(x, y+6, 2)
		}
	}
	m.text.WriteString("--- cut ---\n")
}
