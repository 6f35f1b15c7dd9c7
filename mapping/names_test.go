package mapping

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/irctext"
)

func TestChannelName(t *testing.T) {
	const room = id.RoomID("!abc123:example.org")
	cases := []struct {
		name  string
		alias id.RoomAlias
		want  string
	}{
		{"alias preferred", "#foo:example.org", "#foo:example.org"},
		{"alias on another server", "#bar:other.net", "#bar:other.net"},
		{"alias case kept", "#Foo:example.org", "#Foo:example.org"},
		{"no alias", "", string(room)},
		{"alias with space", "#foo bar:example.org", string(room)},
		{"alias with comma", "#foo,bar:example.org", string(room)},
		{"alias with CR", "#foo\r:example.org", string(room)},
		{"alias with LF", "#foo\n:example.org", string(room)},
		{"alias with NUL", "#foo\x00:example.org", string(room)},
		{"alias with BEL", "#foo\x07:example.org", string(room)},
		{"alias of only the sigil", "#", string(room)},
		// An alias always starts with '#'; a canonical alias that looks like a
		// room ID must not make this room pose as another.
		{"alias without sigil", "foo:example.org", string(room)},
		{"alias posing as room ID", "!other:example.org", string(room)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ChannelName(room, c.alias); got != c.want {
				t.Errorf("ChannelName(%q, %q) = %q, want %q", room, c.alias, got, c.want)
			}
		})
	}
}

// A channel name made from an alias reads back as that alias.
func TestChannelNameRoundTrip(t *testing.T) {
	for _, alias := range []id.RoomAlias{"#foo:example.org", "#a:b", "#Mixed.Case-1:srv:8448"} {
		name := ChannelName("!x:y", alias)
		target, ok := ParseChannel(name, "own.example")
		if !ok || target.Alias != alias {
			t.Errorf("ParseChannel(ChannelName(%q)) = %+v, %v", alias, target, ok)
		}
	}
	name := ChannelName("!room:example.org", "")
	target, ok := ParseChannel(name, "own.example")
	if !ok || target.RoomID != "!room:example.org" {
		t.Errorf("ParseChannel(ChannelName(room ID)) = %+v, %v", target, ok)
	}
}

func TestParseChannel(t *testing.T) {
	const own = "own.example"
	cases := []struct {
		name string
		own  string
		want RoomTarget
		ok   bool
	}{
		{"#foo", own, RoomTarget{Alias: "#foo:own.example", Local: "foo", Server: own}, true},
		{"#foo:srv.net", own, RoomTarget{Alias: "#foo:srv.net", Local: "foo", Server: "srv.net"}, true},
		{"#foo:srv.net", "", RoomTarget{Alias: "#foo:srv.net", Local: "foo", Server: "srv.net"}, true},
		{"#foo:localhost:8448", own, RoomTarget{Alias: "#foo:localhost:8448", Local: "foo", Server: "localhost:8448"}, true},
		{"#Foo", own, RoomTarget{Alias: "#Foo:own.example", Local: "Foo", Server: own}, true},
		{"##foo", own, RoomTarget{Alias: "##foo:own.example", Local: "#foo", Server: own}, true},
		{"#foo", "localhost:8008", RoomTarget{Alias: "#foo:localhost:8008", Local: "foo", Server: "localhost:8008"}, true},
		{"!id:srv.net", own, RoomTarget{RoomID: "!id:srv.net", Local: "id", Server: "srv.net"}, true},
		{"!id:srv.net", "", RoomTarget{RoomID: "!id:srv.net", Local: "id", Server: "srv.net"}, true},
		{"!AbC:srv.net", own, RoomTarget{RoomID: "!AbC:srv.net", Local: "AbC", Server: "srv.net"}, true},

		{"!id", own, RoomTarget{}, false},
		{"!id:", own, RoomTarget{}, false},
		{"!:srv", own, RoomTarget{}, false},
		{"!", own, RoomTarget{}, false},
		{"#foo", "", RoomTarget{}, false},
		{"#foo:", own, RoomTarget{}, false},
		{"#", own, RoomTarget{}, false},
		{"#:x", own, RoomTarget{}, false},
		{"#:", own, RoomTarget{}, false},
		{"#a b", own, RoomTarget{}, false},
		{"#a,b", own, RoomTarget{}, false},
		{"#a\x07b", own, RoomTarget{}, false},
		{"#a\x00b", own, RoomTarget{}, false},
		{"#a\rb", own, RoomTarget{}, false},
		{"#a\nb", own, RoomTarget{}, false},
		{"#a:b c", own, RoomTarget{}, false},
		{"x", own, RoomTarget{}, false},
		{"foo:srv", own, RoomTarget{}, false},
		{"&foo", own, RoomTarget{}, false},
		{"@user:srv", own, RoomTarget{}, false},
		{"", own, RoomTarget{}, false},
	}
	for _, c := range cases {
		got, ok := ParseChannel(c.name, c.own)
		if ok != c.ok || got != c.want {
			t.Errorf("ParseChannel(%q, %q) = %+v, %v; want %+v, %v", c.name, c.own, got, ok, c.want, c.ok)
		}
	}
}

func FuzzParseChannel(f *testing.F) {
	for _, s := range []string{"#foo", "#foo:srv", "!id:srv", "!id", "#", "#:x", "#a b", "#a,b", "x", "",
		"##:", "#a:b:c", "!:", "#\x00", "#é:srv"} {
		f.Add(s, uint8(0))
	}
	owns := []string{"own.example", "", "localhost:8448", "[::1]:8448"}
	f.Fuzz(func(t *testing.T, name string, which uint8) {
		own := owns[int(which)%len(owns)]
		target, ok := ParseChannel(name, own)
		if !ok {
			if target != (RoomTarget{}) {
				t.Fatalf("ParseChannel(%q, %q) failed but returned %+v", name, own, target)
			}
			return
		}
		var full string
		switch name[0] {
		case '#':
			if target.RoomID != "" || target.Alias == "" {
				t.Fatalf("ParseChannel(%q, %q) = %+v: want an alias only", name, own, target)
			}
			full = string(target.Alias)
		case '!':
			if target.Alias != "" || target.RoomID == "" {
				t.Fatalf("ParseChannel(%q, %q) = %+v: want a room ID only", name, own, target)
			}
			full = string(target.RoomID)
		default:
			t.Fatalf("ParseChannel(%q, %q) accepted a name without a channel sigil: %+v", name, own, target)
		}
		if full[0] != name[0] {
			t.Fatalf("ParseChannel(%q, %q) = %q: sigil changed", name, own, full)
		}
		if strings.ContainsAny(full, " ,\x00\r\n") {
			t.Fatalf("ParseChannel(%q, %q) = %q: contains a forbidden byte", name, own, full)
		}
		if target.Local == "" || target.Server == "" {
			t.Fatalf("ParseChannel(%q, %q) = %+v: empty local or server part", name, own, target)
		}
		if strings.Contains(target.Local, ":") {
			t.Fatalf("ParseChannel(%q, %q) = %+v: local part holds ':'", name, own, target)
		}
		if want := name[:1] + target.Local + ":" + target.Server; full != want {
			t.Fatalf("ParseChannel(%q, %q) = %q, want %q", name, own, full, want)
		}
		// What parsed once reads back the same, whatever the own server.
		again, ok := ParseChannel(full, "")
		if !ok || again != target {
			t.Fatalf("ParseChannel(%q) = %+v, %v; first pass of %q gave %+v", full, again, ok, name, target)
		}
	})
}

func TestParseAccount(t *testing.T) {
	const def = "example.org"
	cases := []struct {
		account, def string
		want         id.UserID
		ok           bool
	}{
		{"@alice:example.org", def, "@alice:example.org", true},
		{"@alice:example.org", "", "@alice:example.org", true},
		{"@alice:other.net", def, "@alice:other.net", true},
		{"alice:example.org", def, "@alice:example.org", true},
		{"alice:example.org", "", "@alice:example.org", true},
		{"alice", def, "@alice:example.org", true},
		{"@alice", def, "@alice:example.org", true},
		{"alice:localhost:8448", def, "@alice:localhost:8448", true},
		{"Alice", def, "@alice:example.org", true},
		{"@ALICE:example.org", def, "@alice:example.org", true},
		{"@Alice:Example.org", def, "@alice:Example.org", true}, // only the localpart is folded
		{"a.b_c=d-e+f", def, "@a.b_c=d-e+f:example.org", true},

		{"alice", "", "", false},
		{"@alice", "", "", false},
		{"@:x", def, "", false},
		{":x", def, "", false},
		{"@", def, "", false},
		{"", def, "", false},
		{"", "", "", false},
		{"alice:", def, "", false},
		{"@alice:", def, "", false},
		{"a b", def, "", false},
		{"a@b", def, "", false},
		{"@@alice", def, "", false},
		{"a/b", def, "", false},
		{"alice:ex/ample.org", def, "", false},
		{"a\x00b", def, "", false},
		{" alice", def, "", false},
		{"alice@laptop", def, "", false},
	}
	for _, c := range cases {
		got, ok := ParseAccount(c.account, c.def)
		if ok != c.ok || got != c.want {
			t.Errorf("ParseAccount(%q, %q) = %q, %v; want %q, %v", c.account, c.def, got, ok, c.want, c.ok)
		}
	}
}

func FuzzParseAccount(f *testing.F) {
	for _, s := range []string{"@alice:example.org", "alice:example.org", "alice", "Alice", "@:x", "", "a b",
		"a@b", "a/b", "@alice:", "ÄLICE", "\u212A", "a\xffb:srv"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, account string, withDefault bool) {
		def := ""
		if withDefault {
			def = "example.org"
		}
		user, ok := ParseAccount(account, def)
		if !ok {
			if user != "" {
				t.Fatalf("ParseAccount(%q, %q) failed but returned %q", account, def, user)
			}
			return
		}
		local, server, err := user.Parse()
		if err != nil {
			t.Fatalf("ParseAccount(%q, %q) = %q: %v", account, def, user, err)
		}
		if local == "" || server == "" {
			t.Fatalf("ParseAccount(%q, %q) = %q: empty localpart or server", account, def, user)
		}
		if local != strings.ToLower(local) {
			t.Fatalf("ParseAccount(%q, %q) = %q: localpart not lowercase", account, def, user)
		}
		if strings.ContainsAny(string(user), " \x00/") || strings.Count(string(user), "@") != 1 {
			t.Fatalf("ParseAccount(%q, %q) = %q: forbidden character", account, def, user)
		}
		if !strings.Contains(account, ":") && server != def {
			t.Fatalf("ParseAccount(%q, %q) = %q: bare name not on the default server", account, def, user)
		}
		// A user ID it produced reads back as itself.
		if again, ok := ParseAccount(string(user), ""); !ok || again != user {
			t.Fatalf("ParseAccount(%q) = %q, %v; want it unchanged", user, again, ok)
		}
	})
}

func TestUserHost(t *testing.T) {
	cases := []struct {
		user        id.UserID
		user2, host string
	}{
		{"@alice:example.org", "alice", "example.org"},
		{"@Alice:example.org", "Alice", "example.org"},
		{"@alice:localhost:8448", "alice", "localhost:8448"},
		{"@a.b_c=d-e/f+g:srv", "a.b_c=d-e/f+g", "srv"},
		{"@a!b:srv", "a_b", "srv"},
		{"@a@b:srv", "a_b", "srv"},
		{"@a,b:srv", "a_b", "srv"},
		{"@a*b?:srv", "a_b_", "srv"},
		{"@a b:srv", "a_b", "srv"},
		{"@a\r\nb\x00:srv", "a__b_", "srv"},
		{"@alice:ev!l srv", "alice", "ev_l_srv"},
		{"@élise:srv", "élise", "srv"},
		// Not valid user IDs: never a panic, a fixed placeholder.
		{"", "matrix", "unknown"},
		{"@", "matrix", "unknown"},
		{"@alice", "matrix", "unknown"},
		{"@alice:", "matrix", "unknown"},
		{"@:srv", "matrix", "unknown"},
		{"alice:srv", "matrix", "unknown"},
		{"#room:srv", "matrix", "unknown"},
	}
	for _, c := range cases {
		u, h := UserHost(c.user)
		if u != c.user2 || h != c.host {
			t.Errorf("UserHost(%q) = %q, %q; want %q, %q", c.user, u, h, c.user2, c.host)
		}
	}
}

func TestNickCandidates(t *testing.T) {
	cases := []struct {
		user id.UserID
		want []string
	}{
		{"@alice:example.org", []string{"alice", "alice:example.org"}},
		{"@Alice:example.org", []string{"Alice", "Alice:example.org"}},
		{"@alice:localhost:8448", []string{"alice", "alice:localhost:8448"}},
		{"@a!b:srv", []string{"a_b", "a_b:srv"}},
		{"@a@b:srv", []string{"a_b", "a_b:srv"}},
		{"@a,b:srv", []string{"a_b", "a_b:srv"}},
		{"@a*b:srv", []string{"a_b", "a_b:srv"}},
		{"@a b:srv", []string{"a_b", "a_b:srv"}},
		{"@!ab:srv", []string{"_ab", "_ab:srv"}},
		{"@1alice:srv", []string{"_1alice", "_1alice:srv"}},
		{"@9:srv", []string{"_9", "_9:srv"}},
		{"@-alice:srv", []string{"_-alice", "_-alice:srv"}},
		{"@#alice:srv", []string{"_#alice", "_#alice:srv"}},
		{"@&alice:srv", []string{"_&alice", "_&alice:srv"}},
		{"@+alice:srv", []string{"_+alice", "_+alice:srv"}},
		{"@~alice:srv", []string{"_~alice", "_~alice:srv"}},
		{"@%alice:srv", []string{"_%alice", "_%alice:srv"}},
		{"@$alice:srv", []string{"_$alice", "_$alice:srv"}},
		{"@_alice:srv", []string{"_alice", "_alice:srv"}},
		{"@alice1-:srv", []string{"alice1-", "alice1-:srv"}},
		{"", []string{"matrix", "matrix:unknown"}},
		{"@:srv", []string{"matrix", "matrix:unknown"}},
		{"@alice", []string{"matrix", "matrix:unknown"}},
		{"not an id", []string{"matrix", "matrix:unknown"}},
	}
	for _, c := range cases {
		got := NickCandidates(c.user)
		if !slices.Equal(got, c.want) {
			t.Errorf("NickCandidates(%q) = %q, want %q", c.user, got, c.want)
		}
	}
}

func FuzzNickCandidates(f *testing.F) {
	for _, s := range []string{"@alice:example.org", "@1a:srv", "@-:srv", "@a!b@c,d*e f:srv", "", "@", "@:", "@\xff:\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		user := id.UserID(s)
		u, h := UserHost(user)
		if u == "" || h == "" {
			t.Fatalf("UserHost(%q) = %q, %q: empty part", s, u, h)
		}
		if strings.ContainsAny(u+h, " !@,*?\x00\r\n") {
			t.Fatalf("UserHost(%q) = %q, %q: unsafe byte in hostmask", s, u, h)
		}
		nicks := NickCandidates(user)
		if len(nicks) != 2 {
			t.Fatalf("NickCandidates(%q) = %q: want two", s, nicks)
		}
		if nicks[0] == nicks[1] || irctext.Casefold(nicks[0]) == irctext.Casefold(nicks[1]) {
			t.Fatalf("NickCandidates(%q) = %q: candidates not distinct", s, nicks)
		}
		if nicks[1] != nicks[0]+":"+h {
			t.Fatalf("NickCandidates(%q) = %q: second is not first:server (%q)", s, nicks, h)
		}
		for _, n := range nicks {
			if n == "" || strings.ContainsAny(n, " !@,*?\x00\r\n") {
				t.Fatalf("NickCandidates(%q) = %q: unsafe nick %q", s, nicks, n)
			}
			if strings.ContainsAny(n[:1], "#!&+~%@:$-0123456789") {
				t.Fatalf("NickCandidates(%q) = %q: nick %q starts with %q", s, nicks, n, n[:1])
			}
		}
	})
}

func TestNickFromDisplayName(t *testing.T) {
	cases := map[string]string{
		"Bob Builder":           "Bob_Builder",
		"  Alice  ":             "Alice",
		"Dr. Who?":              "Dr_Who",
		"a  b":                  "a_b",
		"42":                    "_42",
		"-dash":                 "_-dash",
		"日本語":                   "日本語",
		"@bob:example.org":      "bobexampleorg",
		"#channel":              "channel",
		"zero\u200bwidth":       "zerowidth",
		"":                      "",
		"   ":                   "",
		"!!!":                   "",
		strings.Repeat("x", 50): strings.Repeat("x", 32),
	}
	for in, want := range cases {
		if got := NickFromDisplayName(in); got != want {
			t.Errorf("NickFromDisplayName(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzNickFromDisplayName(f *testing.F) {
	for _, s := range []string{"Bob Builder", "日本語", "", "1", "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		nick := NickFromDisplayName(name)
		if nick == "" {
			return
		}
		if len(nick) > maxDerivedNick+1 || strings.ContainsAny(nick, " ,*?!@:#\x00\r\n") || !utf8.ValidString(nick) {
			t.Fatalf("bad nick %q from %q", nick, name)
		}
		if c := nick[0]; c == '-' || (c >= '0' && c <= '9') {
			t.Fatalf("nick %q starts with %q", nick, c)
		}
	})
}

func TestReadableChannel(t *testing.T) {
	cases := map[string]string{
		"Project Talk":          "#Project-Talk",
		"  spaced   out  ":      "#spaced-out",
		"#already":              "#already",
		"a:b,c":                 "#abc",
		"":                      "",
		"   ":                   "",
		"::,,":                  "",
		"日本語の部屋":                "#日本語の部屋",
		strings.Repeat("x", 80): "#" + strings.Repeat("x", maxReadableChannel-1),
	}
	for in, want := range cases {
		if got := ReadableChannel(in); got != want {
			t.Errorf("ReadableChannel(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzReadableChannel(f *testing.F) {
	for _, s := range []string{"Project Talk", "a:b", "", "\x07"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		ch := ReadableChannel(name)
		if ch == "" {
			return
		}
		if ch[0] != '#' || len(ch) > maxReadableChannel || strings.ContainsAny(ch[1:], " ,:#\x07\x00\r\n") || !utf8.ValidString(ch) {
			t.Fatalf("bad channel %q from %q", ch, name)
		}
		if _, ok := ParseChannel(ch, "example.org"); !ok {
			t.Fatalf("channel %q does not parse", ch)
		}
	})
}

func TestShortAlias(t *testing.T) {
	if got := ShortAlias("#foo:example.org", "example.org"); got != "#foo" {
		t.Errorf("own alias = %q", got)
	}
	if got := ShortAlias("#foo:other.org", "example.org"); got != "#foo:other.org" {
		t.Errorf("remote alias = %q", got)
	}
	if got := ShortAlias("#:example.org", "example.org"); got != "#:example.org" {
		t.Errorf("empty local = %q", got)
	}
}

func TestSplitClientName(t *testing.T) {
	tests := []struct {
		in, acct, client string
		ok               bool
	}{
		{"alice", "alice", "", true},
		{"@alice:example.org", "@alice:example.org", "", true},
		{"alice@laptop", "alice", "laptop", true},
		{"@alice:example.org@phone-2", "@alice:example.org", "phone-2", true},
		{"alice:example.org@my.box_1", "alice:example.org", "my.box_1", true},
		{"alice@", "alice@", "", false},
		{"alice@lap top", "alice@lap top", "", false},
		{"alice@" + strings.Repeat("x", 33), "alice@" + strings.Repeat("x", 33), "", false},
	}
	for _, tt := range tests {
		acct, client, ok := SplitClientName(tt.in)
		if acct != tt.acct || client != tt.client || ok != tt.ok {
			t.Errorf("SplitClientName(%q) = %q, %q, %v; want %q, %q, %v", tt.in, acct, client, ok, tt.acct, tt.client, tt.ok)
		}
	}
}

func TestAccountName(t *testing.T) {
	tests := []struct {
		user        id.UserID
		shortServer string
		want        string
	}{
		{"@alice:example.org", "example.org", "alice"},
		{"@alice:example.org", "", "@alice:example.org"},
		{"@alice:other.org", "example.org", "@alice:other.org"},
		{"not-an-id", "example.org", "not-an-id"},
	}
	for _, tt := range tests {
		if got := AccountName(tt.user, tt.shortServer); got != tt.want {
			t.Errorf("AccountName(%q, %q) = %q, want %q", tt.user, tt.shortServer, got, tt.want)
		}
	}
}
