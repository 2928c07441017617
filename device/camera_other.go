//go:build !linux

package device

import (
	"context"
	"fmt"
)

// Camera is only implemented on Linux.
type Camera struct{}

// OpenCamera is only implemented on Linux (V4L2).
func OpenCamera(path string, width, height int) (*Camera, error) {
	return nil, fmt.Errorf("%w: %s: V4L2 cameras are Linux only", ErrNoCamera, path)
}

// Format is only implemented on Linux.
func (c *Camera) Format() string { return "" }

// Size is only implemented on Linux.
func (c *Camera) Size() (int, int) { return 0, 0 }

// Next is only implemented on Linux.
func (c *Camera) Next(ctx context.Context) (CameraFrame, error) { return CameraFrame{}, ErrNoCamera }

// Close is only implemented on Linux.
func (c *Camera) Close() error { return nil }
