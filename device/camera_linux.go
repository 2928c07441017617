package device

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file captures frames from a V4L2 camera (/dev/video*) with memory-mapped
// streaming, in pure Go. Only formats with a gray plane are used: GREY, NV12 and YU12
// hand their Y plane over without a copy; YUYV has its Y bytes gathered; MJPEG
// frames are decoded with image/jpeg and their Y plane used (mjpeg.go).
//
// Negotiation: the first of GREY, NV12, YU12, YUYV, MJPG that the driver gives at
// exactly the size asked for; if none does, the first one it gives at all (at the
// size it chooses). So a UVC camera that offers YUYV only at 640x480 and MJPEG at
// 1280x720 streams MJPEG when 720p is asked for, and YUYV at 640x480.

const (
	v4l2BufTypeVideoCapture = 1
	v4l2MemoryMmap          = 1
	v4l2FieldNone           = 1
	v4l2CapVideoCapture     = 0x00000001
	v4l2CapStreaming        = 0x04000000
	v4l2CapDeviceCaps       = 0x80000000
)

func fourcc(s string) uint32 {
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

var cameraFormats = []uint32{fourcc("GREY"), fourcc("NV12"), fourcc("YU12"), fourcc("YUYV"), fourcc("MJPG")}

// mjpegBadFrames is how many undecodable MJPEG frames in a row make Next fail (one
// now and then, from a USB glitch, is skipped).
const mjpegBadFrames = 30

type v4l2Capability struct {
	driver       [16]byte
	card         [32]byte
	busInfo      [32]byte
	version      uint32
	capabilities uint32
	deviceCaps   uint32
	reserved     [3]uint32
}

// v4l2Format is struct v4l2_format: the union is 8-byte aligned on 64-bit kernels.
type v4l2Format struct {
	typ uint32
	_   [unsafe.Sizeof(uintptr(0)) - 4]byte
	fmt [200]byte // starts with struct v4l2_pix_format (12 x u32)
}

type v4l2RequestBuffers struct {
	count        uint32
	typ          uint32
	memory       uint32
	capabilities uint32
	flags        uint8
	reserved     [3]uint8
}

type v4l2Buffer struct {
	index     uint32
	typ       uint32
	bytesused uint32
	flags     uint32
	field     uint32
	timestamp [2]uintptr // struct timeval of two longs
	timecode  [16]byte
	sequence  uint32
	memory    uint32
	m         uintptr // union: offset for MMAP
	length    uint32
	reserved2 uint32
	requestFD uint32
}

func vioc(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | 'V'<<8 | nr }

var (
	vidiocQuerycap  = vioc(iocRead, 0, unsafe.Sizeof(v4l2Capability{}))
	vidiocSFmt      = vioc(iocRead|iocWrite, 5, unsafe.Sizeof(v4l2Format{}))
	vidiocReqbufs   = vioc(iocRead|iocWrite, 8, unsafe.Sizeof(v4l2RequestBuffers{}))
	vidiocQuerybuf  = vioc(iocRead|iocWrite, 9, unsafe.Sizeof(v4l2Buffer{}))
	vidiocQbuf      = vioc(iocRead|iocWrite, 15, unsafe.Sizeof(v4l2Buffer{}))
	vidiocDqbuf     = vioc(iocRead|iocWrite, 17, unsafe.Sizeof(v4l2Buffer{}))
	vidiocStreamon  = vioc(iocWrite, 18, 4)
	vidiocStreamoff = vioc(iocWrite, 19, 4)
)

// Camera is an open V4L2 capture device. It is not safe for concurrent use; Close it
// after the goroutine calling Next has returned (Next returns within 100 ms of its
// context ending).
type Camera struct {
	path          string
	fd            int
	format        uint32
	width, height int
	stride        int
	bufs          [][]byte
	held          int // index of the buffer handed out by Next, -1 if none
	gray          []byte
	bad           int // undecodable MJPEG frames in a row
}

// OpenCamera opens a V4L2 camera and starts streaming at about width x height (the
// driver may choose another size; see Size).
func OpenCamera(path string, width, height int) (*Camera, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: opening %s: %w", ErrNoCamera, path, err)
	}
	c := &Camera{path: path, fd: fd, held: -1}
	if err := c.setup(width, height); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Camera) setup(width, height int) error {
	var capb v4l2Capability
	if err := ioctl(c.fd, vidiocQuerycap, unsafe.Pointer(&capb)); err != nil {
		return fmt.Errorf("%w: %s is not a V4L2 device: %w", ErrNoCamera, c.path, err)
	}
	caps := capb.capabilities
	if caps&v4l2CapDeviceCaps != 0 {
		caps = capb.deviceCaps
	}
	if caps&v4l2CapVideoCapture == 0 || caps&v4l2CapStreaming == 0 {
		return fmt.Errorf("%w: %s cannot stream video capture", ErrNoCamera, c.path)
	}
	type offer struct {
		pf                   uint32
		width, height, strid int
	}
	try := func(pf uint32, width, height int) (offer, bool) {
		var f v4l2Format
		f.typ = v4l2BufTypeVideoCapture
		binary.NativeEndian.PutUint32(f.fmt[0:], uint32(width))
		binary.NativeEndian.PutUint32(f.fmt[4:], uint32(height))
		binary.NativeEndian.PutUint32(f.fmt[8:], pf)
		binary.NativeEndian.PutUint32(f.fmt[12:], v4l2FieldNone)
		if ioctl(c.fd, vidiocSFmt, unsafe.Pointer(&f)) != nil || binary.NativeEndian.Uint32(f.fmt[8:]) != pf {
			return offer{}, false
		}
		o := offer{pf: pf, width: int(binary.NativeEndian.Uint32(f.fmt[0:])), height: int(binary.NativeEndian.Uint32(f.fmt[4:])),
			strid: int(binary.NativeEndian.Uint32(f.fmt[16:]))}
		return o, true
	}
	var chosen, fallback *offer
	var last uint32
	for _, pf := range cameraFormats {
		o, ok := try(pf, width, height)
		if !ok {
			continue
		}
		last = pf
		if o.width == width && o.height == height {
			chosen = &o
			break
		}
		if fallback == nil {
			fallback = &o
		}
	}
	if chosen == nil && fallback != nil {
		chosen = fallback
		if last != chosen.pf { // the driver holds the last format tried: set it again
			o, ok := try(chosen.pf, chosen.width, chosen.height)
			if !ok {
				return fmt.Errorf("%w: %s: format %s no longer accepted", ErrNoCamera, c.path, fourccString(chosen.pf))
			}
			chosen = &o
		}
	}
	if chosen == nil {
		return fmt.Errorf("%w: %s offers none of GREY, NV12, YU12, YUYV, MJPG", ErrNoCamera, c.path)
	}
	c.format, c.width, c.height, c.stride = chosen.pf, chosen.width, chosen.height, chosen.strid
	if c.stride == 0 || c.format == fourcc("MJPG") {
		c.stride = c.width
		if c.format == fourcc("YUYV") {
			c.stride = 2 * c.width
		}
	}
	req := v4l2RequestBuffers{count: 4, typ: v4l2BufTypeVideoCapture, memory: v4l2MemoryMmap}
	if err := ioctl(c.fd, vidiocReqbufs, unsafe.Pointer(&req)); err != nil {
		return fmt.Errorf("%w: %s: requesting buffers: %w", ErrNoCamera, c.path, err)
	}
	if req.count < 2 {
		return fmt.Errorf("%w: %s: only %d buffers", ErrNoCamera, c.path, req.count)
	}
	for i := uint32(0); i < req.count; i++ {
		b := v4l2Buffer{index: i, typ: v4l2BufTypeVideoCapture, memory: v4l2MemoryMmap}
		if err := ioctl(c.fd, vidiocQuerybuf, unsafe.Pointer(&b)); err != nil {
			return fmt.Errorf("%w: %s: buffer %d: %w", ErrNoCamera, c.path, i, err)
		}
		mem, err := unix.Mmap(c.fd, int64(uint32(b.m)), int(b.length), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return fmt.Errorf("%w: %s: mapping buffer %d: %w", ErrNoCamera, c.path, i, err)
		}
		c.bufs = append(c.bufs, mem)
		if err := c.queue(int(i)); err != nil {
			return err
		}
	}
	typ := uint32(v4l2BufTypeVideoCapture)
	if err := ioctl(c.fd, vidiocStreamon, unsafe.Pointer(&typ)); err != nil {
		return fmt.Errorf("%w: %s: starting the stream: %w", ErrNoCamera, c.path, err)
	}
	return nil
}

func (c *Camera) queue(i int) error {
	b := v4l2Buffer{index: uint32(i), typ: v4l2BufTypeVideoCapture, memory: v4l2MemoryMmap}
	if err := ioctl(c.fd, vidiocQbuf, unsafe.Pointer(&b)); err != nil {
		return fmt.Errorf("device: %s: queueing buffer %d: %w", c.path, i, err)
	}
	return nil
}

// Format returns the pixel format streamed, as a FourCC ("YUYV", "MJPG", ...).
func (c *Camera) Format() string { return fourccString(c.format) }

func fourccString(f uint32) string {
	return string([]byte{byte(f), byte(f >> 8), byte(f >> 16), byte(f >> 24)})
}

// Size returns the frame size the driver chose.
func (c *Camera) Size() (width, height int) { return c.width, c.height }

// Next waits for the next frame or until ctx is done.
func (c *Camera) Next(ctx context.Context) (CameraFrame, error) {
	if c.held >= 0 {
		i := c.held
		c.held = -1
		if err := c.queue(i); err != nil {
			return CameraFrame{}, err
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return CameraFrame{}, err
		}
		fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return CameraFrame{}, fmt.Errorf("device: %s: waiting for a frame: %w", c.path, err)
		}
		if n == 0 {
			continue
		}
		if fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			return CameraFrame{}, fmt.Errorf("device: %s: camera gone", c.path)
		}
		b := v4l2Buffer{typ: v4l2BufTypeVideoCapture, memory: v4l2MemoryMmap}
		if err := ioctl(c.fd, vidiocDqbuf, unsafe.Pointer(&b)); err != nil {
			if errors.Is(err, unix.EAGAIN) {
				continue
			}
			return CameraFrame{}, fmt.Errorf("device: %s: taking a frame: %w", c.path, err)
		}
		mem := c.bufs[b.index]
		f := CameraFrame{Width: c.width, Height: c.height, Stride: c.stride, Sequence: b.sequence}
		if c.format == fourcc("MJPG") {
			used := min(int(b.bytesused), len(mem))
			pix, w, h, stride, err := MJPEGLuma(mem[:used])
			if qerr := c.queue(int(b.index)); qerr != nil {
				return CameraFrame{}, qerr
			}
			if err == nil && (w != c.width || h != c.height) {
				err = fmt.Errorf("device: %s: MJPEG frame of %dx%d in a %dx%d stream", c.path, w, h, c.width, c.height)
			}
			if err != nil {
				c.bad++
				if c.bad >= mjpegBadFrames {
					c.bad = 0
					return CameraFrame{}, fmt.Errorf("device: %s: %d bad MJPEG frames in a row, the last: %w", c.path, mjpegBadFrames, err)
				}
				continue
			}
			c.bad = 0
			f.Pix, f.Stride = pix, stride
			return f, nil
		}
		if c.format == fourcc("YUYV") {
			if cap(c.gray) < c.width*c.height {
				c.gray = make([]byte, c.width*c.height)
			}
			g := c.gray[:c.width*c.height]
			for y := 0; y < c.height; y++ {
				row := mem[y*c.stride:]
				out := g[y*c.width : (y+1)*c.width]
				for x := range out {
					out[x] = row[2*x]
				}
			}
			f.Pix, f.Stride = g, c.width
			if err := c.queue(int(b.index)); err != nil {
				return CameraFrame{}, err
			}
			return f, nil
		}
		need := (c.height-1)*c.stride + c.width
		if len(mem) < need {
			c.queue(int(b.index))
			return CameraFrame{}, fmt.Errorf("device: %s: buffer of %d bytes for %dx%d", c.path, len(mem), c.width, c.height)
		}
		f.Pix = mem[:need]
		c.held = int(b.index)
		return f, nil
	}
}

// Close stops streaming and releases the camera.
func (c *Camera) Close() error {
	if c.fd < 0 {
		return nil
	}
	typ := uint32(v4l2BufTypeVideoCapture)
	_ = ioctl(c.fd, vidiocStreamoff, unsafe.Pointer(&typ))
	for _, m := range c.bufs {
		unix.Munmap(m)
	}
	c.bufs = nil
	err := unix.Close(c.fd)
	c.fd = -1
	if err != nil {
		return fmt.Errorf("device: closing %s: %w", c.path, err)
	}
	return nil
}

// Compile-time checks of the V4L2 struct sizes: 64-bit and 32-bit layouts.
const wordSize = unsafe.Sizeof(uintptr(0))

var (
	_ [104 - unsafe.Sizeof(v4l2Capability{})]struct{}
	_ [unsafe.Sizeof(v4l2Capability{}) - 104]struct{}
	_ [200 + wordSize - unsafe.Sizeof(v4l2Format{})]struct{}
	_ [unsafe.Sizeof(v4l2Format{}) - 200 - wordSize]struct{}
	_ [20 - unsafe.Sizeof(v4l2RequestBuffers{})]struct{}
	_ [unsafe.Sizeof(v4l2RequestBuffers{}) - 20]struct{}
	_ [48 + 5*wordSize - unsafe.Sizeof(v4l2Buffer{})]struct{} // 88 on 64-bit, 68 on 32-bit
	_ [unsafe.Sizeof(v4l2Buffer{}) - 48 - 5*wordSize]struct{}
)
