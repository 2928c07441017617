// Package shred keeps secrets in a database that cannot forget them, in a form that
// can be forgotten: crypto-shredding.
//
// bbolt never overwrites a freed page at once, so deleting a record leaves its bytes
// in the file (and in copies of it) for an unknown time. A Keyring instead encrypts
// each secret with AES-256-GCM under the data key of an epoch; the keys live outside
// the database, one file per epoch (<dir>/<epoch>.key, directory 0700, files 0600,
// written with fsync). Once no record sealed under an epoch is left, the caller
// destroys that epoch's key (Retain or Destroy: overwritten with zeros, fsynced,
// unlinked, directory fsynced) and every copy of those records, freed pages included,
// is noise. Rotate starts a new epoch so that old ones can die.
//
// A sealed value is Magic, the epoch (8 bytes, big-endian), a 12-byte random nonce
// and the ciphertext with its tag; the first 12 bytes are authenticated as well.
//
// # Caveats
//
//   - Shredding is only as good as the key file's destruction. On flash (SD cards,
//     eMMC) wear levelling may keep the old block of an overwritten file; the
//     overwrite is best effort, the unlink is what counts, and a full-disk encryption
//     layer below is what closes that gap.
//   - Keys of epochs still in use, and the process's memory, hold what they hold: a
//     device taken while sales wait to be synced gives those sales' secrets away.
//   - The caller must make sure that no value is sealed under an epoch after it
//     decided that epoch is unused (see Rotate).
package shred

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	stdsync "sync"
	"time"

	"github.com/walletless/walletless/internal/secretfile"
)

// Magic starts every sealed value. It is not valid JSON, UTF-8 text or a bbolt
// key prefix of ours, so sealed and plain values can share a bucket.
const Magic = "\x00WLS1"

const (
	keySize    = 32 // AES-256
	nonceSize  = 12
	headerSize = len(Magic) + 8
	// Overhead is how many bytes Seal adds.
	Overhead = headerSize + nonceSize + 16
)

// Errors of Unseal and the Keyring.
var (
	// ErrNoKey means the key of a sealed value's epoch is not in the keyring: it was
	// destroyed (the value was meant to be forgotten) or the key directory lost it.
	ErrNoKey = errors.New("shred: the key of this epoch is gone")
	// ErrNotSealed means the value does not start with Magic.
	ErrNotSealed = errors.New("shred: not a sealed value")
	// ErrCorrupt means the value is truncated or does not authenticate under its
	// epoch's key.
	ErrCorrupt = errors.New("shred: sealed value is damaged or was sealed under another key")
	// ErrCurrent is returned by Destroy for the current epoch.
	ErrCurrent = errors.New("shred: the current epoch's key cannot be destroyed")
)

// Keyring is the set of epoch keys in one directory. It is safe for concurrent use.
type Keyring struct {
	dir string
	now func() time.Time

	mu   stdsync.Mutex
	keys map[uint64]cipher.AEAD // guarded by mu
	raw  map[uint64][]byte      // guarded by mu: the key bytes, zeroed on Destroy
	cur  uint64                 // guarded by mu
	born time.Time              // guarded by mu: when cur was made
}

// Open makes dir (0700) if needed, loads every epoch key in it and starts a new
// current epoch, so that the epochs of earlier runs can be destroyed once unused. A
// key file its group or others can read, or of the wrong size, is an error.
func Open(dir string) (*Keyring, error) {
	if err := secretfile.PrivateDir(dir); err != nil {
		return nil, fmt.Errorf("shred: key directory: %w", err)
	}
	k := &Keyring{dir: dir, now: time.Now, keys: map[uint64]cipher.AEAD{}, raw: map[uint64][]byte{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("shred: %w", err)
	}
	for _, e := range ents {
		epoch, ok := parseName(e.Name())
		if !ok {
			continue
		}
		raw, err := secretfile.Read(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("shred: epoch key: %w", err)
		}
		if len(raw) != keySize {
			return nil, fmt.Errorf("shred: epoch key %s holds %d bytes, want %d", filepath.Join(dir, e.Name()), len(raw), keySize)
		}
		if err := k.add(epoch, raw); err != nil {
			return nil, err
		}
	}
	if _, err := k.Rotate(); err != nil {
		return nil, err
	}
	return k, nil
}

func parseName(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, ".key")
	if !ok || s == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n > 0
}

func (k *Keyring) path(epoch uint64) string {
	return filepath.Join(k.dir, strconv.FormatUint(epoch, 10)+".key")
}

// add registers a key; k.mu must be held or k not yet shared.
func (k *Keyring) add(epoch uint64, raw []byte) error {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return fmt.Errorf("shred: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("shred: %w", err)
	}
	k.keys[epoch], k.raw[epoch] = aead, raw
	return nil
}

// Rotate makes a new epoch key (written and fsynced before it is used) and makes it
// current; it returns the new epoch. Values sealed from now on use it.
//
// A Seal that began before Rotate returned may still use the previous epoch. The
// caller that writes sealed values inside store transactions and scans the store for
// epochs in use must therefore let those transactions finish (a barrier) between
// Rotate and the scan that decides what to destroy.
func (k *Keyring) Rotate() (uint64, error) {
	raw := make([]byte, keySize)
	if _, err := rand.Read(raw); err != nil {
		return 0, fmt.Errorf("shred: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	// Epochs are the creation time in nanoseconds, kept increasing whatever the clock
	// does, so a destroyed epoch's number is never reused.
	epoch := uint64(max(now.UnixNano(), 1))
	for e := range k.keys {
		epoch = max(epoch, e+1)
	}
	epoch = max(epoch, k.cur+1)
	if err := secretfile.Write(k.path(epoch), raw); err != nil {
		return 0, fmt.Errorf("shred: new epoch key: %w", err)
	}
	if err := k.add(epoch, raw); err != nil {
		return 0, err
	}
	k.cur, k.born = epoch, now
	return epoch, nil
}

// Current returns the current epoch and when it was made.
func (k *Keyring) Current() (uint64, time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cur, k.born
}

// Epochs returns the epochs whose keys are held, in increasing order.
func (k *Keyring) Epochs() []uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]uint64, 0, len(k.keys))
	for e := range k.keys {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Has reports whether the key of epoch is held.
func (k *Keyring) Has(epoch uint64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys[epoch] != nil
}

// Seal encrypts plain under the current epoch's key.
func (k *Keyring) Seal(plain []byte) ([]byte, error) {
	k.mu.Lock()
	epoch, aead := k.cur, k.keys[k.cur]
	k.mu.Unlock()
	if aead == nil {
		return nil, fmt.Errorf("%w: current epoch %d", ErrNoKey, epoch)
	}
	out := make([]byte, headerSize+nonceSize, Overhead+len(plain))
	copy(out, Magic)
	binary.BigEndian.PutUint64(out[len(Magic):], epoch)
	if _, err := rand.Read(out[headerSize:]); err != nil {
		return nil, fmt.Errorf("shred: %w", err)
	}
	return aead.Seal(out, out[headerSize:], plain, out[:headerSize]), nil
}

// Sealed reports whether b starts like a sealed value.
func Sealed(b []byte) bool { return len(b) >= headerSize && string(b[:len(Magic)]) == Magic }

// EpochOf returns the epoch a sealed value was sealed under.
func EpochOf(b []byte) (uint64, bool) {
	if !Sealed(b) {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[len(Magic):headerSize]), true
}

// Unseal decrypts a value made by Seal. The errors wrap ErrNotSealed, ErrNoKey or
// ErrCorrupt and name the epoch, never the content.
func (k *Keyring) Unseal(b []byte) ([]byte, error) {
	epoch, ok := EpochOf(b)
	if !ok {
		return nil, ErrNotSealed
	}
	k.mu.Lock()
	aead := k.keys[epoch]
	k.mu.Unlock()
	if aead == nil {
		return nil, fmt.Errorf("%w: epoch %d (no %s)", ErrNoKey, epoch, k.path(epoch))
	}
	if len(b) < Overhead {
		return nil, fmt.Errorf("%w: epoch %d, %d bytes", ErrCorrupt, epoch, len(b))
	}
	plain, err := aead.Open(nil, b[headerSize:headerSize+nonceSize], b[headerSize+nonceSize:], b[:headerSize])
	if err != nil {
		return nil, fmt.Errorf("%w: epoch %d", ErrCorrupt, epoch)
	}
	return plain, nil
}

// Retain destroys the key of every epoch that is neither current nor reported by
// inUse, and returns the epochs destroyed. See Rotate for the barrier the caller
// needs between a rotation and the scan behind inUse.
func (k *Keyring) Retain(inUse func(epoch uint64) bool) ([]uint64, error) {
	var destroyed []uint64
	var errs []error
	cur, _ := k.Current()
	for _, e := range k.Epochs() {
		if e == cur || inUse(e) {
			continue
		}
		if err := k.Destroy(e); err != nil {
			errs = append(errs, err)
			continue
		}
		destroyed = append(destroyed, e)
	}
	return destroyed, errors.Join(errs...)
}

// Destroy forgets epoch's key: the file is overwritten with zeros and fsynced, then
// unlinked and the directory fsynced; the key bytes in memory are zeroed. Every value
// sealed under epoch is unreadable from then on. The current epoch is refused.
func (k *Keyring) Destroy(epoch uint64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if epoch == k.cur {
		return ErrCurrent
	}
	path := k.path(epoch)
	if err := overwrite(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("shred: destroy epoch %d: %w", epoch, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("shred: destroy epoch %d: %w", epoch, err)
	}
	if err := syncDir(k.dir); err != nil {
		return fmt.Errorf("shred: destroy epoch %d: %w", epoch, err)
	}
	clear(k.raw[epoch])
	delete(k.raw, epoch)
	delete(k.keys, epoch)
	return nil
}

// overwrite writes zeros over the whole file at path and fsyncs it.
func overwrite(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil {
		_, err = f.WriteAt(make([]byte, max(fi.Size(), keySize)), 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return err
	}
	return nil
}
