package device

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"sync"
)

// MJPEG is what most cheap USB (UVC) cameras send at 720p: USB 2 has no bandwidth for
// uncompressed 1280x720 at 30 fps, so YUYV is only offered at small sizes. Each
// frame is a JPEG. Go's image/jpeg decodes it to YCbCr planes, and the luminance
// plane is handed over as is: no conversion to RGB, no copy.
//
// Many UVC cameras leave the Huffman tables out of every frame (the "AVI1" MJPEG
// variant, whose decoders are expected to use the standard tables of the JPEG
// specification, section K.3); such a frame gets the standard tables inserted.

// MJPEGLuma decodes one MJPEG frame and returns its luminance plane. The plane
// belongs to the caller (it is not reused).
func MJPEGLuma(frame []byte) (pix []byte, width, height, stride int, err error) {
	if len(frame) < 4 || frame[0] != 0xff || frame[1] != 0xd8 {
		return nil, 0, 0, 0, fmt.Errorf("device: MJPEG frame of %d bytes does not start with a JPEG marker", len(frame))
	}
	if !hasHuffmanTables(frame) {
		frame = withStandardTables(frame)
	}
	img, err := jpeg.Decode(bytes.NewReader(frame))
	if err != nil {
		return nil, 0, 0, 0, fmt.Errorf("device: MJPEG frame: %w", err)
	}
	switch m := img.(type) {
	case *image.YCbCr:
		b := m.Rect
		return m.Y[m.YOffset(b.Min.X, b.Min.Y):], b.Dx(), b.Dy(), m.YStride, nil
	case *image.Gray:
		b := m.Rect
		return m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], b.Dx(), b.Dy(), m.Stride, nil
	}
	return nil, 0, 0, 0, fmt.Errorf("device: MJPEG frame in %T, not YCbCr or gray", img)
}

// hasHuffmanTables reports whether a DHT segment comes before the first scan.
func hasHuffmanTables(b []byte) bool {
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xff {
			return false // not at a marker: let the decoder report it
		}
		m := b[i+1]
		switch {
		case m == 0xc4:
			return true
		case m == 0xda, m == 0xd9:
			return false
		case m == 0xff: // fill byte
			i++
			continue
		case m == 0x01 || (m >= 0xd0 && m <= 0xd7): // no length
			i += 2
			continue
		}
		i += 2 + int(b[i+2])<<8 | int(b[i+3])
	}
	return false
}

var (
	stdDHTOnce sync.Once
	stdDHT     []byte
)

// standardDHT returns a DHT segment with the four standard tables of section K.3,
// taken from a JPEG that Go's encoder (which always uses those tables) writes.
func standardDHT() []byte {
	stdDHTOnce.Do(func() {
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, image.NewYCbCr(image.Rect(0, 0, 8, 8), image.YCbCrSubsampleRatio420), nil); err != nil {
			return
		}
		b := buf.Bytes()
		for i := 2; i+4 <= len(b) && b[i] == 0xff; {
			n := int(b[i+2])<<8 | int(b[i+3])
			if b[i+1] == 0xc4 {
				stdDHT = append([]byte(nil), b[i:i+2+n]...)
				return
			}
			i += 2 + n
		}
	})
	return stdDHT
}

// withStandardTables returns the frame with the standard DHT segment after SOI.
func withStandardTables(frame []byte) []byte {
	dht := standardDHT()
	out := make([]byte, 0, len(frame)+len(dht))
	out = append(out, frame[:2]...)
	out = append(out, dht...)
	return append(out, frame[2:]...)
}
