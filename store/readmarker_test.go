package store_test

import (
	"context"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/store/storetest"
)

// Read markers are per account and target, and only move forward.
func TestReadMarkers(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			s := storetest.Open(t, driver)
			ctx := context.Background()
			if marks, err := s.ReadMarkers(ctx, "@a:x"); err != nil || len(marks) != 0 {
				t.Fatalf("no markers yet: %v, %v", marks, err)
			}
			for _, put := range []struct {
				user   id.UserID
				target string
				ts     int64
			}{{"@a:x", "!r:x", 200}, {"@a:x", "@b:x", 50}, {"@b:x", "!r:x", 10}, {"@a:x", "!r:x", 100}, {"@a:x", "@b:x", 60}} {
				if err := s.PutReadMarker(ctx, put.user, put.target, put.ts); err != nil {
					t.Fatal(err)
				}
			}
			marks, err := s.ReadMarkers(ctx, "@a:x")
			if err != nil || len(marks) != 2 || marks["!r:x"] != 200 || marks["@b:x"] != 60 {
				t.Errorf("markers of @a:x = %v, %v; want !r:x at 200 (never back to 100) and @b:x at 60", marks, err)
			}
			if err := s.DeleteAccount(ctx, "@a:x"); err != nil {
				t.Fatal(err)
			}
			if marks, err := s.ReadMarkers(ctx, "@a:x"); err != nil || len(marks) != 0 {
				t.Errorf("markers of a deleted account: %v, %v", marks, err)
			}
			if marks, err := s.ReadMarkers(ctx, "@b:x"); err != nil || marks["!r:x"] != 10 {
				t.Errorf("markers of @b:x = %v, %v; want !r:x at 10", marks, err)
			}
		})
	}
}
