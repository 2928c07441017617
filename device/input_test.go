package device

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

func TestKeyReader(t *testing.T) {
	var stream bytes.Buffer
	want := []KeyEvent{{30, KeyPressed}, {30, KeyReleased}, {42, KeyPressed}, {2, KeyRepeated}}
	for _, ev := range want {
		stream.Write(EncodeKeyEvent(ev))
		// a SYN_REPORT and an MSC_SCAN between key events, as real devices send
		other := make([]byte, inputEventSize)
		binary.NativeEndian.PutUint16(other[inputEventSize-8:], 0x04)
		stream.Write(other)
		stream.Write(make([]byte, inputEventSize))
	}
	for _, chunk := range []int{1, 7, inputEventSize, 1000} {
		kr := NewKeyReader(chunkReader{bytes.NewReader(stream.Bytes()), chunk})
		var got []KeyEvent
		buf := make([]KeyEvent, 3)
		for i := 0; i < 1000; i++ {
			n, err := kr.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatal(err)
				}
				break
			}
		}
		if len(got) != len(want) {
			t.Fatalf("chunk %d: got %v, want %v", chunk, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("chunk %d: event %d = %v, want %v", chunk, i, got[i], want[i])
			}
		}
	}
	if runtime.GOARCH == "amd64" && inputEventSize != 24 {
		t.Errorf("input_event is %d bytes on amd64, want 24", inputEventSize)
	}
}

func TestListInputs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("evdev is Linux only")
	}
	dir := t.TempDir()
	old := sysInput
	sysInput = dir
	defer func() { sysInput = old }()
	mk := func(node, name, vid, pid string) {
		d := filepath.Join(dir, node, "device", "id")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, node, "device", "name"), []byte(name+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "vendor"), []byte(vid+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "product"), []byte(pid+"\n"), 0o644)
	}
	mk("event3", "Symbol Bar Code Scanner", "05e0", "1200")
	mk("event0", "Power Button", "0000", "0001")
	os.MkdirAll(filepath.Join(dir, "mouse0"), 0o755)
	got, err := ListInputs()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Path != "/dev/input/event3" || got[1].VID != "05E0" || got[1].Name != "Symbol Bar Code Scanner" {
		t.Fatalf("ListInputs = %+v", got)
	}
	if _, err := OpenInput(filepath.Join(dir, "missing")); err == nil {
		t.Error("OpenInput of a missing file succeeded")
	}
	// A file that is not an input device cannot be grabbed.
	f := filepath.Join(dir, "plain")
	os.WriteFile(f, nil, 0o644)
	if _, err := OpenInput(f); err == nil {
		t.Error("OpenInput grabbed a plain file")
	}
}
