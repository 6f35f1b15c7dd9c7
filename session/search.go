package session

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/mapping"
	"github.com/mxircd/mxircd/store"
)

// SEARCH asks the homeserver's /search (Dendrite: sync_api.search) and
// answers with one line per match; its message ID opens the match with
// CHATHISTORY AROUND. The homeserver cannot read end-to-end encrypted
// rooms, so they are not searched, and the answer says so.

// searchLimit is how many matches one SEARCH shows.
const searchLimit = 10

type searchResponse struct {
	Categories struct {
		RoomEvents struct {
			Count   int `json:"count"`
			Results []struct {
				Result *event.Event `json:"result"`
			} `json:"results"`
		} `json:"room_events"`
	} `json:"search_categories"`
}

func (s *Session) serviceSearch(a *Attachment, out output, reply func(string), args string) {
	var rooms []id.RoomID
	words := args
	where := "your rooms"
	if first, rest, _ := strings.Cut(args, " "); strings.HasPrefix(first, "#") || strings.HasPrefix(first, "!") {
		r := s.roomByChannel(first)
		if r == nil {
			reply("You are not in " + first + ".")
			return
		}
		if s.mgr.encrypted.has(r.id) {
			reply(r.channel + " is end-to-end encrypted: the homeserver cannot read it, so it cannot search it.")
			return
		}
		rooms, words, where = []id.RoomID{r.id}, strings.TrimSpace(rest), r.channel
	}
	if words == "" {
		reply("Usage: " + serviceCommands["SEARCH"].usage)
		return
	}
	encrypted := 0
	if rooms == nil {
		for roomID := range s.rooms {
			if s.mgr.encrypted.has(roomID) {
				encrypted++
			}
		}
	}
	filter := map[string]any{"limit": searchLimit}
	if rooms != nil {
		filter["rooms"] = rooms
	}
	body := map[string]any{"search_categories": map[string]any{"room_events": map[string]any{
		"search_term": words, "order_by": "recent", "filter": filter, "keys": []string{"content.body"},
	}}}
	s.sideRequest(a, out, "PRIVMSG", func(ctx context.Context) func() {
		var resp searchResponse
		_, err := s.cli.MakeRequest(ctx, "POST", s.cli.BuildClientURL("v3", "search"), body, &resp)
		return func() {
			if err != nil {
				reply("The search failed: " + matrixErrorText(err))
				return
			}
			results := resp.Categories.RoomEvents.Results
			shown := 0
			for _, res := range results {
				ev := res.Result
				if ev == nil || shown == searchLimit {
					continue
				}
				r := s.rooms[ev.RoomID]
				if r == nil || s.isIgnored(ev.Sender) {
					continue
				}
				shown++
				reply(s.searchLine(a, r, ev))
			}
			switch {
			case shown == 0:
				reply("Nothing in " + where + " matches \"" + words + "\".")
			case resp.Categories.RoomEvents.Count > shown:
				reply(strconv.Itoa(shown) + " of " + strconv.Itoa(resp.Categories.RoomEvents.Count) + " matches shown, newest first; add words to narrow the search. CHATHISTORY AROUND <channel> msgid=<ID> shows a match in its conversation.")
			default:
				reply("End of matches. CHATHISTORY AROUND <channel> msgid=<ID> shows a match in its conversation.")
			}
			if encrypted > 0 {
				reply(strconv.Itoa(encrypted) + " of your rooms are end-to-end encrypted; the homeserver cannot search them.")
			}
		}
	})
}

// searchLine is one match: time, channel (or query), sender, text, ID.
func (s *Session) searchLine(a *Attachment, r *room, ev *event.Event) string {
	where := r.channel
	if r.dm != "" {
		where = s.nickOf(a, r.dm)
	}
	text := ""
	if parseContent(ev) {
		text = ev.Content.AsMessage().Body
	}
	return stamp(ev.Timestamp) + " " + where + " <" + s.nickOf(a, ev.Sender) + "> " + mapping.Snippet(text) + " (msgid=" + string(ev.ID) + ")"
}

func stamp(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04Z")
}

// threadScan is how many of a room's newest stored messages THREADS reads.
const threadScan = 5000

// threadsShown is how many threads THREADS lists.
const threadsShown = 20

type threadSummary struct {
	root    id.EventID
	replies int
	lastTS  int64
}

// serviceThreads lists a channel's threads from the stored messages: the
// relation of a thread message is readable even when it is encrypted.
func (s *Session) serviceThreads(a *Attachment, out output, reply func(string), args string) {
	r := s.roomByChannel(strings.TrimSpace(args))
	if r == nil {
		if args == "" {
			reply("Usage: " + serviceCommands["THREADS"].usage)
		} else {
			reply("You are not in " + args + ".")
		}
		return
	}
	roomID, channel := r.id, r.channel
	s.sideRequest(a, out, "PRIVMSG", func(ctx context.Context) func() {
		events, err := s.mgr.store.RoomHistory(ctx, store.HistoryQuery{RoomID: roomID, Viewer: s.user, Limit: threadScan, Newest: true,
			Types: []string{event.EventMessage.Type, event.EventEncrypted.Type}})
		threads := map[id.EventID]*threadSummary{}
		if err == nil {
			for _, se := range events {
				var c struct {
					Rel struct {
						Type    string     `json:"rel_type"`
						EventID id.EventID `json:"event_id"`
					} `json:"m.relates_to"`
				}
				var ev struct {
					Content json.RawMessage `json:"content"`
				}
				if json.Unmarshal(se.JSON, &ev) != nil || json.Unmarshal(ev.Content, &c) != nil || c.Rel.Type != "m.thread" || c.Rel.EventID == "" {
					continue
				}
				t := threads[c.Rel.EventID]
				if t == nil {
					t = &threadSummary{root: c.Rel.EventID}
					threads[t.root] = t
				}
				t.replies++
				t.lastTS = max(t.lastTS, se.TS)
			}
		}
		list := make([]*threadSummary, 0, len(threads))
		for _, t := range threads {
			list = append(list, t)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].lastTS > list[j].lastTS })
		if len(list) > threadsShown {
			list = list[:threadsShown]
		}
		// The roots, for their first words.
		var roots []store.StoredEvent
		for _, t := range list {
			if se, err := s.mgr.store.FindEvent(ctx, roomID, t.root); err == nil {
				roots = append(roots, *se)
			}
		}
		s.decryptStored(ctx, roots)
		return func() {
			if err != nil {
				reply("Could not read " + channel + "'s messages: " + err.Error())
				return
			}
			if len(list) == 0 {
				reply("No threads in " + channel + " among the messages this gateway has kept.")
				return
			}
			byID := map[id.EventID]*event.Event{}
			for _, se := range roots {
				if ev, ok := decodeStored(se); ok {
					byID[ev.ID] = ev
				}
			}
			for _, t := range list {
				about := "a message this gateway has not kept"
				if ev := byID[t.root]; ev != nil && parseContent(ev) && ev.Type == event.EventMessage {
					about = s.nickOf(a, ev.Sender) + ": \"" + mapping.Snippet(ev.Content.AsMessage().Body) + "\""
				}
				reply(about + " — " + strconv.Itoa(t.replies) + " " + pluralWord(t.replies, "reply", "replies") + ", last " + stamp(t.lastTS) + " (msgid=" + string(t.root) + ")")
			}
			reply("End of threads in " + channel + ". Reply (+draft/reply) to a thread's message to write in it; the homeserver cannot list threads, so this counts only what this gateway has kept.")
		}
	})
}

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
