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

// A refusal for lack of power says the levels in plain words, not the
// homeserver's event auth internals (issue 17).
func TestForbiddenText(t *testing.T) {
	forbidden := func(text string) error {
		return mautrix.HTTPError{
			Response:  &http.Response{StatusCode: http.StatusForbidden},
			RespError: &mautrix.RespError{ErrCode: mautrix.MForbidden.ErrCode, Err: text},
		}
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{forbidden(`eventauth: sender "@alice:localhost" is not allowed to send event. 0 < 50`),
			"You need power level 50 to change the topic; you have 0"},
		{forbidden(`You don't have permission to post that to the room. user_level (0) < send_level (50)`),
			"You need power level 50 to change the topic; you have 0"},
		{forbidden(`eventauth: sender has insufficient power to kick (sender level 10, target level 0, kick level 50)`),
			"You need power level 50 to change the topic; you have 10"},
		{forbidden(`eventauth: sender with level 50 is not allowed to change level from 0 to 100 because the new level is above the level of the sender`),
			"You need power level 100 to change the topic; you have 50"},
		{forbidden(`eventauth: "@bob:localhost" is not allowed to change their membership from "leave" to "join" as the room is invite only`),
			"You're not allowed to change the topic: the room's membership rules do not allow it"},
		{forbidden("You are not invited to this room."),
			"You're not allowed to change the topic: You are not invited to this room."},
	} {
		got := forbiddenText("change the topic", tc.err)
		if got != tc.want {
			t.Errorf("forbiddenText(%v) = %q, want %q", tc.err, got, tc.want)
		}
		if strings.Contains(got, "eventauth") || strings.Contains(got, "@") {
			t.Errorf("forbiddenText(%v) = %q shows Matrix internals", tc.err, got)
		}
	}
}
