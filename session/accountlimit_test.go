package session

import (
	"errors"
	"fmt"
	"testing"
)

// Issue 15 (2): guesses spread over many addresses spend one budget per
// account, counted before the check; an address the account logged in
// from before is not locked out by them.
func TestAccountFailureBudget(t *testing.T) {
	f := newAccountFailures()
	const user = "@alice:example.org"
	done, err := f.take(user, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	done(false, true) // the real user logs in from home

	// Checks in progress hold the budget: all at once, from 30 places.
	var pending []func(bool, bool)
	for i := range 30 {
		done, err := f.take(user, fmt.Sprintf("198.51.100.%d", i))
		if i < accountFailureBurst {
			if err != nil {
				t.Fatalf("guess %d refused: %v", i, err)
			}
			pending = append(pending, done)
			continue
		}
		if !errors.Is(err, ErrAccountLocked) {
			t.Fatalf("guess %d from a new address: %v, want ErrAccountLocked", i, err)
		}
	}
	for _, done := range pending {
		done(true, false)
	}
	if _, err := f.take(user, "203.0.113.9"); !errors.Is(err, ErrAccountLocked) {
		t.Fatalf("after the budget is spent: %v, want ErrAccountLocked", err)
	}
	// The real user, from where they logged in before, still may.
	done, err = f.take(user, "192.0.2.1")
	if err != nil {
		t.Fatalf("the known address is locked out: %v", err)
	}
	done(false, true)
	// Another account is not affected.
	if _, err := f.take("@bob:example.org", "203.0.113.9"); err != nil {
		t.Fatalf("another account: %v", err)
	}
	// Good logins spend nothing.
	g := newAccountFailures()
	for i := range 3 * accountFailureBurst {
		done, err := g.take(user, fmt.Sprintf("10.0.0.%d", i%200))
		if err != nil {
			t.Fatalf("good login %d refused: %v", i, err)
		}
		done(false, true)
	}
}
