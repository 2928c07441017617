package emulator

import (
	"fmt"

	"github.com/walletless/walletless/printer/escpos"
)

// esc handles ESC sequences; m.pos is just after the ESC byte.
func (m *machine) esc(start int) {
	if !m.need(start, 1, "ESC command") {
		return
	}
	c := m.byteArg()
	switch c {
	case '@':
		// Initialize clears the print buffer: text not yet ended by LF is lost, as
		// on a real printer.
		m.line, m.pen = m.line[:0], 0
		m.lineTxt.Reset()
		m.reset()
	case '!':
		if !m.need(start, 1, "ESC !") {
			return
		}
		n := m.byteArg()
		m.fontB = n&0x01 != 0
		m.bold = n&0x08 != 0
		m.sh = 1 + int(n>>4&1)
		m.sw = 1 + int(n>>5&1)
		m.ul = 0
		if n&0x80 != 0 {
			m.ul = 1
		}
	case 'E', 'G':
		if !m.need(start, 1, "ESC "+string(c)) {
			return
		}
		m.bold = m.byteArg()&1 != 0
	case '-':
		if !m.need(start, 1, "ESC -") {
			return
		}
		m.ul = underline(m.byteArg())
	case 'a':
		if !m.need(start, 1, "ESC a") {
			return
		}
		switch n := m.byteArg(); n {
		case 0, '0':
			m.align = escpos.Left
		case 1, '1':
			m.align = escpos.Center
		case 2, '2':
			m.align = escpos.Right
		default:
			m.warn(start, "ESC a %d: bad justification", n)
		}
	case 'd':
		if !m.need(start, 1, "ESC d") {
			return
		}
		n := int(m.byteArg())
		m.flush(true)
		if n > 1 {
			m.paper.grow((n - 1) * m.lineSpacing)
			for range n - 1 {
				m.text.WriteByte('\n')
			}
		}
	case 'J':
		if !m.need(start, 1, "ESC J") {
			return
		}
		n := int(m.byteArg())
		m.flush(false)
		m.paper.grow(n)
	case 'e', 'K':
		if !m.need(start, 1, "ESC e") {
			return
		}
		m.pos++
		m.warn(start, "reverse feed not emulated")
	case '2':
		m.lineSpacing = 30
	case '3':
		if !m.need(start, 1, "ESC 3") {
			return
		}
		m.lineSpacing = int(m.byteArg())
	case 't':
		if !m.need(start, 1, "ESC t") {
			return
		}
		m.table = m.byteArg()
		if escpos.CodeTableEncoding(m.table) == nil {
			m.warn(start, "code table %d not emulated; bytes 0x80-0xff print as '?'", m.table)
		}
	case 'M':
		if !m.need(start, 1, "ESC M") {
			return
		}
		n := m.byteArg()
		m.fontB = n == 1 || n == '1'
	case ' ':
		if !m.need(start, 1, "ESC SP") {
			return
		}
		m.charSpacing = int(m.byteArg())
	case '$':
		if !m.need(start, 2, "ESC $") {
			return
		}
		n := int(m.byteArg()) | int(m.byteArg())<<8
		if n <= m.areaWidth {
			m.pen = n
		}
	case '\\':
		if !m.need(start, 2, "ESC \\") {
			return
		}
		n := int(int16(uint16(m.byteArg()) | uint16(m.byteArg())<<8))
		if p := m.pen + n; p >= 0 && p <= m.areaWidth {
			m.pen = p
		}
	case 'p':
		if !m.need(start, 3, "ESC p") {
			return
		}
		m.pos += 3
		m.res.DrawerKicks++
	case 'i', 'm':
		m.cutMark(c == 'm')
	case 'R', 'r', 'U', '{', 'V', '=', 'c', 'S', 'L', 'T', 'W', 'u', 'v', 'k', 'D', '%', '&', '?', '*', '(', 'Z':
		m.escMisc(start, c)
	default:
		m.warn(start, "unknown command ESC 0x%02x skipped", c)
	}
}

// escMisc handles ESC commands that are parsed but not drawn.
func (m *machine) escMisc(start int, c byte) {
	switch c {
	case 'R', 'r', 'U', '{', 'V', '=', 'S', 'u', 'v', 'k':
		if c == 'S' {
			return // select standard mode: no argument
		}
		if !m.need(start, 1, fmt.Sprintf("ESC %c", c)) {
			return
		}
		m.pos++
	case 'c':
		if !m.need(start, 2, "ESC c") {
			return
		}
		m.pos += 2
	case 'L':
		m.warn(start, "page mode not emulated")
	case 'T':
		if m.need(start, 1, "ESC T") {
			m.pos++
		}
	case 'W':
		if m.need(start, 8, "ESC W") {
			m.pos += 8
		}
	case '%':
		if m.need(start, 1, "ESC %") {
			m.pos++
		}
	case '?':
		if m.need(start, 1, "ESC ?") {
			m.pos++
		}
	case 'D':
		m.tabs = m.tabs[:0]
		if m.tabs == nil {
			m.tabs = []int{}
		}
		for i := 0; i < 33; i++ {
			if !m.need(start, 1, "ESC D") {
				return
			}
			n := int(m.byteArg())
			if n == 0 {
				return
			}
			if len(m.tabs) == 0 || n > m.tabs[len(m.tabs)-1] {
				m.tabs = append(m.tabs, n)
			}
		}
		m.warn(start, "ESC D without NUL terminator")
	case '&':
		// Define user characters: ESC & y c1 c2 [x d1...d(y*x)]...
		if !m.need(start, 3, "ESC &") {
			return
		}
		y := int(m.byteArg())
		c1, c2 := int(m.byteArg()), int(m.byteArg())
		for i := c1; i <= c2; i++ {
			if !m.need(start, 1, "ESC &") {
				return
			}
			x := int(m.byteArg())
			if !m.need(start, x*y, "ESC &") {
				return
			}
			m.pos += x * y
		}
		m.warn(start, "user-defined characters not emulated")
	case '*':
		m.bitImage(start)
	case '(':
		// ESC ( A / ESC ( Y ...: fn pL pH data
		if !m.need(start, 3, "ESC (") {
			return
		}
		fn := m.byteArg()
		n := int(m.byteArg()) | int(m.byteArg())<<8
		if !m.need(start, n, "ESC ( data") {
			return
		}
		m.pos += n
		m.warn(start, "ESC ( %c not emulated", fn)
	case 'Z':
		// PDF417 on some Star/Citizen models: ESC Z m n k dL dH data
		if !m.need(start, 5, "ESC Z") {
			return
		}
		m.pos += 3
		n := int(m.byteArg()) | int(m.byteArg())<<8
		if m.need(start, n, "ESC Z data") {
			m.pos += n
			m.warn(start, "ESC Z (PDF417) not emulated")
		}
	}
}

// bitImage handles ESC * m nL nH d1...dk, a column-format image inline with text.
func (m *machine) bitImage(start int) {
	if !m.need(start, 3, "ESC *") {
		return
	}
	mode := m.byteArg()
	n := int(m.byteArg()) | int(m.byteArg())<<8
	var rows, sx, sy int
	switch mode {
	case 0:
		rows, sx, sy = 1, 2, 3
	case 1:
		rows, sx, sy = 1, 1, 3
	case 32:
		rows, sx, sy = 3, 2, 1
	case 33:
		rows, sx, sy = 3, 1, 1
	default:
		m.warn(start, "ESC * mode %d unknown", mode)
		return
	}
	if !m.need(start, n*rows, "ESC * data") {
		return
	}
	d := m.data[m.pos : m.pos+n*rows]
	m.pos += n * rows
	if n == 0 {
		return
	}
	bm := newBitmap(n, rows*8)
	for col := range n {
		for r := range rows {
			b := d[col*rows+r]
			for bit := range 8 {
				if b&(0x80>>bit) != 0 {
					bm.pix[(r*8+bit)*n+col] = 1
				}
			}
		}
	}
	it := item{bm: bm, sx: sx, sy: sy}
	if m.pen+it.width() > m.areaWidth && len(m.line) > 0 {
		m.flush(true)
	}
	it.x = m.pen
	m.line = append(m.line, it)
	m.pen += it.width()
}

func underline(n byte) int {
	switch n {
	case 1, '1':
		return 1
	case 2, '2':
		return 2
	}
	return 0
}

// fs handles FS sequences (multibyte character mode).
func (m *machine) fs(start int) {
	if !m.need(start, 1, "FS command") {
		return
	}
	c := m.byteArg()
	switch c {
	case '&':
		m.kanji = true
	case '.':
		m.kanji = false
	case '!':
		if !m.need(start, 1, "FS !") {
			return
		}
		n := m.byteArg()
		m.ksw = 1 + int(n>>2&1)
		m.ksh = 1 + int(n>>3&1)
		m.kul = 0
		if n&0x80 != 0 {
			m.kul = 1
		}
	case '-':
		if !m.need(start, 1, "FS -") {
			return
		}
		m.kul = underline(m.byteArg())
	case 'W':
		if !m.need(start, 1, "FS W") {
			return
		}
		if m.byteArg()&1 != 0 {
			m.ksw, m.ksh = 2, 2
		} else {
			m.ksw, m.ksh = 1, 1
		}
	case 'C', 'p':
		n := 1
		if c == 'p' {
			n = 2
		}
		if !m.need(start, n, fmt.Sprintf("FS %c", c)) {
			return
		}
		m.pos += n
		if c == 'p' {
			m.warn(start, "NV bit image (FS p) not emulated")
		}
	case 'S':
		if m.need(start, 2, "FS S") {
			m.pos += 2
		}
	case '2':
		if m.need(start, 74, "FS 2") {
			m.pos += 74
			m.warn(start, "user-defined Kanji not emulated")
		}
	case '(':
		if !m.need(start, 3, "FS (") {
			return
		}
		fn := m.byteArg()
		n := int(m.byteArg()) | int(m.byteArg())<<8
		if m.need(start, n, "FS ( data") {
			m.pos += n
			if fn != 'A' && fn != 'C' {
				m.warn(start, "FS ( %c not emulated", fn)
			}
		}
	default:
		m.warn(start, "unknown command FS 0x%02x skipped", c)
	}
}

// dle handles the real-time commands: they ask the printer for status or act at once
// and print nothing.
func (m *machine) dle(start int) {
	if !m.need(start, 1, "DLE command") {
		return
	}
	c := m.byteArg()
	switch c {
	case escpos.EOT, 0x05: // DLE EOT n, DLE ENQ n
		if m.need(start, 1, "DLE EOT") {
			m.pos++
		}
	case 0x14: // DLE DC4 fn a b
		if !m.need(start, 1, "DLE DC4") {
			return
		}
		fn := m.byteArg()
		switch fn {
		case 1:
			if m.need(start, 2, "DLE DC4") {
				m.pos += 2
				m.res.DrawerKicks++
			}
		case 2, 7, 8:
			if m.need(start, 2, "DLE DC4") {
				m.pos += 2
			}
		default:
			m.warn(start, "DLE DC4 fn %d unknown", fn)
		}
	default:
		m.warn(start, "unknown command DLE 0x%02x skipped", c)
	}
}
