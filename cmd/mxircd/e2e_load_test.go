package main

import (
	"fmt"
	"sync"
	"testing"

	"gopkg.in/irc.v4"

	"github.com/mxircd/mxircd/internal/testenv"
)

// Many users connect at once, join one room and talk: everyone gets every
// message, in order per sender, and nothing deadlocks. Bounded in size so
// it stays a correctness test, not a benchmark.
func TestManyUsersOneRoom(t *testing.T) {
	if testing.Short() {
		t.Skip("registers many accounts")
	}
	const users, messages = 12, 3
	hs := testenv.SharedHomeserver(t)
	g := testGateway(t, hs, "sqlite")
	owner := hs.Register(t, "owner")
	aliasLocal := uniq("crowd")
	room := createRoom(t, owner, aliasLocal, "")
	channel := "#" + aliasLocal + ":" + hs.ServerName

	accounts := make([]*testenv.Account, users)
	for i := range accounts {
		accounts[i] = hs.Register(t, fmt.Sprintf("u%d", i))
		joinRoom(t, accounts[i], room)
	}
	clients := make([]*testenv.IRCClient, users)
	var wg sync.WaitGroup
	for i := range accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := testenv.DialIRC(t, g.ircAddr())
			c.Register(t, fmt.Sprintf("n%d", i), accounts[i].UserID.String(), accounts[i].Password)
			c.ExpectMatch(t, isCmd(irc.RPL_ENDOFNAMES, fmt.Sprintf("n%d", i), channel), "burst")
			clients[i] = c
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i, c := range clients {
		for j := 0; j < messages; j++ {
			c.Send("PRIVMSG %s :from %d number %d", channel, i, j)
		}
	}
	for i, c := range clients {
		next := make([]int, users) // the next number expected from each sender
		got := 0
		c.ExpectMatch(t, func(m *irc.Message) bool {
			var from, n int
			if m.Command != "PRIVMSG" {
				return false
			}
			if _, err := fmt.Sscanf(m.Trailing(), "from %d number %d", &from, &n); err != nil {
				return false
			}
			if from == i {
				t.Errorf("client %d got its own message back", i)
			}
			if n != next[from] {
				t.Errorf("client %d got message %d from %d, want %d", i, n, from, next[from])
			}
			next[from] = n + 1
			got++
			return got == (users-1)*messages
		}, fmt.Sprintf("all %d messages", (users-1)*messages))
	}
}
