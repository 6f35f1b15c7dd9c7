package mapping

import (
	"encoding/json"
	"reflect"
	"testing"

	"maunium.net/go/mautrix/id"
)

func TestParseModeChanges(t *testing.T) {
	cases := []struct {
		modes   string
		args    []string
		want    []ModeChange
		unknown string
	}{
		{"+o", []string{"bob"}, []ModeChange{{true, 'o', "bob"}}, ""},
		{"-o+v", []string{"bob", "bob"}, []ModeChange{{false, 'o', "bob"}, {true, 'v', "bob"}}, ""},
		{"+mi-t", nil, []ModeChange{{true, 'm', ""}, {true, 'i', ""}, {false, 't', ""}}, ""},
		{"b", nil, []ModeChange{{true, 'b', ""}}, ""},
		{"+b-b", []string{"x!*@*"}, []ModeChange{{true, 'b', "x!*@*"}, {false, 'b', ""}}, ""},
		{"+nzk", []string{"key"}, []ModeChange{{true, 'n', ""}}, "zk"},
		{"o", nil, []ModeChange{{true, 'o', ""}}, ""},
		{"", nil, nil, ""},
	}
	for _, tc := range cases {
		got, unknown := ParseModeChanges(tc.modes, tc.args)
		if !reflect.DeepEqual(got, tc.want) || string(unknown) != tc.unknown {
			t.Errorf("ParseModeChanges(%q, %q) = %v, %q; want %v, %q", tc.modes, tc.args, got, unknown, tc.want, tc.unknown)
		}
	}
}

func TestPowerEditApplyMode(t *testing.T) {
	const bob = id.UserID("@bob:example.org")
	base := `{"users":{"@alice:example.org":100},"users_default":0,"events":{"m.room.topic":50},"events_default":0,"state_default":50,"org.example.custom":true}`
	cases := []struct {
		name    string
		start   string
		change  ModeChange
		user    id.UserID
		changed bool
		check   func(p PowerEdit) bool
	}{
		{"+o", base, ModeChange{true, 'o', ""}, bob, true, func(p PowerEdit) bool { return p.UserLevel(bob) == 50 }},
		{"+o on an op", `{"users":{"@bob:example.org":100}}`, ModeChange{true, 'o', ""}, bob, false, func(p PowerEdit) bool { return p.UserLevel(bob) == 100 }},
		{"-o on an admin", `{"users":{"@bob:example.org":100}}`, ModeChange{false, 'o', ""}, bob, true, func(p PowerEdit) bool { return p.UserLevel(bob) == 0 }},
		{"+v", base, ModeChange{true, 'v', ""}, bob, true, func(p PowerEdit) bool { return p.UserLevel(bob) == 1 }},
		{"+v above a raised default", `{"users_default":10}`, ModeChange{true, 'v', ""}, bob, true, func(p PowerEdit) bool { return p.UserLevel(bob) == 11 }},
		{"-v on an op changes nothing", `{"users":{"@bob:example.org":50}}`, ModeChange{false, 'v', ""}, bob, false, func(p PowerEdit) bool { return p.UserLevel(bob) == 50 }},
		{"-v", `{"users":{"@bob:example.org":5}}`, ModeChange{false, 'v', ""}, bob, true, func(p PowerEdit) bool { return p.UserLevel(bob) == 0 }},
		{"+m", base, ModeChange{true, 'm', ""}, "", true, func(p PowerEdit) bool { return p.EventLevel("m.room.message", false) == 1 }},
		{"+m with an explicit message level", `{"events":{"m.room.message":0}}`, ModeChange{true, 'm', ""}, "", true,
			func(p PowerEdit) bool { return p.EventLevel("m.room.message", false) == 1 && p.EventsDefault() == 1 }},
		{"-m", `{"events_default":1}`, ModeChange{false, 'm', ""}, "", true, func(p PowerEdit) bool { return p.EventsDefault() == 0 }},
		{"-m already", base, ModeChange{false, 'm', ""}, "", false, func(p PowerEdit) bool { return p.EventsDefault() == 0 }},
		{"-t", base, ModeChange{false, 't', ""}, "", true, func(p PowerEdit) bool { return p.EventLevel("m.room.topic", true) == 0 }},
		{"+t already", base, ModeChange{true, 't', ""}, "", false, func(p PowerEdit) bool { return true }},
		{"string levels from old rooms", `{"users":{"@bob:example.org":"50"}}`, ModeChange{false, 'o', ""}, bob, true, func(p PowerEdit) bool { return p.UserLevel(bob) == 0 }},
	}
	for _, tc := range cases {
		p, err := NewPowerEdit(json.RawMessage(tc.start))
		if err != nil {
			t.Fatal(err)
		}
		if changed := p.ApplyMode(tc.change, tc.user, OpLevel); changed != tc.changed || !tc.check(p) {
			t.Errorf("%s: changed=%v, content %s", tc.name, changed, p.JSON())
		}
	}

	// Fields mautrix does not model survive the edit.
	p, _ := NewPowerEdit(json.RawMessage(base))
	p.ApplyMode(ModeChange{true, 'o', ""}, bob, OpLevel)
	var out map[string]any
	json.Unmarshal(p.JSON(), &out)
	if out["org.example.custom"] != true || out["state_default"] != float64(50) {
		t.Errorf("edit lost fields: %s", p.JSON())
	}
	if _, err := NewPowerEdit(json.RawMessage(`[1,2]`)); err == nil {
		t.Error("non-object content accepted")
	}
	if p, err := NewPowerEdit(nil); err != nil || p.UsersDefault() != 0 || p.EventLevel("m.room.topic", true) != 50 {
		t.Errorf("empty content: %v", err)
	}
}

func TestMaskUser(t *testing.T) {
	cases := []struct {
		mask string
		user id.UserID
		nick string
	}{
		{"@bob:example.org", "@bob:example.org", ""},
		{"*!bob@example.org", "@bob:example.org", ""},
		{"bob!bob@example.org", "@bob:example.org", ""},
		{"bob!*@*", "", "bob"},
		{"bob", "", "bob"},
		{"bob:example.org", "", "bob:example.org"},
		{"*!*@example.org", "", ""},
		{"*", "", ""},
		{"@", "", ""},
		{"@bob", "", ""},
		{"", "", ""},
	}
	for _, tc := range cases {
		user, nick := MaskUser(tc.mask)
		if user != tc.user || nick != tc.nick {
			t.Errorf("MaskUser(%q) = %q, %q; want %q, %q", tc.mask, user, nick, tc.user, tc.nick)
		}
	}
}

func FuzzMaskUser(f *testing.F) {
	for _, s := range []string{"@a:b", "*!a@b", "a!*@*", "a", "!@", "@:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, mask string) {
		user, nick := MaskUser(mask)
		if user != "" && nick != "" {
			t.Fatal("both a user and a nick")
		}
		if user != "" && !validUserID(user) {
			t.Fatalf("invalid user %q", user)
		}
	})
}
