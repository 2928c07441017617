package fleet

import (
	"fmt"
	"strconv"
	"strings"

	"aead.dev/minisign"
)

// ParseKeys reads minisign public keys: each the base64 line of a minisign .pub file
// ("RW…"), or the whole file text with its comment line.
func ParseKeys(keys []string) ([]minisign.PublicKey, error) {
	out := make([]minisign.PublicKey, 0, len(keys))
	seen := map[uint64]bool{}
	for i, k := range keys {
		var pk minisign.PublicKey
		if err := pk.UnmarshalText([]byte(strings.TrimSpace(k))); err != nil {
			return nil, fmt.Errorf("fleet: trusted key %d: %w", i+1, err)
		}
		if seen[pk.ID()] {
			return nil, fmt.Errorf("fleet: trusted key %d: key %s is listed twice", i+1, KeyID(pk.ID()))
		}
		seen[pk.ID()] = true
		out = append(out, pk)
	}
	return out, nil
}

// KeyID formats a minisign key id the way the minisign CLI prints it.
func KeyID(id uint64) string { return strings.ToUpper(strconv.FormatUint(id, 16)) }

// Sign signs doc with key and returns the text of a .minisig file. The trusted
// comment names the document's version and target when doc parses.
func Sign(key minisign.PrivateKey, doc []byte) []byte {
	trusted := "walletless fleet config"
	if d, err := ParseDocument(doc); err == nil {
		trusted = fmt.Sprintf("walletless fleet config version %d for %s", d.Version, d.Target)
	}
	return minisign.SignWithComments(key, doc, trusted, "signature from walletless key "+KeyID(key.ID()))
}

// Verify checks that signature (the text of a .minisig file, legacy or prehashed) is
// a valid signature of doc by one of keys. It returns the signing key's id. A
// signature by a key that is not in keys is ErrUntrustedKey; one that does not verify
// is ErrSignature.
func Verify(keys []minisign.PublicKey, doc []byte, signature []byte) (string, error) {
	var s minisign.Signature
	if err := s.UnmarshalText(signature); err != nil {
		return "", fmt.Errorf("%w: %w", ErrSignature, err)
	}
	for _, k := range keys {
		if k.ID() != s.KeyID {
			continue
		}
		if !minisign.Verify(k, doc, signature) {
			return "", fmt.Errorf("%w: the signature by key %s does not match the document", ErrSignature, KeyID(s.KeyID))
		}
		return KeyID(s.KeyID), nil
	}
	return "", fmt.Errorf("%w (key %s)", ErrUntrustedKey, KeyID(s.KeyID))
}
