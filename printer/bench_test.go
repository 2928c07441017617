package printer

import (
	"testing"

	"github.com/walletless/walletless/printer/emulator"
)

func BenchmarkEncodeReceipt(b *testing.B) {
	r, p := sampleReceipt(), DefaultProfile()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeReceipt(r, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeReceiptRasterQR(b *testing.B) {
	r, p := sampleReceipt(), Profile58()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeReceipt(r, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRender(b *testing.B) {
	data, err := EncodeReceipt(sampleReceipt(), DefaultProfile())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		emulator.Render(data, emulator.Options{})
	}
}
