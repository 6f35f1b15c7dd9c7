package tls

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	stdtls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testCert is a freshly generated self-signed certificate valid for
// 127.0.0.1 and localhost, so clients can verify it with a RootCAs pool.
type testCert struct {
	certPEM, keyPEM []byte
	leaf            *x509.Certificate
}

func newTestCert(t *testing.T, cn string) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		leaf:    leaf,
	}
}

func (c testCert) write(t *testing.T, certFile, keyFile string) {
	t.Helper()
	if err := os.WriteFile(certFile, c.certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, c.keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

// startEcho serves a line echo on a loopback TLS listener and stops it when
// the test ends.
func startEcho(t *testing.T, r *CertReloader) string {
	t.Helper()
	ln, err := Listen("tcp", "127.0.0.1:0", r)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// dial connects trusting only want, so a successful handshake already proves
// the server presented that certificate.
func dial(t *testing.T, addr string, want testCert) *stdtls.Conn {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(want.leaf)
	c, err := stdtls.Dial("tcp", addr, &stdtls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("dial expecting %q: %v", want.leaf.Subject.CommonName, err)
	}
	t.Cleanup(func() { c.Close() })
	got := c.ConnectionState().PeerCertificates[0]
	if Fingerprint(got) != Fingerprint(want.leaf) {
		t.Fatalf("served certificate %q, want %q", got.Subject.CommonName, want.leaf.Subject.CommonName)
	}
	return c
}

func echo(t *testing.T, c *stdtls.Conn, msg string) {
	t.Helper()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte(msg + "\r\n")); err != nil {
		t.Fatalf("write: %v", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if line != msg+"\r\n" {
		t.Fatalf("echo = %q, want %q", line, msg+"\r\n")
	}
}

func tempPair(t *testing.T) (certFile, keyFile string) {
	dir := t.TempDir()
	return filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
}

func TestReloadSwapsCertificateForNewConnectionsOnly(t *testing.T) {
	certFile, keyFile := tempPair(t)
	first := newTestCert(t, "first")
	second := newTestCert(t, "second")
	first.write(t, certFile, keyFile)

	r, err := NewCertReloader(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := startEcho(t, r)

	old := dial(t, addr, first)
	echo(t, old, "PING :before")

	second.write(t, certFile, keyFile)
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}

	fresh := dial(t, addr, second)
	echo(t, fresh, "PING :new")
	// The connection negotiated before the reload must be unaffected.
	echo(t, old, "PING :after")
	if got := old.ConnectionState().PeerCertificates[0]; Fingerprint(got) != Fingerprint(first.leaf) {
		t.Fatalf("old connection now reports %q", got.Subject.CommonName)
	}
}

func TestReloadFailureKeepsPreviousCertificate(t *testing.T) {
	certFile, keyFile := tempPair(t)
	first := newTestCert(t, "first")
	first.write(t, certFile, keyFile)
	r, err := NewCertReloader(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := startEcho(t, r)

	cases := []struct {
		name  string
		apply func()
	}{
		{"garbage key", func() {
			if err := os.WriteFile(keyFile, []byte("not a key\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"key from another certificate", func() {
			other := newTestCert(t, "other")
			if err := os.WriteFile(keyFile, other.keyPEM, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated certificate", func() {
			first.write(t, certFile, keyFile)
			if err := os.WriteFile(certFile, first.certPEM[:len(first.certPEM)/2], 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"key file removed", func() {
			first.write(t, certFile, keyFile)
			if err := os.Remove(keyFile); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.apply()
			err := r.Reload()
			if err == nil {
				t.Fatal("Reload succeeded on a broken pair")
			}
			if !strings.Contains(err.Error(), certFile) || !strings.Contains(err.Error(), keyFile) {
				t.Errorf("error %q does not name both files", err)
			}
			c := dial(t, addr, first)
			echo(t, c, "PING :still first")
		})
	}
}

func TestNewCertReloaderMissingFiles(t *testing.T) {
	dir := t.TempDir()
	certFile := filepath.Join(dir, "missing-cert.pem")
	keyFile := filepath.Join(dir, "missing-key.pem")
	r, err := NewCertReloader(certFile, keyFile)
	if err == nil {
		t.Fatal("NewCertReloader succeeded without files")
	}
	if r != nil {
		t.Error("NewCertReloader returned a reloader alongside an error")
	}
	for _, want := range []string{certFile, keyFile} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %q does not say the file is missing", err)
	}
}

func TestConfig(t *testing.T) {
	certFile, keyFile := tempPair(t)
	c := newTestCert(t, "cfg")
	c.write(t, certFile, keyFile)
	r, err := NewCertReloader(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := r.Config()
	if cfg.MinVersion != stdtls.VersionTLS12 {
		t.Errorf("MinVersion = %#x, want TLS 1.2", cfg.MinVersion)
	}
	if cfg.NextProtos != nil {
		t.Errorf("NextProtos = %q, want nil", cfg.NextProtos)
	}
	if cfg.GetCertificate == nil {
		t.Fatal("GetCertificate not set")
	}
	got, err := cfg.GetCertificate(&stdtls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Leaf == nil || Fingerprint(got.Leaf) != Fingerprint(c.leaf) {
		t.Error("GetCertificate did not return the loaded certificate with its leaf")
	}
	if r.Config() == cfg {
		t.Error("Config returned a shared value; callers could mutate each other's settings")
	}
}

func TestMinVersionEnforced(t *testing.T) {
	certFile, keyFile := tempPair(t)
	c := newTestCert(t, "min")
	c.write(t, certFile, keyFile)
	r, err := NewCertReloader(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := startEcho(t, r)
	conn, err := stdtls.Dial("tcp", addr, &stdtls.Config{
		InsecureSkipVerify: true,
		MinVersion:         stdtls.VersionTLS10,
		MaxVersion:         stdtls.VersionTLS11,
	})
	if err == nil {
		conn.Close()
		t.Fatal("handshake with TLS 1.1 succeeded")
	}
	// A local refusal would not prove anything about the server's setting.
	if !strings.Contains(err.Error(), "remote error") {
		t.Fatalf("handshake failed client-side, not by server refusal: %v", err)
	}
}

func TestFingerprint(t *testing.T) {
	c := newTestCert(t, "fp")
	fp := Fingerprint(c.leaf)
	sum := sha256.Sum256(c.leaf.Raw)
	if want := hex.EncodeToString(sum[:]); fp != want {
		t.Errorf("Fingerprint = %q, want %q", fp, want)
	}
	if len(fp) != 64 || strings.ToLower(fp) != fp {
		t.Errorf("Fingerprint %q is not 64 lowercase hex digits", fp)
	}
	if Fingerprint(newTestCert(t, "fp").leaf) == fp {
		t.Error("distinct certificates share a fingerprint")
	}
	if Fingerprint(nil) != "" {
		t.Error("Fingerprint(nil) is not empty")
	}
}

// Run with -race: handshakes read the pointer while reloads replace it.
func TestConcurrentReloadAndHandshake(t *testing.T) {
	certFile, keyFile := tempPair(t)
	c := newTestCert(t, "conc")
	c.write(t, certFile, keyFile)
	r, err := NewCertReloader(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 20 {
				if err := r.Reload(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 200 {
				if cert, err := r.GetCertificate(nil); err != nil || cert == nil {
					t.Error("GetCertificate failed during reload:", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestListenNilReloader(t *testing.T) {
	if ln, err := Listen("tcp", "127.0.0.1:0", nil); err == nil {
		ln.Close()
		t.Fatal("Listen accepted a nil reloader")
	}
}

// ClientCertConfig asks for a client certificate without requiring one or
// checking its issuer, and ClientFingerprint reads what the client sent.
func TestClientCertificate(t *testing.T) {
	certFile, keyFile := tempPair(t)
	newTestCert(t, "server").write(t, certFile, keyFile)
	r, err := NewCertReloader(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := stdtls.Listen("tcp", "127.0.0.1:0", r.ClientCertConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	client := newTestCert(t, "client") // self-signed: no authority vouches for it
	pair, err := stdtls.X509KeyPair(client.certPEM, client.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		certs []stdtls.Certificate
		want  string
	}{
		{"with a certificate", []stdtls.Certificate{pair}, Fingerprint(client.leaf)},
		{"without one", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan string, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					done <- "accept: " + err.Error()
					return
				}
				defer c.Close()
				if err := c.(*stdtls.Conn).Handshake(); err != nil {
					done <- "handshake: " + err.Error()
					return
				}
				fp, isTLS := ClientFingerprint(c)
				if !isTLS {
					fp = "not TLS"
				}
				done <- fp
			}()
			c, err := stdtls.Dial("tcp", ln.Addr().String(), &stdtls.Config{InsecureSkipVerify: true, Certificates: tc.certs})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := <-done; got != tc.want {
				t.Errorf("fingerprint %q, want %q", got, tc.want)
			}
		})
	}
	plain, peer := net.Pipe()
	defer plain.Close()
	defer peer.Close()
	if fp, isTLS := ClientFingerprint(plain); fp != "" || isTLS {
		t.Errorf("a plain connection: %q, %v", fp, isTLS)
	}
}
