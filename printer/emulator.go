package printer

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/walletless/walletless/printer/emulator"
)

// emulatorPrinter renders each job to DIR/<name>.png and keeps DIR/<name>.bin.
type emulatorPrinter struct {
	dir  string
	opt  emulator.Options
	log  *slog.Logger
	mu   sync.Mutex // serialises jobs with the same name
	done bool       // guarded by mu
}

func newEmulatorPrinter(dir string, opt Options, log *slog.Logger) (Printer, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: emulator needs a directory", ErrSpec)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("printer: emulator directory: %w", err)
	}
	return &emulatorPrinter{
		dir: dir,
		opt: emulator.Options{Width: opt.Profile.WidthDots, Multibyte: opt.Profile.CJKEncoding},
		log: log,
	}, nil
}

func (p *emulatorPrinter) Print(ctx context.Context, name string, data []byte) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("printer: %w", err)
	}
	res := emulator.Render(data, p.opt)
	var img bytes.Buffer
	if err := png.Encode(&img, res.Image); err != nil {
		return fmt.Errorf("printer: emulator: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return ErrClosed
	}
	bin := filepath.Join(p.dir, name+".bin")
	out := filepath.Join(p.dir, name+".png")
	if err := writeFileAtomic(bin, data); err != nil {
		return err
	}
	if err := writeFileAtomic(out, img.Bytes()); err != nil {
		return err
	}
	for _, w := range res.Warnings {
		p.log.Warn("emulator skipped a command", "job", name, "offset", w.Offset, "warning", w.Msg)
	}
	p.log.Info("receipt rendered", "job", name, "png", out, "bytes", len(data))
	return nil
}

func (p *emulatorPrinter) Close() error {
	p.mu.Lock()
	p.done = true
	p.mu.Unlock()
	return nil
}

// writeFileAtomic writes data to a temporary file beside path and renames it, so a
// reader never sees half a PNG.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("printer: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("printer: write %s: %w", path, err)
	}
	return nil
}
