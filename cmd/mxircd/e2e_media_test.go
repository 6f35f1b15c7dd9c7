package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"

	"github.com/mxircd/mxircd/internal/testenv"
)

// A file shared in Matrix arrives as a line with a link that opens in a
// browser, although the homeserver requires a login to download media.
func TestMediaLinks(t *testing.T) {
	hs := testenv.SharedHomeserver(t)
	g := startTestGateway(t, gatewayConfig(t, hs, "sqlite", func(c *Config) { c.HTTP.Listen = "127.0.0.1:0" }))

	alice, bob, room, channel := twoInARoom(t, hs, "media")
	c := connect(t, g, "alice", alice)
	// What is sent before the connect burst is history, not shown.
	c.ExpectMatch(t, isCmd("JOIN", channel), "JOIN burst")
	waitNames(t, c, channel, bob.Localpart)
	ctx := ctxFor(t)

	picture := bytes.Repeat([]byte("not really a png "), 100)
	up, err := bob.Client.UploadBytesWithName(ctx, picture, "image/png", "holiday.png")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Client.SendMessageEvent(ctx, room, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgImage, Body: "holiday.png", URL: up.ContentURI.CUString(),
	}); err != nil {
		t.Fatal(err)
	}
	m := expectFrom(t, c, "PRIVMSG", bob.Localpart, "holiday.png")
	if m.Param(0) != channel {
		t.Errorf("image line went to %s", m.Param(0))
	}
	fields := strings.Fields(m.Trailing())
	link := fields[len(fields)-1]
	if !strings.HasPrefix(link, "http://"+g.mediaLn.Addr().String()+"/") {
		t.Fatalf("no gateway link in %q", m.Trailing())
	}

	httpc := &http.Client{Timeout: 10 * time.Second}
	resp, err := httpc.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, picture) || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("GET link: %s %q, %d bytes", resp.Status, resp.Header.Get("Content-Type"), len(body))
	}

	// The link keeps working after the client and its session have gone:
	// the gateway downloads with the stored token.
	alwaysOff(t, c)
	c.Send("QUIT")
	c.ExpectClosed(t)
	waitNoSession(t, g)
	resp, err = httpc.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("link after disconnect: %s", resp.Status)
	}
	// A forged link does not.
	resp, err = httpc.Get(link[:len(link)-20] + "AAAAAAAAAAAAAAAAAAAA")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("forged link served")
		}
	}
}
