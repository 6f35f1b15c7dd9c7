package session

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
)

// What users read never shows the homeserver's URL or the request's query
// (issue 15: the sync filter and internal address reached IRC clients).
func TestPlainErrorHidesRequests(t *testing.T) {
	ctx := context.Background()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedURL := "http://" + closed.Addr().String()
	closed.Close()
	cli, err := mautrix.NewClient(refusedURL, "@u:example.org", "secret-token")
	if err != nil {
		t.Fatal(err)
	}
	_, syncErr := cli.FullSyncRequest(ctx, mautrix.ReqSync{Timeout: 1, FilterID: `{"room":{"timeline":{"limit":50}}}`})
	if syncErr == nil {
		t.Fatal("sync against a closed port worked")
	}

	slow := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(2 * time.Second) })}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go slow.Serve(ln)
	defer slow.Close()
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	slowCli, _ := mautrix.NewClient("http://"+ln.Addr().String(), "@u:example.org", "secret-token")
	_, slowErr := slowCli.Whoami(tctx)

	down := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go down.Serve(ln2)
	defer down.Close()
	downCli, _ := mautrix.NewClient("http://"+ln2.Addr().String(), "@u:example.org", "secret-token")
	_, downErr := downCli.Whoami(ctx)

	for _, tc := range []struct {
		err  error
		want string
	}{
		{syncErr, "the homeserver refused the connection"},
		{slowErr, "the homeserver did not answer in time"},
		{downErr, "the homeserver answered 502 Bad Gateway"},
		{mautrix.HTTPError{RespError: &mautrix.RespError{ErrCode: "M_FORBIDDEN", Err: "You are not invited to this room."}}, "You are not invited to this room."},
		{errors.New("the room is encrypted"), "the room is encrypted"},
	} {
		got := plainError(tc.err)
		if got != tc.want {
			t.Errorf("plainError(%v) = %q, want %q", tc.err, got, tc.want)
		}
		for _, leak := range []string{"http://", "127.0.0.1", "filter", "secret-token", "_matrix"} {
			if strings.Contains(got, leak) {
				t.Errorf("plainError(%v) = %q shows %q", tc.err, got, leak)
			}
		}
	}
}
