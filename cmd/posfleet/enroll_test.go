package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walletless/walletless/pairing"
)

// lockedBuffer is a bytes.Buffer written by a server goroutine and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestEnrollServerAnswersEST: posfleet enroll-server, as a fleet runs it, answers
// posd's enrollment client with EST's certs-only PKCS#7 (its log says so) and hands
// out the CA at cacerts.
func TestEnrollServerAnswersEST(t *testing.T) {
	dir := t.TempDir()
	if _, e, code := runCLI(t, "keygen", "-o", filepath.Join(dir, "key")); code != 0 {
		t.Fatalf("keygen: %s", e)
	}
	if _, e, code := runCLI(t, "provision", "-init-ca", filepath.Join(dir, "ca"), "-hosts", "127.0.0.1"); code != 0 {
		t.Fatalf("init-ca: %s", e)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	secrets := filepath.Join(dir, "secrets.json")
	if _, e, code := runCLI(t, "provision", "-device-id", "shop-21", "-broker", "ssl://127.0.0.1:8883", "-enroll-url", "https://"+addr,
		"-key", filepath.Join(dir, "key", "posfleet.key"), "-ca", filepath.Join(dir, "ca", "ca.crt"),
		"-secrets", secrets, "-o", filepath.Join(dir, "qr.png"), "-text", filepath.Join(dir, "qr.txt")); code != 0 {
		t.Fatalf("provision: %s", e)
	}
	text, err := os.ReadFile(filepath.Join(dir, "qr.txt"))
	if err != nil {
		t.Fatal(err)
	}
	q, err := pairing.Parse(string(text))
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var logs lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"enroll-server", "-listen", addr, "-ca", filepath.Join(dir, "ca", "ca.crt"), "-ca-key", filepath.Join(dir, "ca", "ca.key"),
			"-cert", filepath.Join(dir, "ca", "server.crt"), "-key", filepath.Join(dir, "ca", "server.key"), "-secrets", secrets}, io.Discard, &logs)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("enroll-server exited %d: %s", code, logs.String())
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("enroll-server does not listen: %s", logs.String())
		}
	}

	e, err := pairing.Enroll(ctx, q.Payload, 10*time.Second)
	if err != nil {
		t.Fatalf("enroll: %v\n%s", err, logs.String())
	}
	if e.Cert.Subject.CommonName != "shop-21" {
		t.Fatalf("enrolled %v", e.Cert.Subject)
	}
	want := fmt.Sprintf("msg=\"enrollment answered\" component=enroll-server device=shop-21 content_type=%q", pairing.CertsOnlyContentType)
	if !strings.Contains(logs.String(), want) {
		t.Fatalf("the log does not say the answer was certs-only (%s):\n%s", want, logs.String())
	}

	ca, err := pairing.ReadCert(filepath.Join(dir, "ca", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + addr + pairing.CACertsPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != pairing.CertsOnlyContentType {
		t.Fatalf("cacerts: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	certs, err := pairing.ParseCertsOnly(body)
	if err != nil || len(certs) != 1 || !certs[0].Equal(ca) {
		t.Fatalf("cacerts: %d certificates, %v", len(certs), err)
	}
}
