package emulator

import (
	"fmt"
	"strings"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/oned"

	"github.com/walletless/walletless/printer/escpos"
)

// gs handles GS sequences.
func (m *machine) gs(start int) {
	if !m.need(start, 1, "GS command") {
		return
	}
	c := m.byteArg()
	switch c {
	case '!':
		if !m.need(start, 1, "GS !") {
			return
		}
		n := m.byteArg()
		w, h := int(n>>4)+1, int(n&7)+1
		if w > 8 {
			m.warn(start, "GS ! width %d out of range", w)
			return
		}
		m.sw, m.sh = w, h
	case 'B':
		if !m.need(start, 1, "GS B") {
			return
		}
		m.inv = m.byteArg()&1 != 0
	case 'V':
		if !m.need(start, 1, "GS V") {
			return
		}
		mode := m.byteArg()
		switch mode {
		case 0, 1, '0', '1':
		case 65, 66, 97, 98, 103, 104:
			if !m.need(start, 1, "GS V") {
				return
			}
			feed := int(m.byteArg())
			m.flush(false)
			if mode <= 66 {
				m.paper.grow(feed)
			}
		default:
			m.warn(start, "GS V mode %d unknown", mode)
			return
		}
		m.cutMark(mode == 1 || mode == '1' || mode == 66 || mode == 98 || mode == 104)
	case 'v':
		m.raster(start)
	case '(':
		m.gsParen(start)
	case 'k':
		m.barcode(start)
	case 'H':
		if m.need(start, 1, "GS H") {
			m.hriPos = int(m.byteArg() & 3)
		}
	case 'f':
		if m.need(start, 1, "GS f") {
			m.hriFB = int(m.byteArg() & 1)
		}
	case 'h':
		if m.need(start, 1, "GS h") {
			if n := int(m.byteArg()); n > 0 {
				m.barH = n
			}
		}
	case 'w':
		if m.need(start, 1, "GS w") {
			if n := int(m.byteArg()); n >= 1 && n <= 6 {
				m.barW = n
			}
		}
	case 'L':
		if m.need(start, 2, "GS L") {
			n := int(m.byteArg()) | int(m.byteArg())<<8
			if n < m.opt.Width {
				m.leftMargin = n
				m.areaWidth = min(m.areaWidth, m.opt.Width-n)
			}
		}
	case 'W':
		if m.need(start, 2, "GS W") {
			n := int(m.byteArg()) | int(m.byteArg())<<8
			if n > 0 {
				m.areaWidth = min(n, m.opt.Width-m.leftMargin)
			}
		}
	case 'a', 'r', 'I', 'b', 'c', 'E', 'j':
		if m.need(start, 1, fmt.Sprintf("GS %c", c)) {
			m.pos++
		}
	case 'P':
		if m.need(start, 2, "GS P") {
			m.pos += 2
		}
	case '*':
		if !m.need(start, 2, "GS *") {
			return
		}
		x, y := int(m.byteArg()), int(m.byteArg())
		if m.need(start, x*y*8, "GS * data") {
			m.pos += x * y * 8
			m.warn(start, "downloaded bit image not emulated")
		}
	case '/':
		if m.need(start, 1, "GS /") {
			m.pos++
		}
	case '8':
		// GS 8 L p1 p2 p3 p4 m fn ...: graphics with a 32-bit length
		if !m.need(start, 5, "GS 8") {
			return
		}
		m.pos++
		n := int(m.byteArg()) | int(m.byteArg())<<8 | int(m.byteArg())<<16 | int(m.byteArg())<<24
		if n < 0 || !m.need(start, n, "GS 8 data") {
			return
		}
		m.pos += n
		m.warn(start, "GS 8 L graphics not emulated")
	default:
		m.warn(start, "unknown command GS 0x%02x skipped", c)
	}
}

// raster handles GS v 0 m xL xH yL yH d1...dk.
func (m *machine) raster(start int) {
	if !m.need(start, 6, "GS v 0") {
		return
	}
	if m.byteArg() != '0' {
		m.warn(start, "GS v: unknown function")
		return
	}
	mode := m.byteArg()
	xb := int(m.byteArg()) | int(m.byteArg())<<8
	h := int(m.byteArg()) | int(m.byteArg())<<8
	n := xb * h
	if !m.need(start, n, "GS v 0 data") {
		return
	}
	d := m.data[m.pos : m.pos+n]
	m.pos += n
	if n == 0 {
		return
	}
	sx, sy := 1+int(mode&1), 1+int(mode>>1&1)
	w := xb * 8
	if w*sx > m.areaWidth {
		m.warn(start, "GS v 0 image %d dots wide exceeds the print area of %d; clipped", w*sx, m.areaWidth)
	}
	// Do not build a bitmap taller than the paper that is left.
	hmax := (m.paper.max - m.paper.h) / sy
	if h > hmax {
		h = max(hmax, 0)
		m.paper.full = true
	}
	bm := newBitmap(w, h)
	for y := range h {
		for x := range w {
			if d[y*xb+x/8]&(0x80>>(x%8)) != 0 {
				bm.pix[y*w+x] = 1
			}
		}
	}
	m.block(bm, sx, sy)
}

// gsParen handles GS ( X pL pH ...; only GS ( k with cn 49 (QR) is drawn.
func (m *machine) gsParen(start int) {
	if !m.need(start, 3, "GS (") {
		return
	}
	fn := m.byteArg()
	n := int(m.byteArg()) | int(m.byteArg())<<8
	if !m.need(start, n, "GS ( data") {
		return
	}
	p := m.data[m.pos : m.pos+n]
	m.pos += n
	if fn != 'k' {
		if fn != 'A' && fn != 'E' && fn != 'H' && fn != 'K' {
			m.warn(start, "GS ( %c not emulated", fn)
		}
		return
	}
	if len(p) < 2 {
		m.warn(start, "GS ( k too short")
		return
	}
	cn, f := p[0], p[1]
	if cn != '1' {
		m.warn(start, "GS ( k symbol type %d (not QR) not emulated", cn)
		return
	}
	arg := p[2:]
	switch f {
	case 'A': // model
	case 'C':
		if len(arg) >= 1 && arg[0] >= 1 && arg[0] <= 16 {
			m.qrModule = int(arg[0])
		} else {
			m.warn(start, "GS ( k QR module size invalid")
		}
	case 'E':
		if len(arg) >= 1 && arg[0] >= 48 && arg[0] <= 51 {
			m.qrLevel = escpos.QRLevel(arg[0])
		} else {
			m.warn(start, "GS ( k QR error correction invalid")
		}
	case 'P':
		if len(arg) < 1 {
			m.warn(start, "GS ( k QR store without data")
			return
		}
		m.qrData = append(m.qrData[:0], arg[1:]...)
	case 'Q':
		m.printQR(start)
	case 'R':
		// transmit size: nothing to print
	default:
		m.warn(start, "GS ( k QR function %d unknown", f)
	}
}

func (m *machine) printQR(start int) {
	if len(m.qrData) == 0 {
		m.warn(start, "GS ( k QR print with no stored data")
		return
	}
	mat, err := escpos.QRMatrix(m.qrData, m.qrLevel)
	if err != nil {
		m.warn(start, "QR not printable: %v", err)
		return
	}
	m.res.Symbols = append(m.res.Symbols, Symbol{Kind: "qr", Data: append([]byte(nil), m.qrData...)})
	n := len(mat)
	scale := m.qrModule
	for scale > 1 && n*scale > m.areaWidth {
		scale--
	}
	if n*scale > m.areaWidth {
		m.warn(start, "QR of %d modules does not fit the print area", n)
		return
	}
	bm := newBitmap(n, n)
	for y := range n {
		for x := range n {
			if mat[y][x] {
				bm.pix[y*n+x] = 1
			}
		}
	}
	m.block(bm, scale, scale)
	m.text.WriteString("[QR " + printable(m.qrData) + "]\n")
}

// barcode handles GS k in both forms: m 0-6 (NUL-terminated) and m 65-79 (counted).
func (m *machine) barcode(start int) {
	if !m.need(start, 1, "GS k") {
		return
	}
	kind := m.byteArg()
	var data []byte
	if kind <= 6 {
		end := -1
		for i := m.pos; i < len(m.data) && i < m.pos+256; i++ {
			if m.data[i] == 0 {
				end = i
				break
			}
		}
		if end < 0 {
			m.warn(start, "GS k without NUL terminator")
			m.res.Truncated = true
			m.pos = len(m.data)
			return
		}
		data = m.data[m.pos:end]
		m.pos = end + 1
		kind += 65
	} else {
		if !m.need(start, 1, "GS k") {
			return
		}
		n := int(m.byteArg())
		if !m.need(start, n, "GS k data") {
			return
		}
		data = m.data[m.pos : m.pos+n]
		m.pos += n
	}
	var (
		w      gozxing.Writer
		format gozxing.BarcodeFormat
		name   string
		text   = string(data)
	)
	switch kind {
	case 65:
		w, format, name = oned.NewUPCAWriter(), gozxing.BarcodeFormat_UPC_A, "upca"
	case 66:
		w, format, name = oned.NewUPCEWriter(), gozxing.BarcodeFormat_UPC_E, "upce"
	case 67:
		w, format, name = oned.NewEAN13Writer(), gozxing.BarcodeFormat_EAN_13, "ean13"
	case 68:
		w, format, name = oned.NewEAN8Writer(), gozxing.BarcodeFormat_EAN_8, "ean8"
	case 69:
		w, format, name = oned.NewCode39Writer(), gozxing.BarcodeFormat_CODE_39, "code39"
	case 70:
		w, format, name = oned.NewITFWriter(), gozxing.BarcodeFormat_ITF, "itf"
	case 71:
		w, format, name = oned.NewCodaBarWriter(), gozxing.BarcodeFormat_CODABAR, "codabar"
	case 72:
		w, format, name = oned.NewCode93Writer(), gozxing.BarcodeFormat_CODE_93, "code93"
	case 73:
		w, format, name = oned.NewCode128Writer(), gozxing.BarcodeFormat_CODE_128, "code128"
		text = code128Text(data)
	default:
		m.warn(start, "GS k barcode system %d not emulated", kind)
		return
	}
	if text == "" {
		m.warn(start, "GS k %s without data", name)
		return
	}
	bits, err := encodeBars(w, format, text)
	if err != nil {
		m.warn(start, "GS k %s %q not encodable: %v", name, printable([]byte(text)), err)
		return
	}
	mw := m.barW
	for mw > 1 && len(bits)*mw > m.areaWidth {
		mw--
	}
	if len(bits)*mw > m.areaWidth {
		m.warn(start, "GS k %s does not fit the print area", name)
		return
	}
	m.res.Symbols = append(m.res.Symbols, Symbol{Kind: name, Data: []byte(text)})
	bm := newBitmap(len(bits), 1)
	for i, b := range bits {
		if b {
			bm.pix[i] = 1
		}
	}
	if m.hriPos&1 != 0 {
		m.hri(text)
	}
	// scale vertically by drawing the one-row bitmap barH times
	m.block(bm, mw, m.barH)
	if m.hriPos&2 != 0 {
		m.hri(text)
	}
	m.text.WriteString("[" + name + " " + printable([]byte(text)) + "]\n")
}

// hri prints the human readable interpretation under or over a barcode.
func (m *machine) hri(s string) {
	save := struct {
		fontB, bold, inv bool
		sw, sh, ul       int
	}{fontB: m.fontB, bold: m.bold, inv: m.inv, sw: m.sw, sh: m.sh, ul: m.ul}
	m.fontB, m.bold, m.inv, m.sw, m.sh, m.ul = m.hriFB == 1, false, false, 1, 1, 0
	m.flush(false)
	for _, r := range s {
		m.putRune(r, false)
	}
	// print the line without adding it to the text transcript twice
	m.lineTxt.Reset()
	m.flushNoText()
	m.fontB, m.bold, m.inv, m.sw, m.sh, m.ul = save.fontB, save.bold, save.inv, save.sw, save.sh, save.ul
}

func (m *machine) flushNoText() {
	before := m.text.Len()
	m.flush(false)
	s := m.text.String()[:before]
	m.text.Reset()
	m.text.WriteString(s)
}

func encodeBars(w gozxing.Writer, f gozxing.BarcodeFormat, text string) (bits []bool, err error) {
	defer func() {
		if r := recover(); r != nil { // gozxing writers index without checks on odd input
			err = fmt.Errorf("encoder panic: %v", r)
		}
	}()
	bm, err := w.Encode(text, f, 1, 1, map[gozxing.EncodeHintType]any{gozxing.EncodeHintType_MARGIN: 0})
	if err != nil {
		return nil, err
	}
	bits = make([]bool, bm.GetWidth())
	for x := range bits {
		bits[x] = bm.Get(x, 0)
	}
	return bits, nil
}

// code128Text turns GS k Code 128 data ({A/{B/{C code set switches, {{ for a brace,
// {1-{4 function codes) into the text it encodes.
func code128Text(d []byte) string {
	var sb strings.Builder
	set := byte('B')
	for i := 0; i < len(d); i++ {
		c := d[i]
		if c == '{' && i+1 < len(d) {
			i++
			switch d[i] {
			case 'A', 'B', 'C':
				set = d[i]
			case '{':
				sb.WriteByte('{')
			}
			continue
		}
		if set == 'C' {
			if c <= 99 {
				fmt.Fprintf(&sb, "%02d", c)
			}
			continue
		}
		if c >= 0x20 && c < 0x7f {
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// printable returns p for a transcript: control and non-UTF-8 bytes escaped.
func printable(p []byte) string {
	s := fmt.Sprintf("%q", p)
	return s[1 : len(s)-1]
}
