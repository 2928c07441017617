package scanner

import (
	"fmt"
	"unicode/utf8"

	"github.com/walletless/walletless/device"
)

// Keymap is the keyboard layout a keyboard-wedge scanner is set to emulate. Linux key
// codes are key positions; the keymap turns them into characters the way that layout
// would, without asking the system's keyboard layout, so a terminal configured for any
// layout reads the same codes.
type Keymap string

// Keymaps.
const (
	KeymapUS Keymap = "us" // QWERTY (US), the default of most scanners
	KeymapDE Keymap = "de" // QWERTZ (German)
	KeymapFR Keymap = "fr" // AZERTY (French)
)

// Linux key codes used below.
const (
	keyEsc        = 1
	keyTab        = 15
	keyEnter      = 28
	keyLeftCtrl   = 29
	keyLeftShift  = 42
	keyRightShift = 54
	keyLeftAlt    = 56
	keySpace      = 57
	keyCapsLock   = 58
	keyKPEnter    = 96
	keyRightCtrl  = 97
	keyRightAlt   = 100 // AltGr
)

// keyChars is what one key gives: plain, with Shift, with AltGr. 0 means nothing.
type keyChars [3]rune

// row assigns the runes of plain, shift and altgr (strings of equal length in runes;
// ' ' in altgr means none) to consecutive key codes from first.
func row(m map[uint16]keyChars, first uint16, plain, shift, altgr string) {
	p, s, a := []rune(plain), []rune(shift), []rune(altgr)
	if len(s) != len(p) || len(a) > len(p) {
		panic(fmt.Sprintf("scanner: keymap row at %d: %d plain, %d shift, %d altgr keys", first, len(p), len(s), len(a)))
	}
	for i := range p {
		kc := keyChars{p[i], s[i], 0}
		if i < len(a) && a[i] != ' ' {
			kc[2] = a[i]
		}
		m[first+uint16(i)] = kc
	}
}

// keypad keys give the same characters in every layout (NumLock assumed on, as
// scanners expect).
func keypad(m map[uint16]keyChars) {
	for code, r := range map[uint16]rune{
		71: '7', 72: '8', 73: '9', 74: '-', 75: '4', 76: '5', 77: '6', 78: '+',
		79: '1', 80: '2', 81: '3', 82: '0', 83: '.', 55: '*', 98: '/',
	} {
		m[code] = keyChars{r, r, 0}
	}
	m[keySpace] = keyChars{' ', ' ', 0}
}

type layout struct {
	keys map[uint16]keyChars
	dead map[deadKey]bool // dead keys: they combine with the next key
}

// deadKey is a key at a level (0 plain, 1 shift, 2 AltGr).
type deadKey struct {
	code  uint16
	level int
}

var layouts = map[Keymap]layout{
	KeymapUS: func() layout {
		m := map[uint16]keyChars{}
		row(m, 2, "1234567890-=", "!@#$%^&*()_+", "")
		row(m, 16, "qwertyuiop[]", "QWERTYUIOP{}", "")
		row(m, 30, "asdfghjkl;'`", "ASDFGHJKL:\"~", "")
		row(m, 43, "\\zxcvbnm,./", "|ZXCVBNM<>?", "")
		row(m, 86, "\\", "|", "")
		keypad(m)
		return layout{keys: m}
	}(),
	KeymapDE: func() layout {
		m := map[uint16]keyChars{}
		row(m, 2, "1234567890ß´", "!\"§$%&/()=?`", " ²³   {[]}\\ ")
		row(m, 16, "qwertzuiopü+", "QWERTZUIOPÜ*", "@ €        ~")
		row(m, 30, "asdfghjklöä^", "ASDFGHJKLÖÄ°", "")
		row(m, 43, "#yxcvbnm,.-", "'YXCVBNM;:_", "       µ   ")
		row(m, 86, "<", ">", "|")
		keypad(m)
		return layout{keys: m, dead: map[deadKey]bool{{13, 0}: true, {13, 1}: true, {41, 0}: true}}
	}(),
	KeymapFR: func() layout {
		m := map[uint16]keyChars{}
		row(m, 2, "&é\"'(-è_çà)=", "1234567890°+", " ~#{[|`\\^@]}")
		row(m, 16, "azertyuiop^$", "AZERTYUIOP¨£", "  €        ¤")
		row(m, 30, "qsdfghjklmù²", "QSDFGHJKLM%³", "")
		row(m, 43, "*wxcvbn,;:!", "µWXCVBN?./§", "")
		row(m, 86, "<", ">", "")
		keypad(m)
		return layout{keys: m, dead: map[deadKey]bool{{26, 0}: true, {26, 1}: true, {3, 2}: true, {8, 2}: true}}
	}(),
}

// ParseKeymap checks a keymap name; "" is KeymapUS.
func ParseKeymap(s string) (Keymap, error) {
	if s == "" {
		return KeymapUS, nil
	}
	if _, ok := layouts[Keymap(s)]; !ok {
		return "", fmt.Errorf("scanner: unknown keymap %q (want us, de or fr)", s)
	}
	return Keymap(s), nil
}

// keyDecoder turns key events into text: UTF-8 bytes, with CR for Enter and Tab.
// It also understands Alt + keypad digits (the "ALT mode" of scanners that type any
// character as its decimal code).
type keyDecoder struct {
	l            layout
	shift, altgr int  // keys held
	alt          bool // left Alt held
	altCode      int  // decimal code typed with Alt held; -1 when none
	dead         rune // pending dead key
}

func newKeyDecoder(k Keymap) *keyDecoder {
	l, ok := layouts[k]
	if !ok {
		l = layouts[KeymapUS]
	}
	return &keyDecoder{l: l, altCode: -1}
}

var kpDigits = map[uint16]int{82: 0, 79: 1, 80: 2, 81: 3, 75: 4, 76: 5, 77: 6, 71: 7, 72: 8, 73: 9}

// feed appends the text of evs to out.
func (d *keyDecoder) feed(evs []device.KeyEvent, out []byte) []byte {
	for _, ev := range evs {
		switch ev.Code {
		case keyLeftShift, keyRightShift:
			d.shift = held(d.shift, ev.Value)
			continue
		case keyRightAlt:
			d.altgr = held(d.altgr, ev.Value)
			continue
		case keyLeftAlt:
			if ev.Value == device.KeyPressed {
				d.alt, d.altCode = true, -1
			} else if ev.Value == device.KeyReleased {
				d.alt = false
				if d.altCode >= 0 {
					out = utf8.AppendRune(out, altRune(d.altCode))
				}
				d.altCode = -1
			}
			continue
		case keyLeftCtrl, keyRightCtrl, keyCapsLock, keyEsc:
			continue
		}
		if ev.Value != device.KeyPressed {
			continue // releases, and auto-repeat of a key held down
		}
		if d.alt {
			if v, ok := kpDigits[ev.Code]; ok {
				d.altCode = (max(d.altCode, 0)*10 + v) % 100000
			}
			continue
		}
		if ev.Code == keyEnter || ev.Code == keyKPEnter || ev.Code == keyTab {
			out = d.flushDead(out)
			out = append(out, '\r')
			continue
		}
		kc, ok := d.l.keys[ev.Code]
		if !ok {
			continue
		}
		level := 0
		switch {
		case d.altgr > 0:
			level = 2
		case d.shift > 0:
			level = 1
		}
		r := kc[level]
		if r == 0 {
			continue
		}
		if d.dead != 0 {
			dead := d.dead
			d.dead = 0
			out = utf8.AppendRune(out, dead)
			if r == ' ' {
				continue // dead key + space types the accent itself
			}
		}
		if d.l.dead[deadKey{ev.Code, level}] {
			d.dead = r
			continue
		}
		out = utf8.AppendRune(out, r)
	}
	return out
}

func (d *keyDecoder) flushDead(out []byte) []byte {
	if d.dead != 0 {
		out = utf8.AppendRune(out, d.dead)
		d.dead = 0
	}
	return out
}

func held(n int, v int32) int {
	switch v {
	case device.KeyPressed:
		return min(n+1, 2)
	case device.KeyReleased:
		return max(n-1, 0)
	}
	return n
}

// altRune maps an Alt+keypad decimal code to a character: codes below 256 are
// Latin-1 (as scanners in ALT mode use them), larger ones Unicode code points.
func altRune(code int) rune {
	if code <= 0 || code > utf8.MaxRune {
		return utf8.RuneError
	}
	return rune(code)
}
