package session

import (
	"errors"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"maunium.net/go/mautrix/id"
)

// Wrong passwords are limited per account as well as per address (ircd's
// limit): guesses spread over many addresses (30 addresses × 10 guesses
// each all got checked) spend one budget. So that an attacker who spends
// it does not lock the real user out, addresses that have logged in to
// the account before are not held to it (ircd's per-address limit still
// applies to them).
const (
	accountFailureBurst = 20
	accountFailureRate  = rate.Limit(1.0 / 60) // one more guess a minute
	knownAddressTTL     = 30 * 24 * time.Hour
	maxKnownAddresses   = 16
	maxAccountBudgets   = 100000
)

// ErrAccountLocked says an account's budget of wrong passwords is spent
// for addresses it has not logged in from.
var ErrAccountLocked = errors.New("too many wrong passwords for this account lately; try again later, or from a place you have logged in from before")

// accountFailures is every account's budget. Any goroutine.
type accountFailures struct {
	mu sync.Mutex
	m  map[id.UserID]*accountBudget
}

type accountBudget struct {
	lim      *rate.Limiter
	inFlight int                  // checks in progress, each holding a token
	known    map[string]time.Time // addresses that logged in, and when last
}

func newAccountFailures() *accountFailures {
	return &accountFailures{m: make(map[id.UserID]*accountBudget)}
}

// take counts a password check for user from the address from (a host, ""
// if unknown) before it is made. done gets whether the password was wrong
// and whether the login succeeded.
func (f *accountFailures) take(user id.UserID, from string) (done func(wrong, ok bool), err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.m[user]
	if b == nil {
		if len(f.m) >= maxAccountBudgets {
			for u, old := range f.m {
				if old.inFlight == 0 && len(old.known) == 0 && old.lim.Tokens() >= accountFailureBurst {
					delete(f.m, u)
				}
			}
		}
		b = &accountBudget{lim: rate.NewLimiter(accountFailureRate, accountFailureBurst), known: map[string]time.Time{}}
		f.m[user] = b
	}
	seen, known := b.known[from]
	known = known && from != "" && time.Since(seen) < knownAddressTTL
	if !known {
		if b.lim.Tokens()-float64(b.inFlight) < 1 {
			return nil, ErrAccountLocked
		}
		b.inFlight++
	}
	var once sync.Once
	return func(wrong, ok bool) {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !known {
				b.inFlight--
				if wrong {
					b.lim.Allow()
				}
			}
			if ok && from != "" {
				b.known[from] = time.Now()
				for len(b.known) > maxKnownAddresses {
					var oldest string
					for a, t := range b.known {
						if oldest == "" || t.Before(b.known[oldest]) {
							oldest = a
						}
					}
					delete(b.known, oldest)
				}
			}
		})
	}, nil
}
