package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dist/mxircd.service is what the README tells operators to install: it
// must be a unit systemd accepts, start the binary with flags the binary
// has, keep its state where the README says, and stay hardened.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join("..", "..", "dist", "mxircd.service"))
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(string(unit)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			keys[k] = append(keys[k], v)
		}
	}
	for k, want := range map[string]string{
		"ExecStart":      "/usr/local/bin/mxircd -config /etc/mxircd/config.toml",
		"DynamicUser":    "yes",
		"StateDirectory": "mxircd",
		// The shipped config's relative store.path resolves here.
		"WorkingDirectory": "/var/lib/mxircd",
		"ProtectSystem":    "strict",
		"KillSignal":       "SIGTERM",
	} {
		if got := keys[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	// Every flag the unit passes is one the binary defines.
	for _, arg := range strings.Fields(keys["ExecStart"][0])[1:] {
		if strings.HasPrefix(arg, "-") && arg != "-config" {
			t.Errorf("ExecStart passes %s, which main does not define", arg)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze here to check the unit with")
	}
	// systemd checks that ExecStart exists: point it at a real executable.
	dir := t.TempDir()
	checked := strings.Replace(string(unit), "ExecStart=/usr/local/bin/mxircd", "ExecStart=/bin/true", 1)
	path := filepath.Join(dir, "mxircd.service")
	if err := os.WriteFile(path, []byte(checked), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// systemd's own exposure score, 0 (locked down) to 10 (unprotected):
	// the unit stays below 2 ("OK").
	if out, err := exec.Command(analyze, "security", "--offline=true", "--threshold=20", path).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0: %v\n%s", err, out)
	}
}
