package session

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	// Registers the Olm implementation that the build tags chose.
	_ "maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/olm"
)

// A build without the goolm tag must stop at goolm_required.go with a
// message that says what to do, not quietly link libolm.
func TestBuildWithoutGoolmTagFails(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", ".")
	// GOFLAGS could carry -tags=goolm and hide the guard.
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("go build without -tags goolm succeeded; it must fail at the guard\n%s", out)
	}
	if !strings.Contains(string(out), "mxircd_must_be_built_with_tags_goolm__see_README") {
		t.Fatalf("go build without -tags goolm failed without naming the fix:\n%s", out)
	}
}

// The crypto the sessions will use is goolm, and it works.
func TestOlmIsGoolm(t *testing.T) {
	if olm.Driver != "goolm" {
		t.Fatalf("Olm implementation is %q, want goolm (pure Go, no libolm)", olm.Driver)
	}
	account, err := olm.NewAccount()
	if err != nil {
		t.Fatalf("new Olm account: %v", err)
	}
	signing, identity, err := account.IdentityKeys()
	if err != nil || signing == "" || identity == "" {
		t.Fatalf("identity keys %q %q: %v", signing, identity, err)
	}
}
