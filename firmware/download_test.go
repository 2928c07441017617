package firmware

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	stdsync "sync"
	"testing"
	"time"
)

// cuttingServer serves body with Range support; the first len(cuts) responses are
// cut (the connection closed) after cuts[i] bytes. It records each Range header.
type cuttingServer struct {
	body []byte
	cuts []int
	mu   stdsync.Mutex
	reqs []string // guarded by mu
}

func (s *cuttingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := len(s.reqs)
	s.reqs = append(s.reqs, r.Header.Get("Range"))
	s.mu.Unlock()
	start := 0
	if rg := r.Header.Get("Range"); rg != "" {
		v, err := strconv.Atoi(rg[len("bytes=") : len(rg)-1])
		if err != nil || v >= len(s.body) {
			w.Header().Set("Content-Range", "bytes */"+strconv.Itoa(len(s.body)))
			http.Error(w, "bad range", http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start = v
		w.Header().Set("Content-Range", "bytes "+strconv.Itoa(start)+"-"+strconv.Itoa(len(s.body)-1)+"/"+strconv.Itoa(len(s.body)))
		w.Header().Set("Content-Length", strconv.Itoa(len(s.body)-start))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(s.body)))
		w.WriteHeader(http.StatusOK)
	}
	rest := s.body[start:]
	if n < len(s.cuts) {
		w.Write(rest[:s.cuts[n]])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	w.Write(rest)
}

func (s *cuttingServer) ranges() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reqs...)
}

// TestDownloadCutTwiceResumes: the connection is cut twice mid-way; each retry asks
// only for the bytes not yet on disk, and the file ends complete and exact.
func TestDownloadCutTwiceResumes(t *testing.T) {
	body := make([]byte, 300_000)
	rand.Read(body)
	srv := &cuttingServer{body: body, cuts: []int{100_000, 50_000}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	path := filepath.Join(t.TempDir(), "download.wlf")
	if err := Download(context.Background(), ts.Client(), ts.URL+"/fw.wlf", path, 5, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, body) {
		t.Fatalf("downloaded %d bytes, not the served file", len(got))
	}
	want := []string{"", "bytes=100000-", "bytes=150000-"}
	if r := srv.ranges(); len(r) != 3 || r[0] != want[0] || r[1] != want[1] || r[2] != want[2] {
		t.Errorf("Range headers %q, want %q", r, want)
	}
}

// TestDownloadResumesAfterPowerLoss: a part on disk from before a restart is kept.
func TestDownloadResumesAfterPowerLoss(t *testing.T) {
	body := bytes.Repeat([]byte("walletless"), 20_000)
	srv := &cuttingServer{body: body}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	path := filepath.Join(t.TempDir(), "download.wlf")
	os.WriteFile(path, body[:123_456], 0o600)
	if err := Download(context.Background(), ts.Client(), ts.URL, path, 1, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, body) {
		t.Fatal("wrong content")
	}
	if r := srv.ranges(); len(r) != 1 || r[0] != "bytes=123456-" {
		t.Errorf("Range headers %q", r)
	}
	// Complete already: the server answers 416 with the size, nothing is fetched.
	if err := Download(context.Background(), ts.Client(), ts.URL, path, 1, nil); err != nil {
		t.Fatal(err)
	}
}

func TestDownloadNotFoundIsPermanent(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	defer ts.Close()
	err := Download(context.Background(), ts.Client(), ts.URL, filepath.Join(t.TempDir(), "x"), 0, nil)
	if err == nil {
		t.Fatal("a 404 succeeded")
	}
}

func TestWatchFindsNewFiles(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	found := make(chan string, 10)
	done := make(chan struct{})
	go func() {
		Watch(ctx, dir, 10*time.Millisecond, func(p string) { found <- filepath.Base(p) })
		close(done)
	}()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, "posd-2.0.WLF"), []byte("x"), 0o600)
	if got := <-found; got != "posd-2.0.WLF" {
		t.Fatalf("found %q", got)
	}
	os.WriteFile(filepath.Join(dir, "posd-2.1.wlf"), []byte("x"), 0o600)
	if got := <-found; got != "posd-2.1.wlf" {
		t.Fatalf("found %q", got)
	}
	cancel()
	<-done
	select {
	case f := <-found:
		t.Fatalf("found %q twice", f)
	default:
	}
}
