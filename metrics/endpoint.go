package metrics

import "strings"

// Endpoint is the label a homeserver request is counted under: the path
// template of the Matrix API endpoint it called, with every room, user,
// event, transaction or other ID replaced by a named placeholder, so that
// the number of label values is bounded by this table however many users
// and rooms there are. A path the table does not know is "other"; the
// query string is never part of it.
func Endpoint(escapedPath string) string {
	segs := strings.Split(strings.Trim(escapedPath, "/"), "/")
	for _, t := range endpointTable {
		if label, ok := t.match(segs); ok {
			return label
		}
	}
	return "other"
}

// The Matrix APIs the gateway calls, through mautrix or by hand. A
// placeholder "{name}" matches any one non-empty path segment; "{v}"
// matches an API version and is kept as it is.
var endpointTable = parseTemplates(
	"/.well-known/matrix/client",
	"/_matrix/client/versions",
	"/_matrix/client/{v}/login",
	"/_matrix/client/{v}/logout",
	"/_matrix/client/{v}/logout/all",
	"/_matrix/client/{v}/register",
	"/_matrix/client/{v}/refresh",
	"/_matrix/client/{v}/account/whoami",
	"/_matrix/client/{v}/capabilities",
	"/_matrix/client/{v}/sync",
	"/_matrix/client/{v}/user/{userId}/filter",
	"/_matrix/client/{v}/user/{userId}/filter/{filterId}",
	"/_matrix/client/{v}/user/{userId}/account_data/{type}",
	"/_matrix/client/{v}/user/{userId}/rooms/{roomId}/account_data/{type}",
	"/_matrix/client/{v}/user/{userId}/rooms/{roomId}/tags",
	"/_matrix/client/{v}/user/{userId}/rooms/{roomId}/tags/{tag}",
	"/_matrix/client/{v}/user_directory/search",
	"/_matrix/client/{v}/profile/{userId}",
	"/_matrix/client/{v}/profile/{userId}/{field}",
	"/_matrix/client/{v}/presence/{userId}/status",
	"/_matrix/client/{v}/createRoom",
	"/_matrix/client/{v}/joined_rooms",
	"/_matrix/client/{v}/publicRooms",
	"/_matrix/client/{v}/join/{roomIdOrAlias}",
	"/_matrix/client/{v}/knock/{roomIdOrAlias}",
	"/_matrix/client/{v}/directory/room/{roomAlias}",
	"/_matrix/client/{v}/directory/list/room/{roomId}",
	"/_matrix/client/{v}/search",
	"/_matrix/client/{v}/rooms/{roomId}/send/{eventType}/{txnId}",
	"/_matrix/client/{v}/rooms/{roomId}/redact/{eventId}/{txnId}",
	"/_matrix/client/{v}/rooms/{roomId}/state",
	"/_matrix/client/{v}/rooms/{roomId}/state/{eventType}",
	"/_matrix/client/{v}/rooms/{roomId}/state/{eventType}/{stateKey}",
	"/_matrix/client/{v}/rooms/{roomId}/event/{eventId}",
	"/_matrix/client/{v}/rooms/{roomId}/context/{eventId}",
	"/_matrix/client/{v}/rooms/{roomId}/relations/{eventId}",
	"/_matrix/client/{v}/rooms/{roomId}/relations/{eventId}/{relType}",
	"/_matrix/client/{v}/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}",
	"/_matrix/client/{v}/rooms/{roomId}/messages",
	"/_matrix/client/{v}/rooms/{roomId}/members",
	"/_matrix/client/{v}/rooms/{roomId}/joined_members",
	"/_matrix/client/{v}/rooms/{roomId}/typing/{userId}",
	"/_matrix/client/{v}/rooms/{roomId}/receipt/{receiptType}/{eventId}",
	"/_matrix/client/{v}/rooms/{roomId}/read_markers",
	"/_matrix/client/{v}/rooms/{roomId}/hierarchy",
	"/_matrix/client/{v}/rooms/{roomId}/upgrade",
	"/_matrix/client/{v}/rooms/{roomId}/report/{eventId}",
	"/_matrix/client/{v}/rooms/{roomId}/{membership}", // join, leave, invite, kick, ban, unban, forget
	"/_matrix/client/{v}/sendToDevice/{eventType}/{txnId}",
	"/_matrix/client/{v}/devices",
	"/_matrix/client/{v}/devices/{deviceId}",
	"/_matrix/client/{v}/delete_devices",
	"/_matrix/client/{v}/keys/upload",
	"/_matrix/client/{v}/keys/query",
	"/_matrix/client/{v}/keys/claim",
	"/_matrix/client/{v}/keys/changes",
	"/_matrix/client/{v}/keys/device_signing/upload",
	"/_matrix/client/{v}/keys/signatures/upload",
	"/_matrix/client/{v}/room_keys/version",
	"/_matrix/client/{v}/room_keys/version/{version}",
	"/_matrix/client/{v}/room_keys/keys",
	"/_matrix/client/{v}/room_keys/keys/{roomId}",
	"/_matrix/client/{v}/room_keys/keys/{roomId}/{sessionId}",
	"/_matrix/client/{v}/media/config",
	"/_matrix/client/{v}/media/download/{serverName}/{mediaId}",
	"/_matrix/client/{v}/media/download/{serverName}/{mediaId}/{fileName}",
	"/_matrix/client/{v}/media/thumbnail/{serverName}/{mediaId}",
	"/_matrix/media/{v}/upload",
	"/_matrix/media/{v}/config",
	"/_matrix/media/{v}/download/{serverName}/{mediaId}",
	"/_matrix/media/{v}/download/{serverName}/{mediaId}/{fileName}",
	"/_matrix/media/{v}/thumbnail/{serverName}/{mediaId}",
)

// apiVersions are the path versions kept in a label; any other segment
// where a version belongs makes the path "other", so a homeserver or a
// caller cannot make new label values up.
var apiVersions = map[string]bool{"r0": true, "v1": true, "v2": true, "v3": true, "unstable": true}

// membershipActions are the one-segment endpoints under a room that are
// not covered by a longer template; anything else there is "other".
var membershipActions = map[string]bool{
	"join": true, "leave": true, "invite": true, "kick": true, "ban": true, "unban": true, "forget": true,
}

type template struct {
	segs []string
}

func parseTemplates(paths ...string) []template {
	out := make([]template, len(paths))
	for i, p := range paths {
		out[i] = template{segs: strings.Split(strings.Trim(p, "/"), "/")}
	}
	return out
}

func (t template) match(segs []string) (string, bool) {
	if len(segs) != len(t.segs) {
		return "", false
	}
	for i, want := range t.segs {
		got := segs[i]
		switch {
		case want == "{v}":
			if !apiVersions[got] {
				return "", false
			}
		case want == "{membership}":
			if !membershipActions[got] {
				return "", false
			}
		case strings.HasPrefix(want, "{"):
			if got == "" {
				return "", false
			}
		case got != want:
			return "", false
		}
	}
	var b strings.Builder
	for i, want := range t.segs {
		b.WriteByte('/')
		if want == "{v}" || want == "{membership}" {
			want = segs[i] // checked above: one of a fixed set
		}
		b.WriteString(want)
	}
	return b.String(), true
}
