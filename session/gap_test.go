package session

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store/storetest"
)

// When more events arrive between two syncs than one sync brings (a
// "limited" timeline), the gap is filled from /messages: the client gets
// every message, in order.
func TestLimitedTimelineGapIsFilled(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	alice, bob := hs.Register(t, "alice"), hs.Register(t, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := bob.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.JoinRoom(ctx, resp.RoomID.String(), nil); err != nil {
		t.Fatal(err)
	}
	m := NewManager(Config{Homeserver: hs.URL, TimelineLimit: 1, SyncTimeout: 2 * time.Second}, storetest.Open(t, "sqlite"))
	t.Cleanup(func() { m.Close(context.Background()) })
	rec := &recorder{nick: "alice"}
	a, err := m.Login(ctx, alice.UserID.String(), alice.Password, rec)
	if err != nil {
		t.Fatal(err)
	}
	a.Attach()
	waitFor(t, func() bool { return rec.count("JOIN") > 0 }, "the connect burst")

	// Three senders at once make it near certain that some sync has more
	// events than the limit of one; bursts repeat until one did.
	senders := []*testenv.Account{bob, hs.Register(t, "carol"), hs.Register(t, "dave")}
	for _, who := range senders[1:] {
		if _, err := who.Client.JoinRoom(ctx, resp.RoomID.String(), nil); err != nil {
			t.Fatal(err)
		}
	}
	const perSender = 10
	total := 0
	for burst := 0; burst < 5 && a.sess.gapsFilled.Load() == 0; burst++ {
		var wg sync.WaitGroup
		for si, who := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perSender; i++ {
					if _, err := who.Client.SendText(ctx, resp.RoomID, fmt.Sprintf("b%d s%d m%d", burst, si, i)); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		total += len(senders) * perSender
		deadline := time.Now().Add(30 * time.Second)
		for rec.count("PRIVMSG") < total {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for all %d messages; shown: %q", total, rec.texts("PRIVMSG"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if a.sess.gapsFilled.Load() == 0 {
		t.Fatal("no sync was limited in five bursts; the gap path was not exercised")
	}
	next := map[string]int{}
	var got []string
	for _, line := range rec.all() {
		if line.Command != "PRIVMSG" {
			continue
		}
		got = append(got, line.Trailing())
		var b, si, i int
		if _, err := fmt.Sscanf(line.Trailing(), "b%d s%d m%d", &b, &si, &i); err != nil {
			t.Fatalf("unexpected line %s", line)
		}
		key := fmt.Sprintf("%d/%d", b, si)
		if i != next[key] {
			t.Errorf("burst %d sender %d: got message %d, want %d", b, si, i, next[key])
		}
		next[key] = i + 1
	}
	if len(got) != total || t.Failed() {
		t.Fatalf("got %d messages, want %d, each once, in order per sender; in the order shown: %q", len(got), total, got)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *recorder) all() []*irc.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*irc.Message(nil), r.lines...)
}

func (r *recorder) texts(command string) []string {
	var out []string
	for _, m := range r.all() {
		if m.Command == command {
			out = append(out, m.Trailing())
		}
	}
	return out
}

func (r *recorder) count(command string) int {
	n := 0
	for _, m := range r.all() {
		if m.Command == command {
			n++
		}
	}
	return n
}
