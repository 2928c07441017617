package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"path/filepath"
	stdsync "sync"
	"sync/atomic"
	"time"

	"github.com/walletless/walletless/internal/secretfile"
	"github.com/walletless/walletless/internal/shred"
	"github.com/walletless/walletless/payment"
	"github.com/walletless/walletless/store"
	wsync "github.com/walletless/walletless/sync"
)

// Files of the data directory that hold secrets outside posd.db.
const (
	KeysDir      = "keys"      // epoch keys of the sealed outbox entries (package shred)
	CodesKeyFile = "codes.key" // the device secret of the used-code records
)

// Rotation of the epoch key that seals payment requests: a new epoch once the outbox
// is empty (or the current epoch is unused) and the current one is older than
// shredRotateIdle and has sealed something, and in any case after shredRotateMax.
// Tests shorten them.
var (
	shredRotateIdle = time.Minute
	shredRotateMax  = 10 * time.Minute
	shredEvery      = 10 * time.Second // sweep period without kicks
	shredMinGap     = 2 * time.Second  // at most one scanning sweep per gap

	// shredRotated runs in a sweep right after a rotation; tests seal there, in
	// the window where a seal under the new epoch races the sweep.
	shredRotated = func() {}
)

// shredder keeps full payment codes out of posd.db in readable form: every payment
// request (the only outbox entry that carries a full code) is sealed under the
// current epoch key of a shred.Keyring in <data>/keys before it is written, opened
// again when the link reads the outbox (so the wire bytes do not change), and an
// epoch's key is destroyed once no outbox entry uses it, which shreds every copy of
// those entries bbolt's freed pages may keep.
//
// Sealing happens inside the engine's store transaction (Config.EncodeOutbox is
// called from it), so a sweep rotates, waits for the write transactions running
// then (a barrier), and only then scans the outbox for the epochs in use.
type shredder struct {
	st   *store.Store
	ring *shred.Keyring
	log  *slog.Logger
	kick chan struct{}
	// sealedIn is the newest epoch anything was sealed under (epochs grow): an
	// unused current epoch is not rotated. A maximum, not a count reset at
	// rotation, so a seal racing a rotation is never forgotten.
	sealedIn atomic.Uint64
	// gate keeps a sweep's scan and destruction apart from a reader's Peek and
	// Unseal, so a key never disappears between the two.
	gate stdsync.RWMutex

	mu       stdsync.Mutex
	reported map[uint64]bool // guarded by mu: unreadable entries already logged
}

var errBarrier = errors.New("daemon: barrier")

// newShredder opens the keyring under dataDir and reports pending entries whose
// key is missing.
func newShredder(st *store.Store, dataDir string, log *slog.Logger) (*shredder, error) {
	ring, err := shred.Open(filepath.Join(dataDir, KeysDir))
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	s := &shredder{st: st, ring: ring, log: log, kick: make(chan struct{}, 1), reported: map[uint64]bool{}}
	used, missing, err := s.scan()
	if err != nil {
		return nil, err
	}
	if missing > 0 {
		log.Error("payment requests in the outbox cannot be read: their epoch key is gone from "+filepath.Join(dataDir, KeysDir)+
			"; they are not sent, and their sales go in doubt and are settled by a status query", "entries", missing)
	}
	log.Info("payment codes sealed at rest", "epochs", len(ring.Epochs()), "in_use", len(used))
	return s, nil
}

// encode seals the outbox entries of payment requests that enc makes.
func (s *shredder) encode(enc func(payment.Message) ([]byte, error)) func(payment.Message) ([]byte, error) {
	return func(m payment.Message) ([]byte, error) {
		b, err := enc(m)
		if err != nil {
			return nil, err
		}
		if _, ok := m.(payment.AuthRequest); !ok {
			return b, nil
		}
		sealed, err := s.ring.Seal(b)
		if err != nil {
			return nil, fmt.Errorf("daemon: seal payment request: %w", err)
		}
		if e, ok := shred.EpochOf(sealed); ok {
			for old := s.sealedIn.Load(); e > old && !s.sealedIn.CompareAndSwap(old, e); old = s.sealedIn.Load() {
			}
		}
		return sealed, nil
	}
}

// outbox is o with sealed entries opened.
func (s *shredder) outbox(o outbox) wsync.Outbox { return shreddedOutbox{outbox: o, s: s} }

type shreddedOutbox struct {
	outbox
	s *shredder
}

// Pending returns the entries with sealed ones opened: the exact bytes the engine
// encoded. An entry that cannot be opened (its key is gone) is left out and logged
// once; it is never published as it is.
func (o shreddedOutbox) Pending(max int, skip func(uint64) bool) ([]wsync.Pending, error) {
	o.s.gate.RLock()
	defer o.s.gate.RUnlock()
	ps, err := o.outbox.Pending(max, skip)
	if err != nil {
		return nil, err
	}
	out := ps[:0]
	for _, p := range ps {
		if !shred.Sealed(p.Data) {
			out = append(out, p)
			continue
		}
		plain, err := o.s.ring.Unseal(p.Data)
		if err != nil {
			o.s.mu.Lock()
			first := !o.s.reported[p.Seq]
			o.s.reported[p.Seq] = true
			o.s.mu.Unlock()
			if first {
				o.s.log.Error("outbox entry cannot be opened; it is not sent (its sale goes in doubt and is settled by a status query)", "seq", p.Seq, "err", err)
			}
			continue
		}
		out = append(out, wsync.Pending{Seq: p.Seq, Data: plain})
	}
	return out, nil
}

// Kick asks for a sweep soon (after results were applied). It never blocks.
func (s *shredder) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run sweeps when kicked and every shredEvery until ctx is done.
func (s *shredder) run(ctx context.Context) error {
	t := time.NewTicker(shredEvery)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.kick:
			if wait := shredMinGap - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
			}
		}
		last = time.Now()
		if err := s.sweep(); err != nil && ctx.Err() == nil {
			s.log.Error("shred sweep", "err", err)
		}
	}
}

// sweep rotates the epoch when it is due and destroys the keys of epochs no outbox
// entry uses.
func (s *shredder) sweep() error {
	cur, born := s.ring.Current()
	age := time.Since(born)
	rotate := false
	switch {
	case s.sealedIn.Load() < cur: // nothing sealed under cur yet
	case age >= shredRotateMax:
		rotate = true
	case age >= shredRotateIdle:
		if depth, _, err := s.st.OutboxStats(); err == nil && depth == 0 {
			rotate = true
		} else if used, _, err := s.scan(); err == nil && !used[cur] {
			rotate = true
		}
	}
	if rotate {
		e, err := s.ring.Rotate()
		if err != nil {
			return err
		}
		shredRotated()
		s.log.Debug("epoch key rotated", "epoch", e)
	}
	if len(s.ring.Epochs()) < 2 {
		return nil
	}
	// Every transaction that sealed under an older epoch has committed (or rolled
	// back) once the writer lock was ours.
	if err := s.st.Update(func(*store.Tx) error { return errBarrier }); !errors.Is(err, errBarrier) {
		return fmt.Errorf("daemon: shred barrier: %w", err)
	}
	s.gate.Lock()
	defer s.gate.Unlock()
	used, _, err := s.scan()
	if err != nil {
		return err
	}
	destroyed, err := s.ring.Retain(func(e uint64) bool { return used[e] })
	if len(destroyed) > 0 {
		s.log.Info("epoch keys destroyed: their payment codes are shredded", "epochs", len(destroyed))
	}
	return err
}

// scan returns the epochs the outbox's sealed entries use and how many of those
// entries have no key.
func (s *shredder) scan() (used map[uint64]bool, missing int, err error) {
	es, err := s.st.Peek(math.MaxInt, nil)
	if err != nil {
		return nil, 0, err
	}
	used = map[uint64]bool{}
	for _, e := range es {
		if epoch, ok := shred.EpochOf(e.Data); ok {
			used[epoch] = true
			if !s.ring.Has(epoch) {
				missing++
			}
		}
	}
	return used, missing, nil
}

// codeKey returns the device secret that keys the records of used one-time codes,
// <data>/codes.key, making it (32 random bytes, 0600) on first start. A key file its
// group or others can read is refused.
func codeKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, CodesKeyFile)
	raw, err := secretfile.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		raw = make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, fmt.Errorf("daemon: %s: %w", CodesKeyFile, err)
		}
		if err := secretfile.Write(path, raw); err != nil {
			return nil, fmt.Errorf("daemon: %s: %w", CodesKeyFile, err)
		}
		return raw, nil
	}
	if err != nil {
		return nil, fmt.Errorf("daemon: %s: %w", CodesKeyFile, err)
	}
	if len(raw) != 32 {
		return nil, fmt.Errorf("daemon: %s holds %d bytes, want 32 (delete it to make a new one; one-time codes used before are then not recognised)", path, len(raw))
	}
	return raw, nil
}
