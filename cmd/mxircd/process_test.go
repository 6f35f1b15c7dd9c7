package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxircd/mxircd/internal/testenv"
)

// The mxircd binary, as an operator runs it: SIGHUP reloads the TLS
// certificate without dropping connections, and SIGTERM tells every client
// the server is shutting down and exits 0.
func TestProcessSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	hs := testenv.SharedHomeserver(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "mxircd")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if out, err := exec.Command(goBin, "build", "-tags", "goolm", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, certPath, keyPath, 1)
	plainAddr, tlsAddr := freeAddr(t), freeAddr(t)
	config := fmt.Sprintf(`
[irc]
listen = [%q]
[irc.tls]
listen = [%q]
cert = %q
key = %q
[matrix]
homeserver = %q
server_name = %q
[store]
path = %q
`, plainAddr, tlsAddr, certPath, keyPath, hs.URL, hs.ServerName, filepath.Join(dir, "data", "mxircd.db"))
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "-config", configPath)
	logFile, err := os.Create(filepath.Join(dir, "mxircd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			log, _ := os.ReadFile(logFile.Name())
			t.Logf("mxircd log:\n%s", log)
		}
	})
	waitListening(t, plainAddr)

	alice := hs.Register(t, "alice")
	c := testenv.DialIRC(t, plainAddr)
	c.Register(t, "alice", alice.UserID.String(), alice.Password)
	c.Drain(t)

	oldTLS, serial := dialTLS(t, tlsAddr)
	if serial != 1 {
		t.Fatalf("served certificate serial %d, want 1", serial)
	}
	writeCert(t, certPath, keyPath, 2)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, serial := dialTLS(t, tlsAddr)
		conn.Close()
		if serial == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload the certificate")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The connection made with the old certificate is still served.
	fmt.Fprintf(oldTLS, "PING :still-here\r\n")
	oldTLS.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(oldTLS).ReadString('\n')
	if err != nil || !strings.Contains(line, "still-here") {
		t.Fatalf("old TLS connection after reload: %q, %v", line, err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	m := c.Expect(t, "ERROR")
	if !strings.Contains(m.Trailing(), "shutting down") {
		t.Errorf("ERROR = %s", m)
	}
	c.ExpectClosed(t)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("mxircd exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("mxircd did not exit after SIGTERM")
	}
}

func writeCert(t *testing.T, certPath, keyPath string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "mxircd test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// dialTLS connects and returns the connection with the serial number of
// the certificate the server presented.
func dialTLS(t *testing.T, addr string) (*tls.Conn, int64) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	return conn, conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("mxircd never listened on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
