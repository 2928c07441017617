package scanner

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/draw"
	_ "image/jpeg" // JPEG frames
	_ "image/png"  // PNG frames
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MaxImagePixels bounds the frames LoadImage accepts (a 16-megapixel photo).
const MaxImagePixels = 16 << 20

// Frame is one picture from a camera or an image file.
type Frame struct {
	Gray
	Name string    // file name or camera id
	At   time.Time // when it was captured or read
}

// FrameSource yields frames. Next returns io.EOF when there are no more.
type FrameSource interface {
	Next(ctx context.Context) (Frame, error)
	Close() error
}

// LoadImage reads a PNG, JPEG or PGM (P5, 8-bit) file as a gray plane. Gray and
// YCbCr images (every JPEG) give their luminance plane without conversion; other
// PNGs are converted once.
func LoadImage(path string) (Gray, error) {
	f, err := os.Open(path)
	if err != nil {
		return Gray{}, fmt.Errorf("scanner: %w", err)
	}
	defer f.Close()
	g, err := ReadImage(f)
	if err != nil {
		return Gray{}, fmt.Errorf("%w (%s)", err, path)
	}
	return g, nil
}

// ReadImage reads a PNG, JPEG or PGM image from r as a gray plane.
func ReadImage(r io.Reader) (Gray, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if head, _ := br.Peek(2); len(head) == 2 && head[0] == 'P' && head[1] == '5' {
		return readPGM(br)
	}
	// The header is peeked, not consumed: 64 KiB covers PNG and JPEG headers with
	// ordinary metadata (a larger header only skips the size check).
	head, _ := br.Peek(64 << 10)
	cfg, _, err := image.DecodeConfig(bytes.NewReader(head))
	if err == nil && cfg.Width*cfg.Height > MaxImagePixels {
		return Gray{}, fmt.Errorf("scanner: image of %dx%d is too large", cfg.Width, cfg.Height)
	}
	img, _, err := image.Decode(br)
	if err != nil {
		return Gray{}, fmt.Errorf("scanner: decoding image: %w", err)
	}
	return grayOf(img), nil
}

// grayOf returns img's luminance plane, sharing memory where the image has one.
func grayOf(img image.Image) Gray {
	b := img.Bounds()
	switch m := img.(type) {
	case *image.Gray:
		return Gray{Pix: m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], Width: b.Dx(), Height: b.Dy(), Stride: m.Stride}
	case *image.YCbCr:
		off := m.YOffset(b.Min.X, b.Min.Y)
		return Gray{Pix: m.Y[off:], Width: b.Dx(), Height: b.Dy(), Stride: m.YStride}
	}
	g := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(g, g.Bounds(), img, b.Min, draw.Src)
	return Gray{Pix: g.Pix, Width: b.Dx(), Height: b.Dy(), Stride: g.Stride}
}

// readPGM reads a binary PGM with maxval < 256.
func readPGM(br *bufio.Reader) (Gray, error) {
	var fields []int
	magic := make([]byte, 2)
	if _, err := io.ReadFull(br, magic); err != nil {
		return Gray{}, fmt.Errorf("scanner: PGM: %w", err)
	}
	for len(fields) < 3 {
		tok, err := pgmToken(br)
		if err != nil {
			return Gray{}, fmt.Errorf("scanner: PGM header: %w", err)
		}
		n, err := strconv.Atoi(tok)
		if err != nil || n <= 0 {
			return Gray{}, fmt.Errorf("scanner: PGM header: bad number %q", tok)
		}
		fields = append(fields, n)
	}
	w, h, maxval := fields[0], fields[1], fields[2]
	if maxval > 255 {
		return Gray{}, errors.New("scanner: PGM: only 8-bit images are supported")
	}
	if w*h > MaxImagePixels || w > 1<<15 || h > 1<<15 {
		return Gray{}, fmt.Errorf("scanner: PGM of %dx%d is too large", w, h)
	}
	pix := make([]byte, w*h)
	if _, err := io.ReadFull(br, pix); err != nil {
		return Gray{}, fmt.Errorf("scanner: PGM pixels: %w", err)
	}
	if maxval != 255 {
		for i, v := range pix {
			pix[i] = byte(min(int(v)*255/maxval, 255))
		}
	}
	return Gray{Pix: pix, Width: w, Height: h}, nil
}

// pgmToken reads one whitespace-separated header token, skipping # comments; it
// consumes exactly one whitespace byte after the token.
func pgmToken(br *bufio.Reader) (string, error) {
	var tok []byte
	for {
		c, err := br.ReadByte()
		if err != nil {
			return "", err
		}
		switch {
		case c == '#' && len(tok) == 0:
			if _, err := br.ReadString('\n'); err != nil {
				return "", err
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if len(tok) > 0 {
				return string(tok), nil
			}
		default:
			if len(tok) > 16 {
				return "", errors.New("token too long")
			}
			tok = append(tok, c)
		}
	}
}

// WritePGM writes g as a binary PGM (for captures and test fixtures).
func WritePGM(w io.Writer, g Gray) error {
	if err := g.check(); err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "P5\n%d %d\n255\n", g.Width, g.Height)
	for y := 0; y < g.Height; y++ {
		off := y * g.stride()
		bw.Write(g.Pix[off : off+g.Width])
	}
	return bw.Flush()
}

// imageExts are the file names the image frame source picks up in a directory.
var imageExts = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".pgm": true}

// ImageFiles expands paths: files are kept, directories give their image files
// (PNG, JPEG, PGM) sorted by name, not recursively.
func ImageFiles(paths ...string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("scanner: %w", err)
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("scanner: %w", err)
		}
		var names []string
		for _, e := range ents {
			if e.Type().IsRegular() && imageExts[strings.ToLower(filepath.Ext(e.Name()))] {
				names = append(names, filepath.Join(p, e.Name()))
			}
		}
		sort.Strings(names)
		out = append(out, names...)
	}
	return out, nil
}

// ImageSource is a FrameSource over image files, each read once in order. With
// Interval set it paces frames like a camera.
type ImageSource struct {
	files    []string
	i        int
	Interval time.Duration
	last     time.Time
}

// NewImageSource returns a source of the image files in paths (files or directories).
func NewImageSource(paths ...string) (*ImageSource, error) {
	files, err := ImageFiles(paths...)
	if err != nil {
		return nil, err
	}
	return &ImageSource{files: files}, nil
}

// Next reads the next file. A file that cannot be read yields an error naming it;
// the following call moves on to the next file.
func (s *ImageSource) Next(ctx context.Context) (Frame, error) {
	if s.i >= len(s.files) {
		return Frame{}, io.EOF
	}
	if s.Interval > 0 && !s.last.IsZero() {
		if !sleep(ctx, time.Until(s.last.Add(s.Interval))) {
			return Frame{}, ctx.Err()
		}
	}
	if err := ctx.Err(); err != nil {
		return Frame{}, err
	}
	name := s.files[s.i]
	s.i++
	s.last = time.Now()
	g, err := LoadImage(name)
	if err != nil {
		return Frame{Name: name}, err
	}
	return Frame{Gray: g, Name: name, At: s.last}, nil
}

// Close does nothing; files are closed as they are read.
func (s *ImageSource) Close() error { return nil }
