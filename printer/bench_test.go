package printer

import (
	"context"
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

// notifyPrinter signals each Print on a channel.
type notifyPrinter chan struct{}

func (n notifyPrinter) Print(ctx context.Context, name string, data []byte) error {
	n <- struct{}{}
	return nil
}
func (n notifyPrinter) Close() error { return nil }

// BenchmarkQueueLatency is the time from Submit to the transport's Print call: the
// "first bytes within a millisecond of the sale's result" budget.
func BenchmarkQueueLatency(b *testing.B) {
	n := make(notifyPrinter)
	q := NewQueue(n, QueueOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	data, _ := EncodeReceipt(sampleReceipt(), DefaultProfile())
	for b.Loop() {
		if err := q.Submit("S1", data); err != nil {
			b.Fatal(err)
		}
		<-n
	}
	cancel()
	<-done
}
