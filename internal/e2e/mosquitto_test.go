package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walletless/walletless/internal/testpki"
	"github.com/walletless/walletless/internal/wirecheck"
)

// password is every test user's MQTT password.
const password = "test-secret"

// mosqOpts say how to run mosquitto from deploy/mosquitto.conf.
type mosqOpts struct {
	persistence bool                    // keep persistence on (the deploy file's setting) or turn it off
	users       []string                // users in the password file (posgw, posfleet and device ids)
	tls         bool                    // keep the mutual-TLS listener (certificates are generated)
	nagle       bool                    // set_tcp_nodelay false (mosquitto's default) instead of the deploy file's true
	wireSkip    func(topic string) bool // topics the schema watcher leaves out (a test's own malformed publishes)
}

// mosq is a mosquitto process run with the deploy configuration on free loopback
// ports. It can be stopped and started again on the same ports.
type mosq struct {
	t       testing.TB
	bin     string
	dir     string
	conf    string
	port    int
	tlsPort int
	pki     *pki
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	out     *lockedWriter
	wire    *wirecheck.Watcher // validates every payload against docs/schema/v1
}

// newMosquitto writes the configuration and starts the broker.
func newMosquitto(t testing.TB, o mosqOpts) *mosq {
	t.Helper()
	bin := need(t, "mosquitto", "mosquitto", "/usr/sbin/mosquitto")
	passwd := need(t, "mosquitto_passwd", "mosquitto")
	dir := t.TempDir()
	m := &mosq{t: t, bin: bin, dir: dir, port: freePort(t)}
	if o.tls {
		m.tlsPort = freePort(t)
		m.pki = newPKI(t, dir)
	}
	pwFile := filepath.Join(dir, "passwd")
	for i, u := range append([]string{"posgw", "posfleet", "wirecheck"}, o.users...) {
		args := []string{"-b", pwFile, u, password}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(passwd, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
		}
	}
	// The deploy ACL plus a read-everything user for the schema watcher (wirecheck).
	deployACL, err := os.ReadFile("../../deploy/walletless.acl")
	if err != nil {
		t.Fatal(err)
	}
	acl := filepath.Join(dir, "walletless.acl")
	if err := os.WriteFile(acl, append([]byte("user wirecheck\ntopic read walletless/v1/devices/#\n\n"), deployACL...), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../../deploy/mosquitto.conf")
	if err != nil {
		t.Fatal(err)
	}
	var conf strings.Builder
	listeners := 0
	sc := bufio.NewScanner(strings.NewReader(string(src)))
	for sc.Scan() {
		line := sc.Text()
		key, _, _ := strings.Cut(line, " ")
		switch key {
		case "persistence":
			line = fmt.Sprintf("persistence %t", o.persistence)
		case "set_tcp_nodelay":
			if o.nagle {
				line = "set_tcp_nodelay false"
			}
		case "persistence_location":
			line = "persistence_location " + dir + "/"
		case "password_file":
			line = "password_file " + pwFile
		case "acl_file":
			line = "acl_file " + acl
		case "listener":
			listeners++
			if listeners == 1 {
				line = fmt.Sprintf("listener %d 127.0.0.1", m.port)
			} else if o.tls {
				line = fmt.Sprintf("listener %d 127.0.0.1", m.tlsPort)
			} else {
				line = "" // the rest of the file is the TLS listener
				conf.WriteString("\n")
				goto done
			}
		case "cafile":
			line = "cafile " + m.pki.ca
		case "certfile":
			line = "certfile " + m.pki.brokerCert
		case "keyfile":
			line = "keyfile " + m.pki.brokerKey
		}
		conf.WriteString(line + "\n")
	}
done:
	if os.Geteuid() == 0 {
		// As root mosquitto drops to user "mosquitto", who cannot read the test's files.
		conf.WriteString("user root\n")
	}
	if listeners == 0 {
		t.Fatal("deploy/mosquitto.conf has no listener")
	}
	m.conf = filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(m.conf, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	m.start()
	t.Cleanup(func() {
		m.kill()
		if t.Failed() {
			t.Logf("--- mosquitto output (last 4 KiB):\n%s", tail(m.out.String(), 4096))
		}
	})
	// Every payload published through this broker is checked against docs/schema/v1.
	m.wire = wirecheck.Watch(t, m.URL(), wirecheck.Options{Username: "wirecheck", Password: password, Skip: o.wireSkip})
	return m
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// URL is the plain listener's address.
func (m *mosq) URL() string { return fmt.Sprintf("tcp://127.0.0.1:%d", m.port) }

// Addr is the plain listener's host:port.
func (m *mosq) Addr() string { return fmt.Sprintf("127.0.0.1:%d", m.port) }

// TLSURL is the mutual-TLS listener's address.
func (m *mosq) TLSURL() string { return fmt.Sprintf("ssl://127.0.0.1:%d", m.tlsPort) }

func (m *mosq) start() {
	m.t.Helper()
	if m.out == nil {
		m.out = &lockedWriter{w: new(bytes.Buffer)}
	}
	cmd := exec.Command(m.bin, "-c", m.conf)
	cmd.Stdout, cmd.Stderr = m.out, m.out
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	m.cmd = cmd
	exited := make(chan struct{})
	m.exited = exited
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", m.Addr())
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			m.t.Fatalf("mosquitto exited:\n%s", m.out.String())
		default:
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mosquitto never listened on %s:\n%s", m.Addr(), m.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends mosquitto cleanly (SIGTERM: persistence is written).
func (m *mosq) stop() {
	m.t.Helper()
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(20 * time.Second):
		m.cmd.Process.Kill()
		<-m.exited
		m.t.Error("mosquitto did not stop on SIGTERM")
	}
	m.cmd = nil
}

// kill ends mosquitto at once (nothing more is written).
func (m *mosq) kill() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Kill()
	<-m.exited
	m.cmd = nil
}

// pki is a throwaway CA with a broker certificate and device certificates.
type pki struct {
	*testpki.CA
	ca                    string // the CA file
	brokerCert, brokerKey string
}

func newPKI(t testing.TB, dir string) *pki {
	t.Helper()
	p := &pki{CA: testpki.New(t, dir, "walletless-test")}
	p.ca = p.File
	p.brokerCert, p.brokerKey = p.Issue(t, "broker", true)
	return p
}

// issue makes a certificate with CommonName cn signed by the CA (a server
// certificate for 127.0.0.1 when server is set) and returns the PEM file names.
func (p *pki) issue(t testing.TB, cn string, server bool) (certFile, keyFile string) {
	t.Helper()
	return p.Issue(t, cn, server)
}
