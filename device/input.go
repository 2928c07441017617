package device

import (
	"encoding/binary"
	"fmt"
	"io"
	"unsafe"
)

// KeyEvent is one key press, release or auto-repeat from a Linux input device.
type KeyEvent struct {
	Code  uint16 // Linux key code (KEY_A = 30, ...): a key position, not a character
	Value int32  // 0 released, 1 pressed, 2 auto-repeat
}

// Linux input event types and the key states.
const (
	evKey = 0x01

	KeyReleased = 0
	KeyPressed  = 1
	KeyRepeated = 2
)

// inputEventSize is sizeof(struct input_event): a timeval of two longs, then type,
// code and value. It is 24 bytes on 64-bit and 16 bytes on 32-bit Linux.
const inputEventSize = 2*int(unsafe.Sizeof(uintptr(0))) + 8

// KeyReader decodes the key events of a Linux input device stream, skipping the other
// event types (sync, misc scan codes, LEDs).
type KeyReader struct {
	r   io.Reader
	buf []byte
	n   int // bytes buffered
}

// NewKeyReader reads input_event records from r (an opened /dev/input/event* file).
func NewKeyReader(r io.Reader) *KeyReader {
	return &KeyReader{r: r, buf: make([]byte, 64*inputEventSize)}
}

// Read returns key events: those already buffered, else those of the next read from
// the device. It returns the reader's error (io.EOF, a closed file, a deadline) once
// nothing is buffered; an error is not sticky.
func (k *KeyReader) Read(events []KeyEvent) (int, error) {
	var rerr error
	for {
		out, off := 0, 0
		for ; off+inputEventSize <= k.n && out < len(events); off += inputEventSize {
			rec := k.buf[off : off+inputEventSize]
			base := inputEventSize - 8
			if binary.NativeEndian.Uint16(rec[base:]) != evKey {
				continue
			}
			events[out] = KeyEvent{
				Code:  binary.NativeEndian.Uint16(rec[base+2:]),
				Value: int32(binary.NativeEndian.Uint32(rec[base+4:])),
			}
			out++
		}
		// Keep what is left, including a partial record (from a reader that splits
		// records; devices never do).
		k.n = copy(k.buf, k.buf[off:k.n])
		if out > 0 {
			return out, nil
		}
		if rerr != nil {
			return 0, fmt.Errorf("device: reading input events: %w", rerr)
		}
		n, err := k.r.Read(k.buf[k.n:])
		k.n += n
		if err != nil {
			rerr = err
			continue
		}
		if n == 0 {
			return 0, nil
		}
	}
}

// EncodeKeyEvent writes the input_event record of a key event (with a zero
// timestamp), for tests and replayed captures.
func EncodeKeyEvent(ev KeyEvent) []byte {
	rec := make([]byte, inputEventSize)
	base := inputEventSize - 8
	binary.NativeEndian.PutUint16(rec[base:], evKey)
	binary.NativeEndian.PutUint16(rec[base+2:], ev.Code)
	binary.NativeEndian.PutUint32(rec[base+4:], uint32(ev.Value))
	return rec
}

// InputInfo describes one input device.
type InputInfo struct {
	Path string `json:"path"` // /dev/input/eventN
	Name string `json:"name"`
	VID  string `json:"vid,omitempty"`
	PID  string `json:"pid,omitempty"`
	Phys string `json:"phys,omitempty"`
}
