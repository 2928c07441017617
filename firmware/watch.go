package firmware

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Watch polls dir (a USB stick's mount point) every interval for *.wlf files and
// calls found once with each file, in name order, when it has kept the same size and
// time over two polls (a file still being copied is not reported half-written); a
// file changed later is reported again. It returns when ctx ends. A missing dir (no
// stick) is not an error.
func Watch(ctx context.Context, dir string, interval time.Duration, found func(path string)) error {
	seen := map[string]string{}     // the last poll
	reported := map[string]string{} // what found was called for
	for {
		ents, _ := os.ReadDir(dir)
		names := []string{}
		now := map[string]string{}
		for _, e := range ents {
			if e.IsDir() || !strings.HasSuffix(strings.ToLower(e.Name()), ".wlf") {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue
			}
			key := info.ModTime().UTC().String() + "/" + itoa(info.Size())
			now[e.Name()] = key
			if seen[e.Name()] == key && reported[e.Name()] != key {
				names = append(names, e.Name())
				reported[e.Name()] = key
			}
		}
		sort.Strings(names)
		for _, n := range names {
			found(filepath.Join(dir, n))
		}
		seen = now
		for n := range reported {
			if _, ok := now[n]; !ok {
				delete(reported, n)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
