package scanner

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The peers are zxing-cpp and zbar in-process: scanner/testdata/peer/peer.cc, built
// here against Debian's libzxing-dev and libzbar-dev, decodes the same gray bytes.
const peerInstall = "apt-get install -y libzxing-dev libzbar-dev g++ pkg-config"

// buildPeer compiles the peer program into a temporary directory. Without the
// compiler or libraries it fails the test when CI=true and skips it otherwise.
func buildPeer(tb testing.TB) string {
	tb.Helper()
	missing := func(what string, err error) string {
		msg := fmt.Sprintf("%s (%v): install the peers with %s", what, err, peerInstall)
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
		return ""
	}
	for _, bin := range []string{"g++", "pkg-config"} {
		if _, err := exec.LookPath(bin); err != nil {
			return missing(bin+" not found", err)
		}
	}
	flags, err := exec.Command("pkg-config", "--cflags", "--libs", "zxing", "zbar").Output()
	if err != nil {
		return missing("pkg-config finds no zxing and zbar", err)
	}
	src, err := filepath.Abs(filepath.Join("testdata", "peer", "peer.cc"))
	if err != nil {
		tb.Fatal(err)
	}
	out := filepath.Join(tb.TempDir(), "peer")
	args := append([]string{"-O2", "-std=c++17", "-o", out, src}, strings.Fields(string(flags))...)
	if msg, err := exec.Command("g++", args...).CombinedOutput(); err != nil {
		tb.Fatalf("building the peer: %v\n%s", err, msg)
	}
	return out
}

// peerResult is one library's result on one frame.
type peerResult struct {
	median, min time.Duration
	text        string
}

// runPeer writes frames as raw gray files, decodes each reps times with both peers
// and returns results by frame name and library ("zxing-cpp", "zbar").
func runPeer(tb testing.TB, peer string, frames []benchFrame, reps int) map[string]map[string]peerResult {
	tb.Helper()
	dir := tb.TempDir()
	var manifest bytes.Buffer
	for _, f := range frames {
		g := f.g
		raw := make([]byte, 0, g.Width*g.Height)
		for y := 0; y < g.Height; y++ {
			raw = append(raw, g.Pix[y*g.stride():y*g.stride()+g.Width]...)
		}
		p := filepath.Join(dir, f.name+".gray")
		if err := os.WriteFile(p, raw, 0o644); err != nil {
			tb.Fatal(err)
		}
		fmt.Fprintf(&manifest, "%s %d %d %s\n", f.name, g.Width, g.Height, p)
	}
	mf := filepath.Join(dir, "frames.txt")
	if err := os.WriteFile(mf, manifest.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(peer, mf, strconv.Itoa(reps))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("peer: %v", err)
	}
	res := map[string]map[string]peerResult{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 5 {
			tb.Fatalf("peer output %q", sc.Text())
		}
		med, err1 := strconv.ParseInt(f[2], 10, 64)
		mn, err2 := strconv.ParseInt(f[3], 10, 64)
		text, err3 := hex.DecodeString(f[4])
		if err1 != nil || err2 != nil || err3 != nil {
			tb.Fatalf("peer output %q", sc.Text())
		}
		if res[f[0]] == nil {
			res[f[0]] = map[string]peerResult{}
		}
		res[f[0]][f[1]] = peerResult{time.Duration(med), time.Duration(mn), string(text)}
	}
	if len(res) != len(frames) {
		tb.Fatalf("peer answered for %d of %d frames", len(res), len(frames))
	}
	return res
}

// timeOurs decodes a frame reps times with a warmed decoder (as a camera runs it: the
// full Decode, harder pass included) and returns the median and minimum.
func timeOurs(d *Decoder, g Gray, reps int) peerResult {
	r, err := d.Decode(g) // warm-up, and the result
	res := peerResult{}
	if err == nil {
		res.text = r.Text
	}
	ns := make([]time.Duration, reps)
	for i := range ns {
		t0 := time.Now()
		d.Decode(g)
		ns[i] = time.Since(t0)
	}
	slices.Sort(ns)
	res.median, res.min = ns[reps/2], ns[0]
	return res
}

// TestReadsWhatPeersRead decodes every frame class and checks that we read each frame
// that zxing-cpp or zbar reads, with the right text, and never read a wrong one.
func TestReadsWhatPeersRead(t *testing.T) {
	peer := buildPeer(t)
	var frames []benchFrame
	for _, sz := range frameSizes {
		frames = append(frames, codeFrames(t, sz[0], sz[1])...)
	}
	peers := runPeer(t, peer, frames, 1)
	d := NewDecoder(DecodeOptions{})
	var ours, zx, zb int
	for _, f := range frames {
		r, err := d.Decode(f.g)
		if err == nil {
			ours++
			if r.Text != f.want {
				t.Errorf("%s: we read %q, want %q", f.name, r.Text, f.want)
			}
		}
		for _, lib := range []string{"zxing-cpp", "zbar"} {
			p := peers[f.name][lib]
			if p.text == "" {
				continue
			}
			if lib == "zxing-cpp" {
				zx++
			} else {
				zb++
			}
			if err != nil {
				t.Errorf("%s: %s reads it, we read nothing", f.name, lib)
			}
		}
	}
	t.Logf("%d frames with a code: we read %d, zxing-cpp %d, zbar %d", len(frames), ours, zx, zb)
}

// BenchmarkPeers prints, per frame class and size, our decode time beside zxing-cpp's
// and zbar's in-process on the same gray bytes (the fastest of reps decodes each,
// after a warm-up), what each read, and the ratios. Run it with make bench, or alone:
//
//	go test ./scanner -run '^$' -bench '^BenchmarkPeers$' -benchtime 1x
//
// The machine's load changes absolute times; the ratios are within one run.
func BenchmarkPeers(b *testing.B) {
	peer := buildPeer(b)
	reps := 9
	if v, err := strconv.Atoi(os.Getenv("PEER_REPS")); err == nil && v > 0 {
		reps = v
	}
	var frames []benchFrame
	for _, sz := range frameSizes {
		frames = append(frames, codeFrames(b, sz[0], sz[1])...)
		frames = append(frames, emptyFrames(sz[0], sz[1], 4, 1)...)
	}
	for b.Loop() {
		d := NewDecoder(DecodeOptions{})
		var tbl strings.Builder
		fmt.Fprintf(&tbl, "\nfastest of %d decodes per frame (min-of-N: the machine is shared), in ms; reads: ours/zxing-cpp/zbar\n", reps)
		fmt.Fprintf(&tbl, "%-28s %8s %8s %8s %7s %7s  %s\n", "frame", "ours", "zxing", "zbar", "/zxing", "/zbar", "reads")
		type sum struct {
			ours, zx, zb time.Duration
			n            int
			rOurs, rZx   int
			rZb          int
		}
		sums := map[string]*sum{}
		for _, f := range frames {
			// frame by frame, the peers then ours, so that the machine's load
			// changes as little as possible between the figures compared
			peers := runPeer(b, peer, []benchFrame{f}, reps)
			o := timeOurs(d, f.g, reps)
			zx, zb := peers[f.name]["zxing-cpp"], peers[f.name]["zbar"]
			read := func(s string) string {
				switch {
				case s == "":
					return "-"
				case f.want != "" && s != f.want:
					return "WRONG"
				}
				return "y"
			}
			fmt.Fprintf(&tbl, "%-28s %8.2f %8.2f %8.2f %7.2f %7.2f  %s/%s/%s\n", f.name,
				ms(o.min), ms(zx.min), ms(zb.min), ratio(o.min, zx.min), ratio(o.min, zb.min),
				read(o.text), read(zx.text), read(zb.text))
			group := "with a code"
			if f.want == "" {
				group = "empty"
			}
			group += fmt.Sprintf(" %dx%d", f.g.Width, f.g.Height)
			s := sums[group]
			if s == nil {
				s = &sum{}
				sums[group] = s
			}
			s.ours += o.min
			s.zx += zx.min
			s.zb += zb.min
			s.n++
			for _, c := range []struct {
				text string
				n    *int
			}{{o.text, &s.rOurs}, {zx.text, &s.rZx}, {zb.text, &s.rZb}} {
				if c.text != "" && c.text == f.want {
					*c.n++
				}
			}
			if f.want == "" && o.text != "" {
				b.Errorf("%s: false read", f.name)
			}
		}
		fmt.Fprintf(&tbl, "\ntotals (sum of minima, ms)     ours    zxing     zbar  /zxing   /zbar  reads ours/zxing-cpp/zbar\n")
		keys := make([]string, 0, len(sums))
		for k := range sums {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			s := sums[k]
			fmt.Fprintf(&tbl, "%-26s %8.1f %8.1f %8.1f %7.2f %7.2f  %d/%d/%d of %d\n", k, ms(s.ours), ms(s.zx), ms(s.zb),
				ratio(s.ours, s.zx), ratio(s.ours, s.zb), s.rOurs, s.rZx, s.rZb, s.n)
		}
		fmt.Print(tbl.String())
	}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// TestDecodeRawFrames decodes the frames of the manifest in $SCANNER_RAW_MANIFEST (as
// peer.cc reads it) once each, for instruction counts under valgrind (stable on a
// shared machine, unlike times), e.g.:
//
//	valgrind --tool=callgrind --toggle-collect='*scanner.(*Decoder).Decode' \
//	  ./scanner.test -test.run '^TestDecodeRawFrames$'
//
// Without the variable it does nothing.
func TestDecodeRawFrames(t *testing.T) {
	mf := os.Getenv("SCANNER_RAW_MANIFEST")
	if mf == "" {
		t.Skip("SCANNER_RAW_MANIFEST not set")
	}
	b, err := os.ReadFile(mf)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(DecodeOptions{})
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var name, path string
		var w, h int
		if _, err := fmt.Sscan(line, &name, &w, &h, &path); err != nil {
			t.Fatalf("manifest line %q: %v", line, err)
		}
		pix, err := os.ReadFile(path)
		if err != nil || len(pix) < w*h {
			t.Fatalf("%s: %v", path, err)
		}
		r, err := d.Decode(Gray{Pix: pix, Width: w, Height: h})
		t.Logf("%s: %v %v", name, r, err)
	}
}

// TestWriteRawFrames writes the benchmark frames as raw gray files and a manifest for
// peer.cc and TestDecodeRawFrames into -frames-out (with -frames-raw).
func TestWriteRawFrames(t *testing.T) {
	if *framesOut == "" || !*framesRaw {
		t.Skip("no -frames-out directory with -frames-raw")
	}
	var frames []benchFrame
	for _, sz := range frameSizes {
		frames = append(frames, codeFrames(t, sz[0], sz[1])...)
		frames = append(frames, emptyFrames(sz[0], sz[1], 4, 1)...)
	}
	os.MkdirAll(*framesOut, 0o755)
	var manifest bytes.Buffer
	for _, f := range frames {
		p := filepath.Join(*framesOut, f.name+".gray")
		if err := os.WriteFile(p, f.g.Pix, 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&manifest, "%s %d %d %s\n", f.name, f.g.Width, f.g.Height, p)
	}
	if err := os.WriteFile(filepath.Join(*framesOut, "frames.txt"), manifest.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

var framesRaw = flag.Bool("frames-raw", false, "TestWriteRawFrames writes raw gray frames and a manifest")
