package mapping

import (
	"encoding/json"
	"math"
	"strconv"

	"maunium.net/go/mautrix/id"
)

// ModeChange is one letter of a MODE command: +o nick, -b mask, +m.
type ModeChange struct {
	Add  bool
	Mode byte
	Arg  string
}

// Channel modes a client may change. o, v and b take an argument; b
// without one asks for the ban list.
const (
	settableModes = "bimnotvKsp"
	argModes      = "bov"
)

// ParseModeChanges reads "+ov-b alice bob mask" as a list of changes.
// unknown holds letters mxircd cannot change (n is always on in Matrix);
// a listing request ("b" with no argument) comes back with Arg "".
func ParseModeChanges(modes string, args []string) (changes []ModeChange, unknown []byte) {
	add := true
	for i := 0; i < len(modes); i++ {
		c := modes[i]
		switch {
		case c == '+' || c == '-':
			add = c == '+'
		case !containsByte(settableModes, c):
			unknown = append(unknown, c)
		default:
			ch := ModeChange{Add: add, Mode: c}
			if containsByte(argModes, c) && len(args) > 0 {
				ch.Arg, args = args[0], args[1:]
			}
			changes = append(changes, ch)
		}
	}
	return changes, unknown
}

func containsByte(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}

// PowerEdit edits m.room.power_levels content as raw JSON, so that fields
// mautrix does not model survive the round trip to the homeserver.
type PowerEdit struct {
	m map[string]any
}

// NewPowerEdit starts an edit of raw power-levels content; empty content
// is a room with every default.
func NewPowerEdit(raw json.RawMessage) (PowerEdit, error) {
	p := PowerEdit{m: map[string]any{}}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &p.m); err != nil {
			return p, err
		}
		if p.m == nil {
			p.m = map[string]any{}
		}
	}
	return p, nil
}

// JSON is the edited content.
func (p PowerEdit) JSON() json.RawMessage {
	b, _ := json.Marshal(p.m)
	return b
}

func (p PowerEdit) num(key string, def int) int {
	return toInt(p.m[key], def)
}

// toInt reads a power level: a JSON number, or a string of digits as old
// room versions allow.
func toInt(v any, def int) int {
	switch v := v.(type) {
	case int:
		return v
	case float64:
		if v > math.MaxInt32 || v < math.MinInt32 {
			return def
		}
		return int(v)
	case string:
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

func (p PowerEdit) sub(key string) map[string]any {
	if m, ok := p.m[key].(map[string]any); ok {
		return m
	}
	m := map[string]any{}
	p.m[key] = m
	return m
}

func (p PowerEdit) UsersDefault() int  { return p.num("users_default", 0) }
func (p PowerEdit) EventsDefault() int { return p.num("events_default", 0) }

func (p PowerEdit) UserLevel(user id.UserID) int {
	if users, ok := p.m["users"].(map[string]any); ok {
		if v, ok := users[string(user)]; ok {
			return toInt(v, p.UsersDefault())
		}
	}
	return p.UsersDefault()
}

// SetUserLevel sets a user's level; the default level is written as no
// entry, as clients do.
func (p PowerEdit) SetUserLevel(user id.UserID, level int) {
	users := p.sub("users")
	if level == p.UsersDefault() {
		delete(users, string(user))
	} else {
		users[string(user)] = level
	}
}

// EventLevel is the level needed to send an event type (state or not).
func (p PowerEdit) EventLevel(eventType string, state bool) int {
	if events, ok := p.m["events"].(map[string]any); ok {
		if v, ok := events[eventType]; ok {
			return toInt(v, 0)
		}
	}
	if state {
		return p.num("state_default", 50)
	}
	return p.EventsDefault()
}

func (p PowerEdit) SetEventLevel(eventType string, level int) {
	p.sub("events")[eventType] = level
}

// ApplyMode applies one o, v, m or t change with op as the operator level
// and reports whether anything changed. Voice is any level above
// users_default and below op, so +v sets users_default+1 and -v on an
// operator changes nothing, as on IRC.
func (p PowerEdit) ApplyMode(ch ModeChange, user id.UserID, op int) bool {
	def := p.UsersDefault()
	voice := def + 1
	switch ch.Mode {
	case 'o', 'v':
		level := p.UserLevel(user)
		target := level
		switch {
		case ch.Mode == 'o' && ch.Add && level < op:
			target = op
		case ch.Mode == 'o' && !ch.Add && level >= op:
			target = def
		case ch.Mode == 'v' && ch.Add && level <= def:
			target = voice
		case ch.Mode == 'v' && !ch.Add && level > def && level < op:
			target = def
		}
		if target == level {
			return false
		}
		p.SetUserLevel(user, target)
		return true
	case 'm':
		level := def
		if ch.Add {
			level = voice
		}
		changed := p.EventLevel("m.room.message", false) != level || p.EventsDefault() != level
		p.m["events_default"] = level
		if events, ok := p.m["events"].(map[string]any); ok {
			if _, set := events["m.room.message"]; set {
				events["m.room.message"] = level
			}
		}
		return changed
	case 't':
		level := def
		if ch.Add {
			level = op
		}
		if p.EventLevel("m.room.topic", true) == level {
			return false
		}
		p.SetEventLevel("m.room.topic", level)
		return true
	}
	return false
}
