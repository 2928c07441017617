package scanner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/walletless/walletless/device"
)

// Frame source prefixes for Config.Source.
const (
	// CameraPrefix reads a V4L2 camera: "camera:/dev/video0" or
	// "camera:/dev/video0@1280x720" (default 640x480).
	CameraPrefix = "camera:"
	// ImagesPrefix reads image files once, in name order: "images:/path/to/dir" or
	// "images:a.png,b.jpg". Run returns after the last one, like stdin at its end.
	ImagesPrefix = "images:"
)

// CameraSource is a FrameSource over a V4L2 camera. A frame's plane is valid until
// the next call to Next.
type CameraSource struct {
	cam  *device.Camera
	name string
}

// OpenCameraSource opens path at about width x height.
func OpenCameraSource(path string, width, height int) (*CameraSource, error) {
	c, err := device.OpenCamera(path, width, height)
	if err != nil {
		return nil, err
	}
	return &CameraSource{cam: c, name: path}, nil
}

// Next waits for the next frame.
func (s *CameraSource) Next(ctx context.Context) (Frame, error) {
	f, err := s.cam.Next(ctx)
	if err != nil {
		return Frame{}, err
	}
	return Frame{Gray: Gray{Pix: f.Pix, Width: f.Width, Height: f.Height, Stride: f.Stride}, Name: s.name, At: time.Now()}, nil
}

// Close releases the camera.
func (s *CameraSource) Close() error { return s.cam.Close() }

// parseCamera splits "PATH[@WxH]".
func parseCamera(spec string) (string, int, int, error) {
	path, size, ok := strings.Cut(spec, "@")
	w, h := 640, 480
	if ok {
		ws, hs, ok2 := strings.Cut(size, "x")
		var err1, err2 error
		w, err1 = strconv.Atoi(ws)
		h, err2 = strconv.Atoi(hs)
		if !ok2 || err1 != nil || err2 != nil || w < 16 || h < 16 || w > 8192 || h > 8192 {
			return "", 0, 0, fmt.Errorf("%w: camera size %q (want WIDTHxHEIGHT)", ErrConfig, size)
		}
	}
	if path == "" {
		return "", 0, 0, fmt.Errorf("%w: camera without a device path", ErrConfig)
	}
	return path, w, h, nil
}

// runFrameSource serves "camera:" and "images:" sources from Run.
func runFrameSource(ctx context.Context, cfg Config, log *slog.Logger, out chan<- Scan) error {
	fc := FrameConfig{Dedup: cfg.Dedup, Status: cfg.Status, Decode: DecodeOptions{EAN13: cfg.EAN13}}
	if spec, ok := strings.CutPrefix(cfg.Source, ImagesPrefix); ok {
		src, err := NewImageSource(strings.Split(spec, ",")...)
		if err != nil {
			return err
		}
		fc.HarderEvery = 1
		return RunFrames(ctx, src, fc, log, out)
	}
	path, w, h, err := parseCamera(strings.TrimPrefix(cfg.Source, CameraPrefix))
	if err != nil {
		return err
	}
	backoff := cfg.RetryMin
	logged := ""
	for ctx.Err() == nil {
		src, err := OpenCameraSource(path, w, h)
		if err == nil {
			logged = ""
			cw, ch := src.cam.Size()
			log.Info("camera connected", "camera", path, "size", fmt.Sprintf("%dx%d", cw, ch), "format", src.cam.Format())
			err = RunFrames(ctx, failFor{src}, fc, log, out)
			src.Close()
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errors.New("scanner: camera stream ended")
			}
			log.Warn("camera disconnected; reconnecting", "camera", path, "err", err)
			logged = err.Error()
			backoff = cfg.RetryMin
		}
		cfg.Status.setConnected("", false, time.Now())
		cfg.Status.setError(err, time.Now())
		if err.Error() != logged {
			log.Warn("camera not available; retrying", "camera", path, "err", err)
			logged = err.Error()
		}
		if !sleep(ctx, jitter(backoff)) {
			return nil
		}
		backoff = min(2*backoff, cfg.RetryMax)
	}
	return nil
}

// failFor makes a camera's failure end RunFrames (which otherwise skips bad frames)
// so that the camera is reopened.
type failFor struct{ *CameraSource }

func (e failFor) Next(ctx context.Context) (Frame, error) {
	f, err := e.CameraSource.Next(ctx)
	if err != nil && ctx.Err() == nil {
		return Frame{}, fmt.Errorf("%w: %w", io.EOF, err)
	}
	return f, err
}
