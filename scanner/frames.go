package scanner

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/walletless/walletless/paycode"
)

// FrameConfig configures RunFrames.
type FrameConfig struct {
	Decode DecodeOptions
	// Dedup makes the same code within this window one scan (as Config.Dedup); a code
	// held in front of a camera is seen in many frames, so leave it on.
	Dedup time.Duration
	// Confirm is how many frames, within a short run, must show a code that does not
	// pass its own checks before it counts (default 2). It keeps noise from becoming
	// a scan.
	Confirm int
	// Check reports whether a code passes its own checks (EMV CRC, a wallet rule) and
	// so counts from one frame. nil means paycode.Identify succeeds.
	Check func(text string) bool
	// HarderEvery limits the slow harder full-frame pass (tens to hundreds of
	// milliseconds on a frame without a code) to one frame in this many (default 5);
	// the others get the cheap pass only. 1 runs it on every frame, as for image
	// files. It only matters with Decode.NoPrecheck (the pre-check and its regions
	// replace the full-frame passes).
	HarderEvery int
	// Status, if not nil, receives the state as with Run.
	Status *Status
}

// confirmWindow is how many frames may separate two sightings of a code that needs
// confirmation.
const confirmWindow = 3

// RunFrames decodes frames from src and sends scans to out until src is exhausted
// (io.EOF, then it returns nil) or ctx is done (nil). Frames that cannot be read are
// logged (at most every 10 s) and skipped; an error that wraps io.EOF means the
// source failed for good and is returned. It never closes out or src.
func RunFrames(ctx context.Context, src FrameSource, cfg FrameConfig, log *slog.Logger, out chan<- Scan) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Confirm <= 0 {
		cfg.Confirm = 2
	}
	if cfg.HarderEvery <= 0 {
		cfg.HarderEvery = 5
	}
	if cfg.Check == nil {
		cfg.Check = func(s string) bool { _, err := paycode.Identify(s); return err == nil }
	}
	st := cfg.Status
	if st == nil {
		st = new(Status)
	}
	st.setConnected("", true, time.Now())
	defer st.setConnected("", false, time.Now())
	dec := NewDecoder(cfg.Decode)
	dd := dedup{window: cfg.Dedup}
	warn := limiter{every: 10 * time.Second}
	var (
		cand       string // code waiting for confirmation
		candSeen   int
		candFrame  int
		lastHarder = -1 << 30
	)
	for n := 0; ; n++ {
		f, err := src.Next(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == io.EOF {
			log.Info("scanner: frame source exhausted")
			return nil
		}
		if errors.Is(err, io.EOF) {
			return err // the source failed for good (a camera gone)
		}
		if err != nil {
			st.setError(err, time.Now())
			if ok, sup := warn.allow(time.Now()); ok {
				log.Warn("scanner: frame skipped", "frame", f.Name, "err", err, "suppressed", sup)
			}
			continue
		}
		at := f.At
		if at.IsZero() {
			at = time.Now()
		}
		harder := !cfg.Decode.NoHarder && n-lastHarder >= cfg.HarderEvery
		if harder {
			lastHarder = n
		}
		r, err := dec.decode(f.Gray, harder)
		if err != nil {
			if !errors.Is(err, ErrNoCode) {
				st.setError(err, at)
			}
			continue
		}
		if !cfg.Check(r.Text) {
			if r.Text == cand && n-candFrame <= confirmWindow {
				candSeen++
			} else {
				cand, candSeen = r.Text, 1
			}
			candFrame = n
			if candSeen < cfg.Confirm {
				continue
			}
		}
		cand, candSeen = "", 0
		if dd.seen(r.Text, at) {
			st.update(func(s *State) { s.Duplicates++ })
			continue
		}
		st.update(func(s *State) { s.Scans++; s.LastScan = at })
		log.Debug("scan", "code", paycode.Mask(r.Text), "symbology", r.Symbology, "frame", f.Name, "pass", r.Pass)
		select {
		case out <- Scan{Text: r.Text, Symbology: r.Symbology, At: at}:
		case <-ctx.Done():
			return nil
		}
	}
}
