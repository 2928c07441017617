package scanner

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/walletless/walletless/device"
)

// press and release build key events.
func tap(code uint16) []device.KeyEvent {
	return []device.KeyEvent{{Code: code, Value: device.KeyPressed}, {Code: code, Value: device.KeyReleased}}
}

func with(mod uint16, evs []device.KeyEvent) []device.KeyEvent {
	out := []device.KeyEvent{{Code: mod, Value: device.KeyPressed}}
	out = append(out, evs...)
	return append(out, device.KeyEvent{Code: mod, Value: device.KeyReleased})
}

// typeAs returns the key events a scanner set to keymap k sends for s, found by
// searching the layout table (plain, then Shift, then AltGr).
func typeAs(t *testing.T, k Keymap, s string) []device.KeyEvent {
	t.Helper()
	var evs []device.KeyEvent
	l := layouts[k]
	for _, r := range s {
		if r == '\r' {
			evs = append(evs, tap(keyEnter)...)
			continue
		}
		found := false
		for level := 0; level < 3 && !found; level++ {
			for code, kc := range l.keys {
				if kc[level] != r || code >= 71 && code <= 83 || code == 55 || code == 98 {
					continue // prefer the main keys to the keypad
				}
				ev := tap(code)
				switch level {
				case 1:
					ev = with(keyLeftShift, ev)
				case 2:
					ev = with(keyRightAlt, ev)
				}
				evs = append(evs, ev...)
				if l.dead[deadKey{code, level}] {
					evs = append(evs, tap(keySpace)...)
				}
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("%s layout cannot type %q", k, r)
		}
	}
	return evs
}

func TestKeymapsKnownPositions(t *testing.T) {
	// Facts about the layouts, written as the key positions a scanner sends.
	const (
		kQ, kW, kY, kA, kZ, kM, k1, k2, kSemicolon = 16, 17, 21, 30, 44, 50, 2, 3, 39
	)
	tests := []struct {
		k    Keymap
		evs  []device.KeyEvent
		want string
	}{
		{KeymapUS, concat(tap(kQ), tap(kY), tap(kA), tap(kZ), tap(k1), with(keyLeftShift, tap(k2))), "qyaz1@"},
		{KeymapDE, concat(tap(kQ), tap(kY), tap(kA), tap(kZ), tap(k1), with(keyRightAlt, tap(kQ))), "qzay1@"},
		{KeymapFR, concat(tap(kQ), tap(kW), tap(kA), tap(kZ), tap(kSemicolon), with(keyLeftShift, tap(k1)), tap(k1), with(keyRightAlt, tap(11))), "azqwm1&@"},
		{KeymapDE, concat(with(keyRightAlt, concat(tap(27), tap(12), tap(8), tap(11), tap(50))), with(keyLeftShift, tap(53))), "~\\{}µ_"},
		{KeymapFR, concat(with(keyRightAlt, concat(tap(27), tap(18), tap(4), tap(9))), with(keyLeftShift, concat(tap(51), tap(52), tap(53)))), "¤€#\\./§"},
		// AZERTY digits need Shift: without it a "12" scanner types "&é".
		{KeymapFR, concat(tap(k1), tap(k2)), "&é"},
		{KeymapUS, concat(tap(kM), tap(keyEnter), tap(82), tap(83), tap(keyKPEnter)), "m\r0.\r"},
		// Alt + keypad digits: 5 0 = '2', 1 9 6 = 'Ä' (Latin-1).
		{KeymapFR, concat(with(keyLeftAlt, concat(tap(76), tap(82))), with(keyLeftAlt, concat(tap(79), tap(73), tap(77)))), "2Ä"},
		// Dead circumflex + space types '^'.
		{KeymapFR, concat(tap(26), tap(keySpace), tap(kQ)), "^a"},
		// Auto-repeat and modifiers alone type nothing.
		{KeymapUS, []device.KeyEvent{{Code: kQ, Value: device.KeyPressed}, {Code: kQ, Value: device.KeyRepeated}, {Code: kQ, Value: device.KeyReleased}, {Code: keyCapsLock, Value: device.KeyPressed}}, "q"},
	}
	for _, tt := range tests {
		got := string(newKeyDecoder(tt.k).feed(tt.evs, nil))
		if got != tt.want {
			t.Errorf("%s: typed %q, want %q", tt.k, got, tt.want)
		}
	}
}

func concat(parts ...[]device.KeyEvent) []device.KeyEvent {
	var out []device.KeyEvent
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestKeymapsRoundTrip types payment codes as scanners set to each layout would and
// reads them back with the same keymap: the system's own layout plays no part.
func TestKeymapsRoundTrip(t *testing.T) {
	codes := []string{
		"286512345678901234",
		"hQVDUFYwMQ==+/AZaz09",
		"00020101021229300012D156000000000510A93FO3230Q3128-./:*$%",
	}
	for _, k := range []Keymap{KeymapUS, KeymapDE, KeymapFR} {
		for _, c := range codes {
			evs := typeAs(t, k, c+"\r")
			if got := string(newKeyDecoder(k).feed(evs, nil)); got != c+"\r" {
				t.Errorf("%s: %q read back as %q", k, c, got)
			}
		}
	}
	// The same key presses read with the wrong keymap garble digits: that is what the
	// keymap setting is for.
	evs := typeAs(t, KeymapFR, "12")
	if got := string(newKeyDecoder(KeymapUS).feed(evs, nil)); got == "12" {
		t.Error("AZERTY key presses read as US gave the same text; the test is not testing anything")
	}
	if _, err := ParseKeymap("dvorak"); err == nil {
		t.Error("unknown keymap accepted")
	}
}

// TestRunInput reads a keyboard-wedge scanner through the evdev record format from a
// pipe standing in for /dev/input/event*, with unplug and replug.
func TestRunInput(t *testing.T) {
	type dev struct{ r, w *os.File }
	devs := make(chan dev, 4)
	newDev := func() dev {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		return dev{r, w}
	}
	d1 := newDev()
	devs <- d1
	opened := make(chan string, 4)
	cfg := fastRetry(Config{
		Source: "input:usb:05e0:1200",
		Keymap: KeymapDE,
		ListInputs: func() ([]device.InputInfo, error) {
			return []device.InputInfo{{Path: "/dev/input/event7", Name: "Symbol Scanner", VID: "05E0", PID: "1200"}}, nil
		},
		OpenInput: func(path string) (io.ReadCloser, error) {
			select {
			case d := <-devs:
				opened <- path
				return d.r, nil
			default:
				return nil, os.ErrNotExist
			}
		},
	})
	r := start(t, cfg, nil)
	if p := <-opened; p != "/dev/input/event7" {
		t.Fatalf("opened %s", p)
	}
	send := func(w *os.File, evs []device.KeyEvent) {
		var b bytes.Buffer
		for _, ev := range evs {
			b.Write(device.EncodeKeyEvent(ev))
		}
		if _, err := w.Write(b.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	send(d1.w, typeAs(t, KeymapDE, "]Q1286512345678901234\r"))
	if s := r.next(); s.Text != "286512345678901234" || s.Symbology != "qr" {
		t.Fatalf("scan %q/%q", s.Text, s.Symbology)
	}
	// unplug: the device file ends; a new one appears
	d1.w.Close()
	d2 := newDev()
	devs <- d2
	<-opened
	send(d2.w, typeAs(t, KeymapDE, "Zy-42\r"))
	if s := r.next(); s.Text != "Zy-42" {
		t.Fatalf("scan after replug %q", s.Text)
	}
	if n := strings.Count(r.log.String(), "scanner disconnected"); n != 1 {
		t.Errorf("unplug logged %d times:\n%s", n, r.log.String())
	}
}

// FuzzKeyEvents feeds arbitrary input_event streams (as a hostile or broken HID
// device might send) through the key reader and decoder: no panic, valid UTF-8 out.
func FuzzKeyEvents(f *testing.F) {
	var seed bytes.Buffer
	for _, ev := range typeAsSeed() {
		seed.Write(device.EncodeKeyEvent(ev))
	}
	f.Add(seed.Bytes(), uint8(0))
	f.Add([]byte{1, 2, 3}, uint8(1))
	f.Add(bytes.Repeat(device.EncodeKeyEvent(device.KeyEvent{Code: keyLeftAlt, Value: 1}), 3), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, km uint8) {
		k := []Keymap{KeymapUS, KeymapDE, KeymapFR}[int(km)%3]
		kr := device.NewKeyReader(bytes.NewReader(data))
		dec := newKeyDecoder(k)
		evs := make([]device.KeyEvent, 8)
		var out []byte
		for i := 0; i < 10000; i++ {
			n, err := kr.Read(evs)
			out = dec.feed(evs[:n], out)
			if err != nil {
				break
			}
		}
		if !utf8.Valid(out) {
			t.Fatalf("decoder produced invalid UTF-8 %q", out)
		}
	})
}

func typeAsSeed() []device.KeyEvent {
	return concat(tap(2), with(keyLeftShift, tap(30)), tap(keyEnter), with(keyLeftAlt, concat(tap(79), tap(82))))
}
