package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"aead.dev/minisign"

	"github.com/walletless/walletless/internal/secretfile"
)

// Key file names written by keygen, as the minisign CLI names them.
const (
	secretKeyName = "posfleet.key"
	publicKeyName = "posfleet.pub"
)

// keygenResult is what keygen prints with -json.
type keygenResult struct {
	SecretKey   string `json:"secret_key"`
	PublicKey   string `json:"public_key"`
	KeyID       string `json:"key_id"`
	TrustedLine string `json:"trusted_key"`
}

func cmdKeygen(e env) error {
	fset := newFlags("keygen", e)
	dir := fset.String("o", "", "`DIR` to write posfleet.key (secret, mode 0600) and posfleet.pub into (made 0700 if missing)")
	asJSON := fset.Bool("json", false, "print the result as JSON")
	pos, err := parse(fset, e.args)
	if err != nil {
		return err
	}
	if *dir == "" || len(pos) > 0 {
		return usageErr("posfleet keygen -o DIR")
	}
	sk, pk := filepath.Join(*dir, secretKeyName), filepath.Join(*dir, publicKeyName)
	for _, p := range []string{sk, pk} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s exists: refusing to overwrite a key (move it away first; devices trusting it would reject what a new key signs)", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := secretfile.PrivateDir(*dir); err != nil {
		return err
	}
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	skText, err := priv.MarshalText()
	if err != nil {
		return err
	}
	pkText, err := pub.MarshalText()
	if err != nil {
		return err
	}
	// The secret key first: a public key without its secret is useless, the reverse
	// can be redone from the secret.
	if err := writeNew(sk, append(skText, '\n'), 0o600); err != nil {
		return err
	}
	if err := writeNew(pk, append(pkText, '\n'), 0o644); err != nil {
		return err
	}
	res := keygenResult{SecretKey: sk, PublicKey: pk, KeyID: keyID(pub.ID()), TrustedLine: pub.String()}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(res)
	}
	fmt.Fprintf(e.stdout, "secret key: %s (mode 0600; keep it offline, never on a device)\n", sk)
	fmt.Fprintf(e.stdout, "public key: %s (key id %s)\n", pk, res.KeyID)
	fmt.Fprintf(e.stdout, "add this line to fleet.trusted_keys in every device's posd config:\n%s\n", res.TrustedLine)
	return nil
}

// keyID formats a minisign key id as the minisign CLI prints it.
func keyID(id uint64) string { return strings.ToUpper(strconv.FormatUint(id, 16)) }

// writeNew creates path with data and mode, failing when it exists, and syncs it.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// readSecretKey reads a minisign secret key file, refusing one its group or others
// may read and password-protected keys (which posfleet cannot ask for).
func readSecretKey(path string) (minisign.PrivateKey, error) {
	b, err := secretfile.Read(path)
	if err != nil {
		return minisign.PrivateKey{}, fmt.Errorf("signing key: %w", err)
	}
	if minisign.IsEncrypted(b) {
		return minisign.PrivateKey{}, fmt.Errorf("signing key %s is password-protected: sign with 'minisign -S -s %s -m FILE' and push FILE with its FILE.minisig, or use a key from 'posfleet keygen'", path, path)
	}
	var k minisign.PrivateKey
	if err := k.UnmarshalText(b); err != nil {
		return minisign.PrivateKey{}, fmt.Errorf("signing key %s: not a minisign secret key", path)
	}
	return k, nil
}
