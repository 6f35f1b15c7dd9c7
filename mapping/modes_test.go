package mapping

import (
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func intPtr(i int) *int { return &i }

// defaultPL is what Synapse's public_chat preset gives a new room: creator at
// 100, everyone else at 0, state changes at 50 and a few at 100.
func defaultPL() *event.PowerLevelsEventContent {
	return &event.PowerLevelsEventContent{
		Users:         map[id.UserID]int{"@creator:srv": 100},
		UsersDefault:  0,
		EventsDefault: 0,
		Events: map[string]int{
			"m.room.name":               50,
			"m.room.power_levels":       100,
			"m.room.history_visibility": 100,
			"m.room.canonical_alias":    50,
			"m.room.avatar":             50,
			"m.room.tombstone":          100,
			"m.room.server_acl":         100,
			"m.room.encryption":         100,
		},
		StateDefaultPtr: intPtr(50),
		BanPtr:          intPtr(50),
		KickPtr:         intPtr(50),
		RedactPtr:       intPtr(50),
		InvitePtr:       intPtr(0),
	}
}

func TestMemberPrefix(t *testing.T) {
	users := func(def int, levels map[id.UserID]int) *event.PowerLevelsEventContent {
		return &event.PowerLevelsEventContent{UsersDefault: def, Users: levels}
	}
	v12 := users(0, map[id.UserID]int{"@mod:srv": 50})
	v12.CreateEvent = &event.Event{
		Type:    event.StateCreate,
		Sender:  "@founder:srv",
		Content: event.Content{Parsed: &event.CreateEventContent{RoomVersion: id.RoomV12, AdditionalCreators: []id.UserID{"@cofounder:srv"}}},
	}
	cases := []struct {
		name string
		pl   *event.PowerLevelsEventContent
		user id.UserID
		want string
	}{
		{"nil power levels", nil, "@alice:srv", ""},
		{"default user", defaultPL(), "@alice:srv", ""},
		{"creator at 100", defaultPL(), "@creator:srv", "@"},
		{"explicit 100", users(0, map[id.UserID]int{"@a:srv": 100}), "@a:srv", "@"},
		{"explicit 50 is op", users(0, map[id.UserID]int{"@a:srv": 50}), "@a:srv", "@"},
		{"explicit 49 is voice", users(0, map[id.UserID]int{"@a:srv": 49}), "@a:srv", "+"},
		{"explicit 1 is voice", users(0, map[id.UserID]int{"@a:srv": 1}), "@a:srv", "+"},
		{"explicit 0 equals default", users(0, map[id.UserID]int{"@a:srv": 0}), "@a:srv", ""},
		{"below default", users(10, map[id.UserID]int{"@a:srv": 5}), "@a:srv", ""},
		{"negative level", users(0, map[id.UserID]int{"@a:srv": -10}), "@a:srv", ""},
		{"default 10, user at default", users(10, nil), "@a:srv", ""},
		{"default 10, user at 20", users(10, map[id.UserID]int{"@a:srv": 20}), "@a:srv", "+"},
		{"default 10, user at 50", users(10, map[id.UserID]int{"@a:srv": 50}), "@a:srv", "@"},
		{"negative default, user at 0", users(-5, map[id.UserID]int{"@a:srv": 0}), "@a:srv", "+"},
		// By the rule, level >= 50 is op even when 50 is everyone's level.
		{"default 50, user at default", users(50, nil), "@a:srv", "@"},
		{"default 50, user at 60", users(50, map[id.UserID]int{"@a:srv": 60}), "@a:srv", "@"},
		{"default 50, user at 40", users(50, map[id.UserID]int{"@a:srv": 40}), "@a:srv", ""},
		{"default 100, user at default", users(100, nil), "@a:srv", "@"},
		{"levels of others do not matter", users(0, map[id.UserID]int{"@b:srv": 100}), "@a:srv", ""},
		{"v12 creator", v12, "@founder:srv", "@"},
		{"v12 additional creator", v12, "@cofounder:srv", "@"},
		{"v12 moderator", v12, "@mod:srv", "@"},
		{"v12 member", v12, "@alice:srv", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := MemberPrefix(c.pl, c.user, OpLevel); got != c.want {
				t.Errorf("MemberPrefix(%s) = %q, want %q", c.user, got, c.want)
			}
		})
	}
}

func TestChannelModes(t *testing.T) {
	with := func(edit func(pl *event.PowerLevelsEventContent)) *event.PowerLevelsEventContent {
		pl := defaultPL()
		edit(pl)
		return pl
	}
	cases := []struct {
		name string
		pl   *event.PowerLevelsEventContent
		rule event.JoinRule
		want string
	}{
		{"public, default levels", defaultPL(), event.JoinRulePublic, "+nt"},
		{"no join rule, default levels", defaultPL(), "", "+nt"},
		{"invite", defaultPL(), event.JoinRuleInvite, "+int"},
		{"knock", defaultPL(), event.JoinRuleKnock, "+iKnt"},
		{"nil power levels", nil, event.JoinRulePublic, "+nt"},
		{"nil power levels, invite", nil, event.JoinRuleInvite, "+int"},
		{"empty power levels", &event.PowerLevelsEventContent{}, event.JoinRulePublic, "+nt"}, // state_default is 50 when absent
		{"events_default above users_default", with(func(pl *event.PowerLevelsEventContent) {
			pl.EventsDefault = 50
		}), event.JoinRulePublic, "+mnt"},
		{"events_default equal to users_default", with(func(pl *event.PowerLevelsEventContent) {
			pl.EventsDefault, pl.UsersDefault = 10, 10
		}), event.JoinRulePublic, "+nt"},
		{"events_default below users_default", with(func(pl *event.PowerLevelsEventContent) {
			pl.UsersDefault = 10
		}), event.JoinRulePublic, "+nt"},
		{"m.room.message restricted", with(func(pl *event.PowerLevelsEventContent) {
			pl.Events["m.room.message"] = 50
		}), event.JoinRulePublic, "+mnt"},
		{"m.room.message open though events_default is not", with(func(pl *event.PowerLevelsEventContent) {
			pl.EventsDefault = 50
			pl.Events["m.room.message"] = 0
		}), event.JoinRulePublic, "+nt"},
		{"invite and moderated", with(func(pl *event.PowerLevelsEventContent) {
			pl.EventsDefault = 50
		}), event.JoinRuleInvite, "+imnt"},
		{"topic at default level", with(func(pl *event.PowerLevelsEventContent) {
			pl.Events["m.room.topic"] = 0
		}), event.JoinRulePublic, "+n"},
		{"topic below default level", with(func(pl *event.PowerLevelsEventContent) {
			pl.UsersDefault = 10
			pl.Events["m.room.topic"] = 5
		}), event.JoinRulePublic, "+n"},
		{"topic one above default", with(func(pl *event.PowerLevelsEventContent) {
			pl.Events["m.room.topic"] = 1
		}), event.JoinRulePublic, "+nt"},
		{"topic from state_default 0", with(func(pl *event.PowerLevelsEventContent) {
			pl.StateDefaultPtr = intPtr(0)
		}), event.JoinRulePublic, "+n"},
		{"everyone at 50", with(func(pl *event.PowerLevelsEventContent) {
			pl.UsersDefault = 50
		}), event.JoinRulePublic, "+n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ChannelModes(c.pl, c.rule); got != c.want {
				t.Errorf("ChannelModes = %q, want %q", got, c.want)
			}
		})
	}
}

func TestMemberPrefixOpLevel(t *testing.T) {
	pl := &event.PowerLevelsEventContent{Users: map[id.UserID]int{"@mod:x": 50, "@admin:x": 100}}
	for _, c := range []struct {
		user id.UserID
		op   int
		want string
	}{{"@mod:x", 50, "@"}, {"@mod:x", 100, "+"}, {"@admin:x", 100, "@"}, {"@nobody:x", 100, ""}} {
		if got := MemberPrefix(pl, c.user, c.op); got != c.want {
			t.Errorf("MemberPrefix(%s, op %d) = %q, want %q", c.user, c.op, got, c.want)
		}
	}
}
