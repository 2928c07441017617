package device

import "errors"

// ErrNoCamera means a V4L2 camera could not be used: absent, not a capture device,
// or without a pixel format that has a gray plane.
var ErrNoCamera = errors.New("device: camera unavailable")

// CameraFrame is one captured picture's luminance plane. Pix is only valid until the
// next call to Camera.Next (it may be the driver's own buffer).
type CameraFrame struct {
	Pix           []byte
	Width, Height int
	Stride        int
	Sequence      uint32
}
