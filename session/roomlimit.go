package session

import (
	"context"
	"math"
	"time"

	"golang.org/x/time/rate"
)

// The rooms an account creates, by JOIN of a channel that does not exist
// or by starting a DM, are limited (matrix.room_create_burst, then one
// each room_create_interval). The limit outlives the session: each token
// taken records when the budget is full again, and a session starts from
// that, so a restart does not hand out a new burst.

// takeRoomToken takes a token of the room-creation limit; false when none
// is left. Any goroutine.
func (s *Session) takeRoomToken() bool {
	now := time.Now()
	if !s.newRooms.AllowN(now, 1) {
		return false
	}
	fullAt := roomBudgetFullAt(s.newRooms, now)
	ok := s.enqueueSide(func(ctx context.Context) func() {
		if err := s.mgr.store.PutRoomCreateFullAt(ctx, s.user, fullAt); err != nil {
			s.log.Warn("could not save the room-creation budget; a restart may refill it", "err", err)
		}
		return nil
	})
	if !ok {
		s.log.Warn("could not queue saving the room-creation budget; a restart may refill it")
	}
	return true
}

// roomBudgetFullAt is when l is full again, as seen at now.
func roomBudgetFullAt(l *rate.Limiter, now time.Time) time.Time {
	missing := float64(l.Burst()) - l.TokensAt(now)
	if missing <= 0 {
		return now
	}
	return now.Add(time.Duration(missing / float64(l.Limit()) * float64(time.Second)))
}

// roomLimiter is the room-creation limiter of a session starting at now
// whose budget is full again at fullAt (zero: full now). A fraction of a
// token left is not given back.
func roomLimiter(every time.Duration, burst int, fullAt, now time.Time) *rate.Limiter {
	l := rate.NewLimiter(rate.Every(every), burst)
	if fullAt.After(now) {
		spent := int(math.Ceil(float64(fullAt.Sub(now)) / float64(every)))
		l.AllowN(now, min(spent, burst))
	}
	return l
}
