package paycode

import (
	"encoding/base64"
	"testing"
)

// bench150 is a 150-character dynamic PromptPay-style merchant code.
var bench150 = func() string {
	s, err := Build(MPM{PayloadFormat: "01", PointOfInitiation: PointDynamic,
		MerchantAccounts: []MerchantAccount{{ID: "30", GUI: "A000000677010112",
			Fields: []Field{{"01", "010753600031508"}, {"02", "INV20261122"}}}},
		MCC: "5812", Currency: "764", Amount: "1250.75", Country: "TH", MerchantName: "SOMTAM BKK",
		MerchantCity: "BANGKOK", Additional: []Field{{AddTerminalLabel, "POS-0001"}}})
	if err != nil {
		panic(err)
	}
	return s
}()

func BenchmarkIdentifyMPM150(b *testing.B) {
	if n := len([]rune(bench150)); n < 140 || n > 160 {
		b.Fatalf("sample is %d characters", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Identify(bench150); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMPM150(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Decode(bench150); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIdentifyWallet(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Identify("281234567890123456"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIdentifyCPM(b *testing.B) {
	code := base64.StdEncoding.EncodeToString(cpmSample())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Identify(code); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildMPM(b *testing.B) {
	m, _, err := Decode(bench150)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMask(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = Mask("281234567890123456")
	}
}
