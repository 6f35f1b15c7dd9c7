package testenv

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// A second holder of a cache lock waits for the first, and says for what.
func TestLockFileWaitsAndSaysWhy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := LockFile(path, "installing things", t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	logged := make(chan string, 1)
	acquired := make(chan error, 1)
	go func() {
		unlock2, err := LockFile(path, "installing things", func(format string, args ...any) {
			logged <- fmt.Sprintf(format, args...)
		})
		if err == nil {
			unlock2()
		}
		acquired <- err
	}()
	msg := <-logged
	if !strings.Contains(msg, "waiting for another process to finish installing things") {
		t.Fatalf("the waiter logged %q, want it to say what it waits for", msg)
	}
	select {
	case err := <-acquired:
		t.Fatalf("the second LockFile returned (%v) while the first held the lock", err)
	default:
	}
	unlock()
	if err := <-acquired; err != nil {
		t.Fatal(err)
	}
}
