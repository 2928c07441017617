package printer

import (
	"fmt"
	"sort"

	"github.com/walletless/walletless/printer/escpos"
)

// Cut modes of a profile.
const (
	CutPartial = "partial"
	CutFull    = "full"
	CutNone    = "none"
)

// Profile describes a printer model: what paper it takes and which ESC/POS features
// it really implements. Profiles are chosen by name in config ([LookupProfile]).
type Profile struct {
	Name      string `json:"name"`
	WidthDots int    `json:"width_dots"` // printable dots per line: 576 (80 mm), 384 (58 mm)
	Columns   int    `json:"columns"`    // font A characters per line: 48 or 32
	NativeQR  bool   `json:"native_qr"`  // GS ( k works; otherwise QR codes are sent as raster images
	QRModule  int    `json:"qr_module"`  // QR module size in dots (1-16)
	CodeTable int    `json:"code_table"` // ESC t table for single-byte text (19 = PC858)
	// CJKEncoding is the encoding of the printer's Kanji/Hangul/Chinese mode (FS &):
	// "shift_jis", "euc-kr", "gb18030", "big5", or "" when it has none.
	CJKEncoding string `json:"cjk_encoding"`
	Cut         string `json:"cut"`         // "partial", "full" or "none"
	DrawerKick  bool   `json:"drawer_kick"` // pulse the cash drawer after an approved sale
}

// DefaultProfile is a generic 80 mm Epson-compatible printer (TM-T20/T88 class): 576
// dots, 48 columns, native QR, PC858 code table, partial cut.
func DefaultProfile() Profile {
	return Profile{
		Name: "epson-80", WidthDots: 576, Columns: 48, NativeQR: true, QRModule: 6,
		CodeTable: escpos.CodeTablePC858, Cut: CutPartial,
	}
}

// Profile58 is a generic 58 mm printer (the cheap Xprinter/Goojprt class): 384 dots,
// 32 columns, no native QR (QR codes go as raster images), no cutter.
func Profile58() Profile {
	return Profile{
		Name: "generic-58", WidthDots: 384, Columns: 32, NativeQR: false, QRModule: 5,
		CodeTable: escpos.CodeTablePC858, Cut: CutNone,
	}
}

var profiles = map[string]func() Profile{
	"epson-80":   DefaultProfile,
	"generic-58": Profile58,
	"epson-80-ja": func() Profile {
		p := DefaultProfile()
		p.Name, p.CJKEncoding = "epson-80-ja", escpos.MultibyteShiftJIS
		return p
	},
	"epson-80-ko": func() Profile {
		p := DefaultProfile()
		p.Name, p.CJKEncoding = "epson-80-ko", escpos.MultibyteEUCKR
		return p
	},
	"epson-80-zh": func() Profile {
		p := DefaultProfile()
		p.Name, p.CJKEncoding = "epson-80-zh", escpos.MultibyteGB18030
		return p
	},
	"generic-58-ko": func() Profile {
		p := Profile58()
		p.Name, p.CJKEncoding = "generic-58-ko", escpos.MultibyteEUCKR
		return p
	},
	"generic-58-zh": func() Profile {
		p := Profile58()
		p.Name, p.CJKEncoding = "generic-58-zh", escpos.MultibyteGB18030
		return p
	},
}

// LookupProfile returns the built-in profile of that name.
func LookupProfile(name string) (Profile, bool) {
	f, ok := profiles[name]
	if !ok {
		return Profile{}, false
	}
	return f(), true
}

// ProfileNames lists the built-in profiles, sorted.
func ProfileNames() []string {
	names := make([]string, 0, len(profiles))
	for n := range profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Validate reports the first thing wrong with p.
func (p Profile) Validate() error {
	switch {
	case p.WidthDots < 128 || p.WidthDots > 1024 || p.WidthDots%8 != 0:
		return fmt.Errorf("printer: profile %q: width_dots %d not a multiple of 8 in 128..1024", p.Name, p.WidthDots)
	case p.Columns < 16 || p.Columns*8 > p.WidthDots:
		return fmt.Errorf("printer: profile %q: columns %d do not fit %d dots", p.Name, p.Columns, p.WidthDots)
	case p.QRModule < 1 || p.QRModule > 16:
		return fmt.Errorf("printer: profile %q: qr_module %d not in 1..16", p.Name, p.QRModule)
	case p.CodeTable < 0 || p.CodeTable > 255 || escpos.CodeTableEncoding(byte(p.CodeTable)) == nil:
		return fmt.Errorf("printer: profile %q: code_table %d not supported", p.Name, p.CodeTable)
	case p.CJKEncoding != "" && escpos.MultibyteEncoding(p.CJKEncoding) == nil:
		return fmt.Errorf("printer: profile %q: cjk_encoding %q not supported", p.Name, p.CJKEncoding)
	case p.Cut != CutPartial && p.Cut != CutFull && p.Cut != CutNone:
		return fmt.Errorf("printer: profile %q: cut %q is not partial, full or none", p.Name, p.Cut)
	}
	return nil
}
