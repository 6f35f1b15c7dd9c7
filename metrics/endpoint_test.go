package metrics

import (
	"strings"
	"testing"
)

func TestEndpoint(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/_matrix/client/v3/rooms/%21abc%3Alocalhost/send/m.room.message/mxircd-17~laptop", "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"},
		{"/_matrix/client/v3/sync", "/_matrix/client/v3/sync"},
		{"/_matrix/client/r0/sync", "/_matrix/client/r0/sync"},
		{"/_matrix/client/v3/login", "/_matrix/client/v3/login"},
		{"/_matrix/client/v3/user/%40alice%3Alocalhost/filter", "/_matrix/client/v3/user/{userId}/filter"},
		{"/_matrix/client/v3/rooms/%21abc%3Alocalhost/state/m.room.power_levels/", "/_matrix/client/v3/rooms/{roomId}/state/{eventType}"},
		{"/_matrix/client/v3/rooms/%21abc%3Alocalhost/state/m.room.member/%40bob%3Alocalhost", "/_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"},
		{"/_matrix/client/v3/rooms/%21abc%3Alocalhost/join", "/_matrix/client/v3/rooms/{roomId}/join"},
		{"/_matrix/client/v3/rooms/%21abc%3Alocalhost/kick", "/_matrix/client/v3/rooms/{roomId}/kick"},
		{"/_matrix/client/v3/rooms/%21abc%3Alocalhost/messages", "/_matrix/client/v3/rooms/{roomId}/messages"},
		{"/_matrix/client/v3/join/%23room%3Alocalhost", "/_matrix/client/v3/join/{roomIdOrAlias}"},
		{"/_matrix/client/v3/presence/%40alice%3Alocalhost/status", "/_matrix/client/v3/presence/{userId}/status"},
		{"/_matrix/client/v3/sendToDevice/m.room.encrypted/123", "/_matrix/client/v3/sendToDevice/{eventType}/{txnId}"},
		{"/_matrix/client/v1/media/download/localhost/AbCdEf", "/_matrix/client/v1/media/download/{serverName}/{mediaId}"},
		{"/.well-known/matrix/client", "/.well-known/matrix/client"},
		// Not in the table, or not Matrix: never the raw path.
		{"/_matrix/client/v3/rooms/%21abc%3Alocalhost/%40alice%3Alocalhost", "other"},
		{"/_matrix/client/v9/sync", "other"},
		{"/_matrix/client/%40alice/sync", "other"},
		{"/_synapse/admin/v1/register", "other"},
		{"/", "other"},
		{"", "other"},
	} {
		if got := Endpoint(tc.path); got != tc.want {
			t.Errorf("Endpoint(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

// possibleLabels is every label Endpoint can give: the table with each
// version and membership action filled in, and "other".
func possibleLabels() map[string]bool {
	out := map[string]bool{"other": true}
	for _, t := range endpointTable {
		labels := []string{""}
		for _, seg := range t.segs {
			var alts []string
			switch {
			case seg == "{v}":
				for v := range apiVersions {
					alts = append(alts, v)
				}
			case seg == "{membership}":
				for a := range membershipActions {
					alts = append(alts, a)
				}
			default:
				alts = []string{seg}
			}
			var next []string
			for _, l := range labels {
				for _, a := range alts {
					next = append(next, l+"/"+a)
				}
			}
			labels = next
		}
		for _, l := range labels {
			out[l] = true
		}
	}
	return out
}

// Whatever path is asked for, the label is one of a fixed set, so user,
// room and event IDs never become label values.
func FuzzEndpoint(f *testing.F) {
	f.Add("/_matrix/client/v3/rooms/%21abc%3Alocalhost/send/m.room.message/1")
	f.Add("/_matrix/client/v3/user/@alice:localhost/account_data/m.direct")
	f.Add("/_matrix/media/v3/download/a/b/c")
	f.Add("//_matrix//client")
	labels := possibleLabels()
	f.Fuzz(func(t *testing.T, path string) {
		got := Endpoint(path)
		if !labels[got] {
			t.Fatalf("Endpoint(%q) = %q, not a template", path, got)
		}
		if strings.ContainsAny(got, "!@#$:%") {
			t.Fatalf("Endpoint(%q) = %q holds an ID", path, got)
		}
	})
}

// The label costs a table walk per homeserver request; compare with the
// request itself (milliseconds).
func BenchmarkEndpoint(b *testing.B) {
	for _, path := range []string{
		"/_matrix/client/v3/sync",
		"/_matrix/client/v3/rooms/%21abc%3Alocalhost/send/m.room.message/mxircd.1.1~laptop",
		"/_matrix/media/v3/thumbnail/localhost/abc",
		"/_synapse/admin/v1/register",
	} {
		segs := strings.Split(path, "/")
		b.Run(segs[len(segs)-1], func(b *testing.B) {
			for b.Loop() {
				Endpoint(path)
			}
		})
	}
}
