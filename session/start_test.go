package session

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/store/storetest"
)

// Sessions starting together make their first syncs a bounded number at a
// time, without a long-poll timeout, and all of them get through. A proxy
// in front of the homeserver holds each first sync for a second, so that
// without the bound they would all be in flight at once.
func TestFirstSyncsAreBounded(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	target, err := url.Parse(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// Long-polls cut off when the test ends are not worth a log line.
	proxy.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	var inFlight, most, served atomic.Int64
	var badTimeout atomic.Value
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		first := r.URL.Path == "/_matrix/client/v3/sync" && (q.Get("since") == "" || q.Get("full_state") == "true")
		if first {
			if tm := q.Get("timeout"); tm != "" && tm != "0" {
				badTimeout.Store(tm)
			}
			n := inFlight.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(time.Second)
			defer func() { inFlight.Add(-1); served.Add(1) }()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	m := NewManager(Config{Homeserver: front.URL, SyncTimeout: 2 * time.Second}, storetest.Open(t, "sqlite"))
	t.Cleanup(func() { m.Close(context.Background()) })
	const sessions = concurrentFirstSyncs + 8
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var accounts []*testenv.Account
	for i := range sessions {
		accounts = append(accounts, hs.Register(t, fmt.Sprintf("start%d", i)))
	}
	var wg sync.WaitGroup
	for _, who := range accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.Login(ctx, who.UserID.String(), who.Password, &recorder{nick: who.Localpart}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	waitFor(t, func() bool { return served.Load() >= sessions }, fmt.Sprintf("%d first syncs", sessions))
	if got := most.Load(); got > concurrentFirstSyncs {
		t.Errorf("%d first syncs in flight at once, want at most %d", got, concurrentFirstSyncs)
	}
	if tm := badTimeout.Load(); tm != nil {
		t.Errorf("a first sync long-polled (timeout=%v); it should return at once", tm)
	}
}
