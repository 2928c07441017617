package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

func TestScanTestStdin(t *testing.T) {
	in := "286512345678901234\r\n]Q1134567890123456789\n]C0ABC-1\r\n"
	code, out, errOut := runPosctl(t, in, "scan-test", "-source", "stdin")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "286512345678901234") || !strings.Contains(out, "…1234#") {
		t.Errorf("codes not masked:\n%s", out)
	}
	for _, want := range []string{"alipay", "qr", "wechatpay", "code128"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "3 scans") {
		t.Errorf("summary missing:\n%s", errOut)
	}
	code, out, _ = runPosctl(t, in, "scan-test", "-source", "stdin", "-reveal", "-json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 {
		t.Fatalf("exit %d, %q", code, out)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first["code"] != "286512345678901234" || first["scheme"] != "alipay" {
		t.Errorf("first JSON line %q (%v)", lines[0], err)
	}
	if code, _, _ := runPosctl(t, "", "scan-test", "-source", "stdin"); code != 1 {
		t.Errorf("no scans: exit %d, want 1", code)
	}
	if code, _, errOut := runPosctl(t, "", "scan-test", "-source", "stdin", "-framing", "tab"); code != 1 || !strings.Contains(errOut, "framing") {
		t.Errorf("bad framing: exit %d, %q", code, errOut)
	}
}

func TestScanTestSerial(t *testing.T) {
	m, s, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo terminals: %v", err)
	}
	defer m.Close()
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb syncWriter
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"scan-test", "-source", s.Name(), "-n", "2"}, strings.NewReader(""), &out, &errb)
	}()
	// Wait until the port is open, then scan twice.
	for i := 0; i < 2000 && !strings.Contains(errb.String(), "scanner connected"); i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := m.Write([]byte("]Q1286512345678901234\r\n]C0ABC\r\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-ctx.Done():
		t.Fatalf("scan-test did not stop after -n 2: %s", errb.String())
	}
	if got := out.String(); !strings.Contains(got, "qr") || !strings.Contains(got, "code128") || strings.Contains(got, "286512345678901234") {
		t.Errorf("output:\n%s", got)
	}
}

// syncWriter is a goroutine-safe bytes.Buffer.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
