package firmware

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Download fetches url into path, resuming: bytes already in path are kept and only
// the rest is asked for with a Range request, so a download cut by the network or by
// a power loss continues where it stopped. A server that ignores Range (200) makes
// it start over. Connection failures are retried with backoff until ctx ends or
// attempts (0: unlimited) fail in a row; a 4xx is permanent. progress, if set, gets
// the bytes on disk and the total (-1 while unknown).
func Download(ctx context.Context, client *http.Client, url, path string, attempts int, progress func(done, total int64)) error {
	if client == nil {
		client = http.DefaultClient
	}
	backoff := 200 * time.Millisecond
	for fails := 0; ; {
		done, err := downloadOnce(ctx, client, url, path, progress)
		if done {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var perm permanent
		if asPermanent(err, &perm) {
			return fmt.Errorf("%w: %w", ErrDownload, err)
		}
		fails++
		if attempts > 0 && fails >= attempts {
			return fmt.Errorf("%w after %d attempts: %w", ErrDownload, fails, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		if backoff < 30*time.Second {
			backoff *= 2
		}
	}
}

type permanent struct{ error }

func asPermanent(err error, p *permanent) bool {
	pe, ok := err.(permanent)
	if ok {
		*p = pe
	}
	return ok
}

// downloadOnce makes one request; done when the file is complete.
func downloadOnce(ctx context.Context, client *http.Client, url, path string, progress func(done, total int64)) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return false, permanent{fmt.Errorf("firmware: %w", err)}
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return false, permanent{fmt.Errorf("firmware: %w", err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, permanent{fmt.Errorf("firmware: %w", err)}
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, fmt.Errorf("firmware: %w", err)
	}
	defer resp.Body.Close()
	total := int64(-1)
	switch {
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
		// Everything is here already (Content-Range: bytes */N with N == have).
		if n, ok := rangeTotal(resp.Header.Get("Content-Range")); ok && n == have {
			return true, nil
		}
		if err := f.Truncate(0); err != nil {
			return false, permanent{fmt.Errorf("firmware: %w", err)}
		}
		return false, fmt.Errorf("firmware: the server's file is shorter than the part downloaded; starting over")
	case resp.StatusCode == http.StatusPartialContent:
		start, n, ok := contentRange(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			return false, fmt.Errorf("firmware: unexpected Content-Range %q for %d bytes held", resp.Header.Get("Content-Range"), have)
		}
		total = n
	case resp.StatusCode == http.StatusOK:
		if err := f.Truncate(0); err != nil {
			return false, permanent{fmt.Errorf("firmware: %w", err)}
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return false, permanent{fmt.Errorf("firmware: %w", err)}
		}
		have, total = 0, resp.ContentLength
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return false, permanent{fmt.Errorf("firmware: GET %s: %s", url, resp.Status)}
	default:
		return false, fmt.Errorf("firmware: GET %s: %s", url, resp.Status)
	}
	if total > MaxPayload*MaxPayloads {
		return false, permanent{fmt.Errorf("firmware: %d bytes is too large for an artifact", total)}
	}
	buf := make([]byte, 64<<10)
	sinceSync := 0
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := f.Write(buf[:n]); err != nil {
				return false, permanent{fmt.Errorf("firmware: %w", err)}
			}
			have += int64(n)
			sinceSync += n
			if sinceSync >= 1<<20 { // what a power cut may lose is bounded
				f.Sync()
				sinceSync = 0
			}
			if progress != nil {
				progress(have, total)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			f.Sync()
			return false, fmt.Errorf("firmware: download cut at %d bytes: %w", have, rerr)
		}
	}
	if err := f.Sync(); err != nil {
		return false, permanent{fmt.Errorf("firmware: %w", err)}
	}
	if total >= 0 && have != total {
		return false, fmt.Errorf("firmware: download cut at %d of %d bytes", have, total)
	}
	return true, nil
}

// contentRange parses "bytes START-END/TOTAL".
func contentRange(s string) (start, total int64, ok bool) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, false
	}
	span, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, false
	}
	a, _, ok := strings.Cut(span, "-")
	if !ok {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	total, err2 := strconv.ParseInt(tot, 10, 64)
	return start, total, err1 == nil && err2 == nil && start >= 0 && total > start
}

// rangeTotal parses "bytes */TOTAL".
func rangeTotal(s string) (int64, bool) {
	t, ok := strings.CutPrefix(s, "bytes */")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(t, 10, 64)
	return n, err == nil
}
