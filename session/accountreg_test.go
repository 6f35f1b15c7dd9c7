package session

import (
	"errors"
	"strings"
	"testing"
)

// REGISTER's name becomes a localpart on the gateway's server, or is
// refused in words before the homeserver is asked.
func TestRegisterLocalpart(t *testing.T) {
	m := &Manager{cfg: Config{ServerName: "example.org"}}
	for _, tc := range []struct{ name, want string }{
		{"alice", "alice"},
		{"Alice", "alice"},
		{"a.b_c=d-e/f+g", "a.b_c=d-e/f+g"},
		{"@bob:example.org", "bob"},
		{"@Bob:Example.org", "bob"},
	} {
		got, err := m.RegisterLocalpart(tc.name)
		if err != nil || got != tc.want {
			t.Errorf("RegisterLocalpart(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ name, says string }{
		{"", "give a name"},
		{"_bridge", "reserved"},
		{"no*pe", `'*'`},
		{"émile", `'é'`},
		{"@bob:elsewhere.org", "only be registered on example.org"},
		{"@bob", "only be registered on example.org"},
		{strings.Repeat("a", 250), "too long"},
	} {
		_, err := m.RegisterLocalpart(tc.name)
		if !errors.Is(err, ErrBadAccountName) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("RegisterLocalpart(%q) = %v; want ErrBadAccountName saying %q", tc.name, err, tc.says)
		}
	}
}
