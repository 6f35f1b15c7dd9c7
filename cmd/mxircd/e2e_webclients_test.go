//go:build linux

package main

import (
	"context"
	"encoding/json"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"

	"github.com/mxircd/mxircd/internal/testenv"
	"github.com/mxircd/mxircd/internal/testenv/ircframework"
	"github.com/mxircd/mxircd/store/storetest"
)

// Issue 16: a client that is not ours, npm's irc-framework (Kiwi IRC's
// library) in Node.js, logs in over WebSocket and talks both ways.
func TestWebSocketIRCFramework(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			g := webGateway(t, hs, driver)
			alice, bob, room, channel := twoInARoom(t, hs, "kiwi")
			addr := g.wsAddrs[0].(*net.TCPAddr)

			c := ircframework.Start(t, ircframework.Options{
				Host: addr.IP.String(), Port: addr.Port, Protocol: "text.ircv3.net",
				Nick: "alice", Account: alice.UserID.String(), Password: alice.Password,
			})
			c.Expect(t, "REGISTERED ")
			typed := "typed in irc-framework ✓"
			c.Say(channel, typed)
			bob.WaitForEvent(t, ctxFor(t), room, func(ev *event.Event) bool {
				return ev.Type == event.EventMessage && ev.Content.AsMessage().Body == typed
			})
			reply := "answered from Matrix ✓"
			if _, err := bob.Client.SendText(ctxFor(t), room, reply); err != nil {
				t.Fatal(err)
			}
			if got := c.Expect(t, "MESSAGE "+channel+" "+bob.Localpart+" "); !strings.HasSuffix(got, " "+reply) {
				t.Fatalf("irc-framework got %q, want bob's %q", got, reply)
			}
			c.Quit()
			c.Expect(t, "CLOSED")
		})
	}
}

// chromiumPath is the browser: MXIRCD_TEST_CHROMIUM (which .ci/run sets
// when it has installed Debian's chromium), or Debian's path.
func chromiumPath(t *testing.T) string {
	if p := os.Getenv("MXIRCD_TEST_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("MXIRCD_TEST_CHROMIUM: %v", err)
		}
		return p
	}
	const debian = "/usr/bin/chromium"
	if _, err := os.Stat(debian); err != nil {
		t.Skipf("no %s (Debian's chromium package; .ci/run installs it)", debian)
	}
	return debian
}

// Issue 16: a web page in a real browser (headless Chromium) logs in over
// WebSocket with SASL, says something that arrives in Matrix, and gets the
// answer. The page reports each step to the test's own server.
func TestWebSocketBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			hs := testenv.SharedHomeserver(t)
			alice, bob, room, channel := twoInARoom(t, hs, "browser")

			reports := make(chan string, 16)
			var pageSet atomic.Pointer[pageData] // the gateway's address is known after the site's
			site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/":
					w.Header().Set("Content-Type", "text/html; charset=utf-8")
					browserPage.Execute(w, pageSet.Load())
				case "/report":
					b, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
					reports <- string(b)
				default:
					http.NotFound(w, r)
				}
			}))
			defer site.Close()
			// The page's origin is the one web page let in.
			g := webGateway(t, hs, driver, site.URL)
			page := &pageData{
				URL: g.wsURL(false), Nick: "alice", Channel: channel,
				Account: alice.UserID.String(), Password: alice.Password,
				Text: "typed in Chromium ✓", Reply: "answered from Matrix to Chromium ✓",
			}

			pageSet.Store(page)
			runBrowser(t, chromium, site.URL+"/")
			expect := func(prefix string) string {
				t.Helper()
				timer := time.NewTimer(testenv.DefaultIRCTimeout)
				defer timer.Stop()
				for {
					select {
					case r := <-reports:
						if strings.HasPrefix(r, prefix) {
							return r
						}
						if strings.HasPrefix(r, "error") {
							t.Fatalf("the page reports %q, waiting for %q", r, prefix)
						}
					case <-timer.C:
						t.Fatalf("the page never reported %q", prefix)
					}
				}
			}
			expect("registered")
			expect("joined")
			bob.WaitForEvent(t, ctxFor(t), room, func(ev *event.Event) bool {
				return ev.Type == event.EventMessage && ev.Content.AsMessage().Body == page.Text
			})
			if _, err := bob.Client.SendText(ctxFor(t), room, page.Reply); err != nil {
				t.Fatal(err)
			}
			expect("got " + page.Reply)
		})
	}
}

// runBrowser opens url in headless Chromium until the test ends.
func runBrowser(t *testing.T, chromium, url string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions",
		"--user-data-dir="+t.TempDir(), url)
	// Its own process group, so that its helpers go with it; killed
	// with the test binary too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("chromium's stderr:\n%s", stderr.String())
		}
	})
}

type pageData struct {
	URL, Nick, Channel, Account, Password, Text, Reply string
}

// js makes a Go string a JavaScript string literal.
func js(s string) template.JS {
	b, _ := json.Marshal(s)
	return template.JS(b)
}

// browserPage is a minimal web IRC client: SASL PLAIN, wait for the
// channel, say something, wait for the answer, reporting each step.
var browserPage = template.Must(template.New("page").Funcs(template.FuncMap{"js": js}).Parse(`<!doctype html>
<meta charset="utf-8"><title>mxircd WebSocket test</title>
<pre id="log"></pre>
<script>
const cfg = {url: {{js .URL}}, nick: {{js .Nick}}, channel: {{js .Channel}}, account: {{js .Account}},
	password: {{js .Password}}, text: {{js .Text}}, reply: {{js .Reply}}};
function report(s) {
	document.getElementById("log").textContent += s + "\n";
	fetch("/report", {method: "POST", body: s});
}
const utf8b64 = (s) => btoa(String.fromCharCode(...new TextEncoder().encode(s)));
const ws = new WebSocket(cfg.url, ["text.ircv3.net"]);
const send = (line) => ws.send(line);
ws.onopen = () => {
	if (ws.protocol !== "text.ircv3.net") report("error: subprotocol " + ws.protocol);
	send("CAP LS 302");
	send("NICK " + cfg.nick);
	send("USER " + cfg.nick + " 0 * :browser");
	send("CAP REQ :sasl");
};
ws.onerror = () => report("error: WebSocket error");
ws.onclose = (e) => report("closed " + e.code);
ws.onmessage = (e) => {
	if (typeof e.data !== "string") { report("error: binary message on text.ircv3.net"); return; }
	const line = e.data;
	if (/[\r\n]/.test(line)) report("error: line break inside a message");
	const m = line.match(/^(?:@\S+ )?(?::(\S+) )?(\S+)(.*)$/);
	const [prefix, cmd, rest] = [m[1] || "", m[2], m[3]];
	const params = [];
	let r = rest;
	while (r.startsWith(" ")) {
		r = r.slice(1);
		if (r.startsWith(":")) { params.push(r.slice(1)); break; }
		const i = r.indexOf(" ");
		params.push(i < 0 ? r : r.slice(0, i));
		r = i < 0 ? "" : r.slice(i);
	}
	switch (cmd) {
	case "PING": send("PONG :" + params[0]); break;
	case "CAP": if (params[1] === "ACK") send("AUTHENTICATE PLAIN"); break;
	case "AUTHENTICATE": send("AUTHENTICATE " + utf8b64("\0" + cfg.account + "\0" + cfg.password)); break;
	case "903": send("CAP END"); break;
	case "904": case "905": case "ERROR": report("error: " + line); break;
	case "001": report("registered"); break;
	case "366":
		if (params[1] === cfg.channel) { report("joined"); send("PRIVMSG " + cfg.channel + " :" + cfg.text); }
		break;
	case "PRIVMSG":
		if (params[0] === cfg.channel && params[1] === cfg.reply) report("got " + params[1]);
		break;
	}
};
</script>
`))
