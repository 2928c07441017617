package firmware

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseVersion checks that v is a release version: one to four dot-separated decimal
// numbers with an optional leading "v" ("1.4.2", "v2.0"). Versions compare number by
// number, so "1.10" is above "1.9".
func ParseVersion(v string) ([]uint64, error) {
	s := strings.TrimPrefix(v, "v")
	if s == "" || len(v) > 64 {
		return nil, fmt.Errorf("%w: version %q is not N[.N[.N[.N]]]", ErrMalformed, v)
	}
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return nil, fmt.Errorf("%w: version %q has more than four parts", ErrMalformed, v)
	}
	out := make([]uint64, 4)
	for i, p := range parts {
		if p == "" || len(p) > 9 || strings.TrimLeft(p, "0123456789") != "" {
			return nil, fmt.Errorf("%w: version %q is not N[.N[.N[.N]]]", ErrMalformed, v)
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: version %q: %w", ErrMalformed, v, err)
		}
		out[i] = n
	}
	return out, nil
}

// CompareVersions returns -1, 0 or +1 as a is below, equal to or above b. An empty
// version is below every other; an invalid one compares as empty.
func CompareVersions(a, b string) int {
	pa, ea := ParseVersion(a)
	pb, eb := ParseVersion(b)
	switch {
	case ea != nil && eb != nil:
		return 0
	case ea != nil:
		return -1
	case eb != nil:
		return 1
	}
	for i := range pa {
		if pa[i] != pb[i] {
			if pa[i] < pb[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}
