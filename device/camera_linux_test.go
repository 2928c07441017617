package device

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestV4L2IoctlNumbers checks the request numbers against linux/videodev2.h as
// compiled for 64-bit kernels.
func TestV4L2IoctlNumbers(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("values below are the 64-bit ones")
	}
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"VIDIOC_QUERYCAP", vidiocQuerycap, 0x80685600},
		{"VIDIOC_S_FMT", vidiocSFmt, 0xc0d05605},
		{"VIDIOC_REQBUFS", vidiocReqbufs, 0xc0145608},
		{"VIDIOC_QUERYBUF", vidiocQuerybuf, 0xc0585609},
		{"VIDIOC_QBUF", vidiocQbuf, 0xc058560f},
		{"VIDIOC_DQBUF", vidiocDqbuf, 0xc0585611},
		{"VIDIOC_STREAMON", vidiocStreamon, 0x40045612},
		{"VIDIOC_STREAMOFF", vidiocStreamoff, 0x40045613},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	if fourcc("YUYV") != 0x56595559 {
		t.Errorf("fourcc YUYV = %#x", fourcc("YUYV"))
	}
}

func TestOpenCameraNotACamera(t *testing.T) {
	if _, err := OpenCamera(filepath.Join(t.TempDir(), "video9"), 640, 480); !errors.Is(err, ErrNoCamera) {
		t.Errorf("missing device: %v", err)
	}
	f := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(f, []byte("x"), 0o644)
	if _, err := OpenCamera(f, 640, 480); !errors.Is(err, ErrNoCamera) {
		t.Errorf("plain file: %v", err)
	}
	// A real camera, when the machine has one (never in CI): a frame must arrive.
	if _, err := os.Stat("/dev/video0"); err != nil {
		return
	}
	c, err := OpenCamera("/dev/video0", 640, 480)
	if err != nil {
		t.Skipf("/dev/video0: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10e9)
	defer cancel()
	fr, err := c.Next(ctx)
	if err != nil || len(fr.Pix) < fr.Width {
		t.Fatalf("frame: %+v, %v", fr.Width, err)
	}
}
