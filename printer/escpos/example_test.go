package escpos_test

import (
	"fmt"

	"github.com/walletless/walletless/printer/escpos"
)

// A receipt-like stream: centered bold title, a line, a QR code and a cut.
func Example() {
	b := escpos.New()
	b.Align(escpos.Center).Bold(true).Text([]byte("Hello")).Bold(false).LF()
	b.QR([]byte("S-1"), 6, escpos.QRLevelM)
	b.Feed(3).Cut(true, 0)
	out, err := b.Bytes()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("% x\n", out[:12])
	fmt.Println(len(out), "bytes")
	// Output:
	// 1b 40 1b 61 01 1b 45 01 48 65 6c 6c
	// 68 bytes
}

// Text goes through the printer's code table; EncodeText does the conversion.
func ExampleEncodeText() {
	p, _ := escpos.EncodeText("Total €5", escpos.CodeTableEncoding(escpos.CodeTablePC858))
	fmt.Printf("% x\n", p)
	// Output: 54 6f 74 61 6c 20 d5 35
}

// Printers without GS ( k get the QR code as a raster image.
func ExampleBuilder_QRRaster() {
	b := new(escpos.Builder).QRRaster([]byte("S-1"), 4, escpos.QRLevelM)
	out, _ := b.Bytes()
	fmt.Printf("% x\n", out[:8])
	// Output: 1d 76 30 00 0f 00 74 00
}
