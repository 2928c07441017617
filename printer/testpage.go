package printer

import (
	"fmt"
	"strings"

	"github.com/walletless/walletless/printer/escpos"
)

// TestPage is the content of a printer self-test page (posctl print-test).
type TestPage struct {
	Title  string      // e.g. "Walletless printer test"
	Fields [][2]string // label, value: version, config version, ports, queue depth...
	QR     string      // payload of the test QR code
}

// EncodeTestPage lays out a self-test page for profile p: the fields, a character
// ruler for the paper width, every text style, a QR code and a Code 128 barcode, so a
// technician sees at a glance what the printer does and does not support.
func EncodeTestPage(tp TestPage, p Profile) ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	w := newWriter(p)
	b := w.b
	b.Align(escpos.Center).Bold(true).Size(1, 2)
	w.line(tp.Title)
	b.Size(1, 1).Bold(false).Align(escpos.Left)
	w.rule()
	for _, f := range tp.Fields {
		w.field(f[0], f[1])
	}
	w.field("Profile", fmt.Sprintf("%s, %d dots, %d columns", p.Name, p.WidthDots, p.Columns))
	qr := "native (GS ( k)"
	if !p.NativeQR {
		qr = "raster (GS v 0)"
	}
	w.field("QR", qr)
	cjk := p.CJKEncoding
	if cjk == "" {
		cjk = "none"
	}
	w.field("CJK", cjk)
	w.rule()
	var ruler strings.Builder
	for i := 1; i <= p.Columns; i++ {
		ruler.WriteByte(byte('0' + i%10))
	}
	w.line(ruler.String())
	w.line("Normal  " + "ABCabc123 €¥£")
	b.Bold(true)
	w.line("Bold")
	b.Bold(false).Underline(escpos.UnderlineThin)
	w.line("Underline")
	b.Underline(escpos.UnderlineOff).Inverse(true)
	w.line(" Inverse ")
	b.Inverse(false).Size(2, 1)
	w.line("Wide")
	b.Size(1, 2)
	w.line("Tall")
	b.Size(2, 2)
	w.line("Big")
	b.Size(1, 1).FontB(true)
	w.line("Font B: the quick brown fox jumps over the lazy dog")
	b.FontB(false)
	if w.multi != nil {
		w.line("CJK: 한국어 日本語 中文")
	}
	b.Align(escpos.Center).LF()
	if tp.QR != "" {
		if p.NativeQR {
			b.QR([]byte(tp.QR), byte(p.QRModule), escpos.QRLevelM)
		} else {
			b.QRRaster([]byte(tp.QR), byte(p.QRModule), escpos.QRLevelM)
		}
		b.LF()
	}
	b.Code128("WALLETLESS", 2, 60).LF()
	b.Align(escpos.Left)
	w.finish(false)
	return b.Bytes()
}
