package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MergePatch applies patch to target with JSON merge-patch semantics (RFC 7386): an
// object merges key by key, null deletes a key, anything else replaces.
func MergePatch(target, patch []byte) ([]byte, error) {
	var t, p any
	if len(bytes.TrimSpace(target)) > 0 {
		if err := decodeNumbers(target, &t); err != nil {
			return nil, fmt.Errorf("fleet: merge target: %w", err)
		}
	}
	if err := decodeNumbers(patch, &p); err != nil {
		return nil, fmt.Errorf("fleet: merge patch: %w", err)
	}
	return json.Marshal(mergeValue(t, p))
}

// decodeNumbers decodes keeping numbers exact (json.Number): int64 money amounts do
// not survive a float64.
func decodeNumbers(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON value")
	}
	return nil
}

func mergeValue(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
			continue
		}
		tm[k] = mergeValue(tm[k], v)
	}
	return tm
}
