package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/gateway"
	"github.com/walletless/walletless/internal/testpki"
)

// writeCA makes a throwaway CA in dir and returns its file and an issuer of
// certificates signed by it (server: for 127.0.0.1).
func writeCA(t *testing.T, dir, name string) (caFile string, issue func(cn string, server bool) (cert, key string)) {
	t.Helper()
	ca := testpki.New(t, dir, name)
	return ca.File, func(cn string, server bool) (string, string) { return ca.Issue(t, cn, server) }
}

// TestFlagsTLSRefused: inconsistent or unusable ledger TLS settings fail at startup
// with the flag or file named, before the ledger is opened.
func TestFlagsTLSRefused(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	ca, issue := writeCA(t, dir, "ledger")
	cert, key := issue("owner", true)
	ccert, ckey := issue("front", false)
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not PEM\n"), 0o600)
	listen := []string{"-data", data, "-instances", "0", "-ledger-listen", "127.0.0.1:0"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{append(listen, "-ledger-cert", cert), "together"},
		{append(listen, "-ledger-key", key), "together"},
		{append(listen, "-ledger-client-ca", ca), "-ledger-client-ca needs -ledger-cert"},
		{append(listen, "-ledger-cert", missing, "-ledger-key", key), missing},
		{append(listen, "-ledger-cert", cert, "-ledger-key", garbage), garbage},
		{append(listen, "-ledger-cert", cert, "-ledger-key", ckey), ckey}, // key of another certificate
		{append(listen, "-ledger-cert", cert, "-ledger-key", key, "-ledger-client-ca", garbage), garbage},
		{[]string{"-data", data, "-instances", "0", "-ledger-listen", "0.0.0.0:0", "-ledger-cert", cert, "-ledger-key", key}, "non-loopback"},
		{[]string{"-data", data, "-ledger-cert", cert, "-ledger-key", key}, "need -ledger-listen"},
		{[]string{"-ledger-url", "http://127.0.0.1:7601", "-ledger-ca", ca}, "https://"},
		{[]string{"-ledger-url", "http://127.0.0.1:7601", "-ledger-client-cert", ccert, "-ledger-client-key", ckey}, "https://"},
		{[]string{"-data", data, "-ledger-ca", ca}, "need -ledger-url"},
		{[]string{"-ledger-url", "https://127.0.0.1:7601", "-ledger-client-cert", ccert}, "together"},
		{[]string{"-ledger-url", "https://127.0.0.1:7601", "-ledger-client-key", ckey}, "together"},
		{[]string{"-ledger-url", "https://127.0.0.1:7601", "-ledger-ca", missing}, missing},
		{[]string{"-ledger-url", "https://127.0.0.1:7601", "-ledger-ca", garbage}, garbage},
		{[]string{"-ledger-url", "https://127.0.0.1:7601", "-ledger-client-cert", garbage, "-ledger-client-key", ckey}, garbage},
		{[]string{"ledger", "-ledger-url", "http://127.0.0.1:7601", "-ledger-ca", ca}, "https://"},
		{[]string{"ledger", "-ledger-url", "https://127.0.0.1:7601", "-ledger-ca", missing}, missing},
		{[]string{"ledger", "-data", data, "-ledger-client-cert", ccert, "-ledger-client-key", ckey}, "need -ledger-url"},
	} {
		err := run(context.Background(), c.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error with %q", c.args, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(data, ledgerFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused start opened the ledger: %v", err)
	}
}

// TestLedgerOverMutualTLS: a ledger server started with -ledger-cert, -ledger-key and
// -ledger-client-ca is read by posgw ledger with -ledger-ca and a client
// certificate, and refuses it without the certificate.
func TestLedgerOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, issue := writeCA(t, dir, "ledger")
	cert, key := issue("owner", true)
	ccert, ckey := issue("front", false)
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("0123456789abcdef-cmd-test\n"), 0o600)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-data", filepath.Join(dir, "data"), "-instances", "0", "-ledger-listen", addr,
			"-ledger-token-file", tok, "-ledger-cert", cert, "-ledger-key", key, "-ledger-client-ca", ca}, io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("owner: %v", err)
		}
	}()
	read := []string{"ledger", "-ledger-url", "https://" + addr, "-ledger-token-file", tok, "-ledger-ca", ca}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := run(context.Background(), append(read, "-ledger-client-cert", ccert, "-ledger-client-key", ckey, "-totals"), io.Discard, io.Discard)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("posgw ledger over mutual TLS: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	err = run(context.Background(), read, io.Discard, io.Discard)
	if !errors.Is(err, gateway.ErrLedgerTLS) && !errors.Is(err, gateway.ErrLedgerUnreachable) {
		t.Errorf("posgw ledger without a client certificate: %v, want a refused handshake", err)
	}
}
