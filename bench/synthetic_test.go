package bench

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// syntheticHS is a stand-in homeserver for scale runs that a real one on
// this machine cannot feed: it serves scripted /sync responses for users
// "@u<i>:synthetic" (token "tok-<i>"), each in roomsPerUser rooms of
// membersPerRoom members, and answers the few other requests a session
// makes. Rooms are shared: user i is in rooms (j*users+i)/membersPerRoom
// for j < roomsPerUser, so each room has membersPerRoom consecutive users.
// It is labelled as synthetic wherever its figures are reported.
type syntheticHS struct {
	srv            *httptest.Server // its URL is https:// when it serves TLS
	users          int
	roomsPerUser   int
	membersPerRoom int
	rooms          []json.RawMessage // pre-encoded joined-room sections
	members        []json.RawMessage // pre-encoded /members answers

	initialSyncs  atomic.Int64 // initial /sync responses served
	memberFetches atomic.Int64 // /members answered
	longPolls     atomic.Int64 // incremental /sync requests waiting
	stop          chan struct{}
	stopOnce      sync.Once
}

const syntheticServer = "synthetic"

func syntheticUser(i int) string { return fmt.Sprintf("@u%d:%s", i, syntheticServer) }

// newSyntheticHS starts the synthetic homeserver; with tls, over HTTPS
// with HTTP/2, as homeservers are deployed (clients then share a few
// connections), else over plain HTTP/1.1 (one connection per request in
// flight).
func newSyntheticHS(t testing.TB, users, roomsPerUser, membersPerRoom int, tls bool) *syntheticHS {
	if users*roomsPerUser%membersPerRoom != 0 || users%membersPerRoom != 0 {
		t.Fatalf("synthetic homeserver: %d users cannot fill rooms of %d", users, membersPerRoom)
	}
	hs := &syntheticHS{users: users, roomsPerUser: roomsPerUser, membersPerRoom: membersPerRoom, stop: make(chan struct{})}
	nrooms := users * roomsPerUser / membersPerRoom
	hs.rooms = make([]json.RawMessage, nrooms)
	hs.members = make([]json.RawMessage, nrooms)
	for r := range hs.rooms {
		hs.rooms[r] = hs.roomJSON(r, nil)
		hs.members[r] = hs.membersJSON(r)
	}
	hs.srv = httptest.NewUnstartedServer(http.HandlerFunc(hs.serve))
	if tls {
		hs.srv.EnableHTTP2 = true
		hs.srv.StartTLS()
	} else {
		hs.srv.Start()
	}
	t.Cleanup(func() {
		hs.stopOnce.Do(func() { close(hs.stop) })
		hs.srv.Close()
	})
	return hs
}

// roomJSON is the joined-room section of room r in an initial sync; with
// lazy, only the members lazy says (a sync with lazy-loaded members: the
// timeline's sender and the syncing user).
func (hs *syntheticHS) roomJSON(r int, lazy func(u int) bool) json.RawMessage {
	first := (r * hs.membersPerRoom) % hs.users
	creator := syntheticUser(first)
	roomID := fmt.Sprintf("!r%d:%s", r, syntheticServer)
	ts := int64(1_700_000_000_000)
	var state []map[string]any
	add := func(typ, key, sender string, content map[string]any) {
		if typ == "m.room.member" && lazy != nil {
			var u int
			fmt.Sscanf(key, "@u%d:", &u)
			if !lazy(u) {
				return
			}
		}
		state = append(state, map[string]any{
			"type": typ, "state_key": key, "sender": sender, "content": content,
			"event_id": fmt.Sprintf("$%s-%s-%s", roomID[1:], typ, key), "origin_server_ts": ts,
		})
	}
	add("m.room.create", "", creator, map[string]any{"creator": creator, "room_version": "10"})
	add("m.room.power_levels", "", creator, map[string]any{"users": map[string]int{creator: 100}, "users_default": 0})
	add("m.room.join_rules", "", creator, map[string]any{"join_rule": "public"})
	add("m.room.name", "", creator, map[string]any{"name": fmt.Sprintf("Room %d", r)})
	add("m.room.topic", "", creator, map[string]any{"topic": fmt.Sprintf("The topic of room %d", r)})
	for m := 0; m < hs.membersPerRoom; m++ {
		u := (first + m) % hs.users
		add("m.room.member", syntheticUser(u), syntheticUser(u), map[string]any{"membership": "join", "displayname": fmt.Sprintf("User %d", u)})
	}
	timeline := []map[string]any{{
		"type": "m.room.message", "sender": creator, "content": map[string]any{"msgtype": "m.text", "body": "hello"},
		"event_id": fmt.Sprintf("$%s-hello", roomID[1:]), "origin_server_ts": ts + 1,
	}}
	raw, err := json.Marshal(map[string]any{
		"state":    map[string]any{"events": state},
		"timeline": map[string]any{"events": timeline, "limited": false, "prev_batch": "p0"},
	})
	if err != nil {
		panic(err)
	}
	return raw
}

// membersJSON is the answer to GET /rooms/{room r}/members.
func (hs *syntheticHS) membersJSON(r int) json.RawMessage {
	first := (r * hs.membersPerRoom) % hs.users
	roomID := fmt.Sprintf("!r%d:%s", r, syntheticServer)
	chunk := make([]map[string]any, 0, hs.membersPerRoom)
	for m := 0; m < hs.membersPerRoom; m++ {
		u := syntheticUser((first + m) % hs.users)
		chunk = append(chunk, map[string]any{
			"type": "m.room.member", "state_key": u, "sender": u, "room_id": roomID,
			"content":  map[string]any{"membership": "join", "displayname": fmt.Sprintf("User %d", (first+m)%hs.users)},
			"event_id": fmt.Sprintf("$%s-m.room.member-%s", roomID[1:], u), "origin_server_ts": int64(1_700_000_000_000),
		})
	}
	raw, err := json.Marshal(map[string]any{"chunk": chunk})
	if err != nil {
		panic(err)
	}
	return raw
}

// user is the index of the user a request's token belongs to.
func (hs *syntheticHS) user(r *http.Request) (int, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer tok-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(tok)
	return i, err == nil && i >= 0 && i < hs.users
}

func (hs *syntheticHS) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	path := r.URL.Path
	switch {
	case path == "/_matrix/client/v3/login" && r.Method == http.MethodPost:
		var req struct {
			Identifier struct {
				User string `json:"user"`
			} `json:"identifier"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		local, _, _ := strings.Cut(strings.TrimPrefix(req.Identifier.User, "@"), ":")
		i, err := strconv.Atoi(strings.TrimPrefix(local, "u"))
		if err != nil || i < 0 || i >= hs.users {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"errcode":"M_FORBIDDEN","error":"no such user"}`)
			return
		}
		fmt.Fprintf(w, `{"user_id":%q,"access_token":"tok-%d","device_id":"SYNTH"}`, syntheticUser(i), i)
		return
	}
	i, ok := hs.user(r)
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errcode":"M_UNKNOWN_TOKEN","error":"unknown token"}`)
		return
	}
	switch {
	case path == "/_matrix/client/v3/sync":
		hs.sync(w, r, i)
	case strings.HasPrefix(path, "/_matrix/client/v3/rooms/") && strings.HasSuffix(path, "/members"):
		var r int
		if _, err := fmt.Sscanf(strings.TrimPrefix(path, "/_matrix/client/v3/rooms/"), "!r%d:", &r); err != nil || r < 0 || r >= len(hs.members) {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"errcode":"M_NOT_FOUND","error":"no such room"}`)
			return
		}
		hs.memberFetches.Add(1)
		w.Write(hs.members[r])
	case path == "/_matrix/client/v3/account/whoami":
		fmt.Fprintf(w, `{"user_id":%q,"device_id":"SYNTH"}`, syntheticUser(i))
	case strings.HasPrefix(path, "/_matrix/client/v3/presence/"):
		fmt.Fprint(w, `{}`)
	case path == "/_matrix/client/v3/keys/upload" && r.Method == http.MethodPost:
		// Encryption: device keys and one-time keys are taken, and the
		// server holds what a new device uploads.
		fmt.Fprint(w, `{"one_time_key_counts":{"signed_curve25519":50}}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"errcode":"M_UNRECOGNIZED","error":"not in the script"}`)
	}
}

// sync answers an initial sync with the user's rooms, and an incremental
// one by waiting out its timeout with nothing new.
func (hs *syntheticHS) sync(w http.ResponseWriter, r *http.Request, user int) {
	q := r.URL.Query()
	if q.Get("since") != "" && q.Get("full_state") != "true" {
		hs.longPolls.Add(1)
		defer hs.longPolls.Add(-1)
		timeout, _ := strconv.Atoi(q.Get("timeout"))
		select {
		case <-time.After(time.Duration(timeout) * time.Millisecond):
		case <-r.Context().Done():
			return
		case <-hs.stop:
		}
		fmt.Fprint(w, `{"next_batch":"s1","rooms":{}}`)
		return
	}
	lazy := strings.Contains(q.Get("filter"), `"lazy_load_members":true`)
	var b strings.Builder
	b.WriteString(`{"next_batch":"s1","rooms":{"join":{`)
	for j := 0; j < hs.roomsPerUser; j++ {
		room := (j*hs.users + user) / hs.membersPerRoom
		if j > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"!r%d:%s":`, room, syntheticServer)
		if lazy {
			first := (room * hs.membersPerRoom) % hs.users
			b.Write(hs.roomJSON(room, func(u int) bool { return u == first || u == user }))
		} else {
			b.Write(hs.rooms[room])
		}
	}
	b.WriteString(`}}}`)
	w.Write([]byte(b.String()))
	hs.initialSyncs.Add(1)
}

// caFile writes the server's certificate as a PEM file, for the gateway to
// trust (SSL_CERT_FILE).
func (hs *syntheticHS) caFile(t testing.TB, dir string) string {
	path := filepath.Join(dir, "synthetic-ca.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.srv.Certificate().Raw})
	if err := os.WriteFile(path, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
