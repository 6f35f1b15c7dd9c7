package session

import (
	"testing"
	"time"
)

// The room-creation budget a session leaves is the one the next starts
// with: what was spent comes back one token per interval, not at once.
func TestRoomLimiterCarriesOver(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	l := roomLimiter(time.Minute, 5, time.Time{}, t0)
	if !l.AllowN(t0, 3) {
		t.Fatal("a fresh budget did not give 3 of 5")
	}
	fullAt := roomBudgetFullAt(l, t0)
	if want := t0.Add(3 * time.Minute); !fullAt.Equal(want) {
		t.Fatalf("full again at %v, want %v", fullAt, want)
	}
	// Started again 30 s later: 2.5 tokens are due, 2 are given.
	later := t0.Add(30 * time.Second)
	next := roomLimiter(time.Minute, 5, fullAt, later)
	if !next.AllowN(later, 2) || next.AllowN(later, 1) {
		t.Errorf("after a restart 30 s on, the budget is not 2 tokens: %.2f", next.TokensAt(later))
	}
	// Long after, the budget is full.
	if l := roomLimiter(time.Minute, 5, fullAt, t0.Add(time.Hour)); !l.AllowN(t0.Add(time.Hour), 5) {
		t.Error("an hour on, the budget is not full")
	}
	// Spent beyond what the burst holds: empty, not refused.
	if l := roomLimiter(time.Minute, 5, t0.Add(24*time.Hour), t0); l.AllowN(t0, 1) {
		t.Error("a budget spent a day ahead gave a token")
	}
}
