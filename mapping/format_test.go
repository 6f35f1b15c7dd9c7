package mapping

import (
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// testUsers are the people the format tests know: Matrix ID ↔ nick.
var testUsers = map[id.UserID]string{
	"@alice:example.org": "alice",
	"@bob:example.org":   "bob[m]",
	"@carol:example.org": "Carol",
}

// testNicks resolves nicks exactly as testUsers spells them.
func testNicks(nick string) (id.UserID, bool) {
	for user, n := range testUsers {
		if n == nick {
			return user, true
		}
	}
	return "", false
}

// foldedNicks resolves nicks case-insensitively, as a real session would.
func foldedNicks(nick string) (id.UserID, bool) {
	for user, n := range testUsers {
		if strings.EqualFold(n, nick) {
			return user, true
		}
	}
	return "", false
}

func testUserNick(user id.UserID) (string, bool) {
	n, ok := testUsers[user]
	return n, ok
}

func pill(user, text string) string {
	return `<a href="https://matrix.to/#/` + user + `">` + text + `</a>`
}

func TestIRCToMatrix(t *testing.T) {
	cases := []struct {
		name, in        string
		body, formatted string
		mentions        []id.UserID
	}{
		{"plain", "hello world", "hello world", "", nil},
		{"empty", "", "", "", nil},
		{"bold", "\x02bold\x02 text", "bold text", "<strong>bold</strong> text", nil},
		{"italic", "\x1Ditalic\x1D", "italic", "<em>italic</em>", nil},
		{"underline", "\x1Funder\x1F", "under", "<u>under</u>", nil},
		{"strike", "\x1Egone\x1E", "gone", "<del>gone</del>", nil},
		{"monospace", "run \x11ls -l\x11 now", "run ls -l now", "run <code>ls -l</code> now", nil},
		{"unclosed", "\x02bold to the end", "bold to the end", "<strong>bold to the end</strong>", nil},
		{"nested", "\x02a \x1Db\x1D c\x02", "a b c", "<strong>a <em>b</em> c</strong>", nil},
		{"overlapping", "\x02a\x1Db\x02c\x1D", "abc", "<strong>a<em>b</em></strong><em>c</em>", nil},
		{"overlap reopens", "\x1Fu\x02ub\x1Fb\x02", "uubb", "<u>u<strong>ub</strong></u><strong>b</strong>", nil},
		{"reset", "\x02\x1D\x1Fall\x0Fnone", "allnone", "<strong><em><u>all</u></em></strong>none", nil},
		{"reset then bold", "\x02a\x0F\x02b", "ab", "<strong>ab</strong>", nil},
		{"empty toggles", "\x02\x02plain\x1D\x1D", "plain", "", nil},
		{"reverse ignored", "\x16rev\x16 text", "rev text", "", nil},
		{"reverse with bold", "\x16\x02x", "x", "<strong>x</strong>", nil},
		{"only codes", "\x02\x1D\x0F", "", "", nil},
		{"colour", "\x0304red\x03 plain", "red plain", `<span data-mx-color="#ff0000">red</span> plain`, nil},
		{"colour one digit", "\x034red", "red", `<span data-mx-color="#ff0000">red</span>`, nil},
		{"colour then digit", "\x03045 apples", "5 apples", `<span data-mx-color="#ff0000">5 apples</span>`, nil},
		{"colour one digit then letter", "\x032x", "x", `<span data-mx-color="#00007f">x</span>`, nil},
		{"colour fg bg", "\x0304,02x", "x", `<span data-mx-color="#ff0000" data-mx-bg-color="#00007f">x</span>`, nil},
		{"colour bg one digit", "\x0304,2x", "x", `<span data-mx-color="#ff0000" data-mx-bg-color="#00007f">x</span>`, nil},
		{"colour bg keeps", "\x0304,02a\x0303b", "ab",
			`<span data-mx-color="#ff0000" data-mx-bg-color="#00007f">a</span><span data-mx-color="#009300" data-mx-bg-color="#00007f">b</span>`, nil},
		{"colour comma not bg", "\x0304,x", ",x", `<span data-mx-color="#ff0000">,x</span>`, nil},
		{"colour comma at end", "\x0304,", ",", `<span data-mx-color="#ff0000">,</span>`, nil},
		{"colour without fg", "\x03,05x", ",05x", "", nil},
		{"colour reset at end", "\x0304", "", "", nil},
		{"colour 99 default", "\x0399x", "x", "", nil},
		{"colour 99 fg with bg", "\x0399,04x", "x", `<span data-mx-bg-color="#ff0000">x</span>`, nil},
		{"colour bg 99", "\x0304,99x", "x", `<span data-mx-color="#ff0000">x</span>`, nil},
		{"colour 00", "\x0300x", "x", `<span data-mx-color="#ffffff">x</span>`, nil},
		{"colour 15", "\x0315x", "x", `<span data-mx-color="#d2d2d2">x</span>`, nil},
		{"extended 16", "\x0316x", "x", `<span data-mx-color="#470000">x</span>`, nil},
		{"extended 52", "\x0352x", "x", `<span data-mx-color="#ff0000">x</span>`, nil},
		{"extended 88", "\x0388x", "x", `<span data-mx-color="#000000">x</span>`, nil},
		{"extended 98", "\x0398x", "x", `<span data-mx-color="#ffffff">x</span>`, nil},
		{"three digits", "\x03123x", "3x", `<span data-mx-color="#0000fc">3x</span>`, nil},
		{"colour change", "\x0304a\x0312b", "ab", `<span data-mx-color="#ff0000">a</span><span data-mx-color="#0000fc">b</span>`, nil},
		{"colour inside bold", "\x02a\x0304b\x03c\x02", "abc",
			`<strong>a<span data-mx-color="#ff0000">b</span>c</strong>`, nil},
		{"hex", "\x04FF8800orange\x04 no", "orange no", `<span data-mx-color="#ff8800">orange</span> no`, nil},
		{"hex lower", "\x04ff8800x", "x", `<span data-mx-color="#ff8800">x</span>`, nil},
		{"hex bg", "\x04FF0000,00ff00x", "x", `<span data-mx-color="#ff0000" data-mx-bg-color="#00ff00">x</span>`, nil},
		{"hex bad", "\x04FF88x", "FF88x", "", nil},
		{"hex bg short", "\x04FF0000,00x", ",00x", `<span data-mx-color="#ff0000">,00x</span>`, nil},
		{"hex resets mirc", "\x0304a\x04b", "ab", `<span data-mx-color="#ff0000">a</span>b`, nil},
		{"mirc resets hex", "\x04123456a\x03b", "ab", `<span data-mx-color="#123456">a</span>b`, nil},
		{"escaping", "\x02<b>&\"'\x02", `<b>&"'`, "<strong>&lt;b&gt;&amp;&#34;&#39;</strong>", nil},
		{"escaping plain", "<b>&", "<b>&", "", nil},
		{"newline in bold", "\x02a\nb\x02", "a\nb", "<strong>a<br>b</strong>", nil},
		{"newlines plain", "a\nb", "a\nb", "", nil},
		{"crlf", "\x02a\r\nb\rc", "a\nb\nc", "<strong>a<br>b<br>c</strong>", nil},
		{"nul", "a\x00b", "ab", "", nil},
		{"invalid utf8", "\x02\xff\xfe\x02", "\uFFFD", "<strong>\uFFFD</strong>", nil},
		{"unicode", "\x02héllo 😀\x02", "héllo 😀", "<strong>héllo 😀</strong>", nil},

		{"mention colon", "alice: hi", "alice: hi", pill("@alice:example.org", "alice") + ": hi", []id.UserID{"@alice:example.org"}},
		{"mention comma", "alice, hi", "alice, hi", pill("@alice:example.org", "alice") + ", hi", []id.UserID{"@alice:example.org"}},
		{"mention special nick", "bob[m]: hi", "bob[m]: hi", pill("@bob:example.org", "bob[m]") + ": hi", []id.UserID{"@bob:example.org"}},
		{"mention in text", "ask alice and Carol.", "ask alice and Carol.",
			"ask " + pill("@alice:example.org", "alice") + " and " + pill("@carol:example.org", "Carol") + ".",
			[]id.UserID{"@alice:example.org", "@carol:example.org"}},
		{"mention twice", "alice alice", "alice alice",
			pill("@alice:example.org", "alice") + " " + pill("@alice:example.org", "alice"), []id.UserID{"@alice:example.org"}},
		{"mention order", "Carol then alice then Carol", "Carol then alice then Carol",
			pill("@carol:example.org", "Carol") + " then " + pill("@alice:example.org", "alice") + " then " + pill("@carol:example.org", "Carol"),
			[]id.UserID{"@carol:example.org", "@alice:example.org"}},
		{"mention possessive", "alice's", "alice's", pill("@alice:example.org", "alice") + "&#39;s", []id.UserID{"@alice:example.org"}},
		{"mention at sign", "@alice hi", "@alice hi", "@" + pill("@alice:example.org", "alice") + " hi", []id.UserID{"@alice:example.org"}},
		{"mention in parens", "(alice)", "(alice)", "(" + pill("@alice:example.org", "alice") + ")", []id.UserID{"@alice:example.org"}},
		{"mention bold", "\x02alice\x02: hi", "alice: hi", "<strong>" + pill("@alice:example.org", "alice") + "</strong>: hi", []id.UserID{"@alice:example.org"}},
		{"mention in colour", "\x0304hi alice\x03", "hi alice", `<span data-mx-color="#ff0000">hi ` + pill("@alice:example.org", "alice") + "</span>", []id.UserID{"@alice:example.org"}},
		{"mention on second line", "x\nalice", "x\nalice", "x<br>" + pill("@alice:example.org", "alice"), []id.UserID{"@alice:example.org"}},
		{"no mention suffix", "alice_", "alice_", "", nil},
		{"no mention dash", "alice-bob", "alice-bob", "", nil},
		{"no mention prefix", "malice", "malice", "", nil},
		{"no mention digit", "alice2", "alice2", "", nil},
		{"no mention brackets", "[alice]", "[alice]", "", nil},
		{"no mention unicode letter", "éalice", "éalice", "", nil},
		{"no mention unknown", "dave: hi", "dave: hi", "", nil},
		{"no mention url", "see https://example.org/alice now", "see https://example.org/alice now", "", nil},
		{"no mention url in bold", "\x02https://example.org/?u=alice\x02", "https://example.org/?u=alice", "<strong>https://example.org/?u=alice</strong>", nil},
		{"no mention www", "www.alice.org", "www.alice.org", "", nil},
		{"no mention email", "alice@example.org", "alice@example.org", "", nil},
		{"no mention mailto", "mailto:alice", "mailto:alice", "", nil},
		{"no mention matrix uri", "matrix:u/alice:example.org", "matrix:u/alice:example.org", "", nil},
		{"mention after url", "https://x.org alice", "https://x.org alice", "https://x.org " + pill("@alice:example.org", "alice"), []id.UserID{"@alice:example.org"}},
		{"no mention in code", "\x11alice\x11", "alice", "<code>alice</code>", nil},
		{"no mention split by code", "al\x02ice\x02", "alice", "al<strong>ice</strong>", nil},
		{"wrong case is another nick", "Alice: hi", "Alice: hi", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body, formatted, mentions := IRCToMatrix(c.in, testNicks)
			if body != c.body || formatted != c.formatted || !reflect.DeepEqual(mentions, c.mentions) {
				t.Errorf("IRCToMatrix(%q)\n got  %q, %q, %v\n want %q, %q, %v", c.in, body, formatted, mentions, c.body, c.formatted, c.mentions)
			}
			checkFormatted(t, c.in, body, formatted)
		})
	}
}

func TestIRCToMatrixResolvers(t *testing.T) {
	body, formatted, mentions := IRCToMatrix("Alice: hi", foldedNicks)
	if body != "Alice: hi" || formatted != pill("@alice:example.org", "Alice")+": hi" || !reflect.DeepEqual(mentions, []id.UserID{"@alice:example.org"}) {
		t.Errorf("folded resolver: %q %q %v", body, formatted, mentions)
	}
	body, formatted, mentions = IRCToMatrix("alice: \x02hi", nil)
	if body != "alice: hi" || formatted != "alice: <strong>hi</strong>" || mentions != nil {
		t.Errorf("nil resolver: %q %q %v", body, formatted, mentions)
	}
	// A resolver that claims a nick but gives no user is not a mention.
	body, formatted, mentions = IRCToMatrix("alice: hi", func(string) (id.UserID, bool) { return "", true })
	if formatted != "" || mentions != nil {
		t.Errorf("empty user: %q %q %v", body, formatted, mentions)
	}
	// Users whose IDs need escaping in a URL.
	weird := func(nick string) (id.UserID, bool) { return "@we/ird?#:example.org", nick == "w" }
	_, formatted, _ = IRCToMatrix("w: hi", weird)
	if want := `<a href="https://matrix.to/#/@we%2Fird%3F%23:example.org">w</a>: hi`; formatted != want {
		t.Errorf("escaped pill = %q, want %q", formatted, want)
	}
	content := &event.MessageEventContent{Format: event.FormatHTML, FormattedBody: formatted}
	if got := MatrixToIRC(content, func(u id.UserID) (string, bool) { return "W", u == "@we/ird?#:example.org" }); got != "W: hi" {
		t.Errorf("escaped pill renders as %q", got)
	}
}

func TestMatrixToIRCHTML(t *testing.T) {
	cases := []struct {
		name, html, want string
	}{
		{"bold", "<b>bold</b> text", "\x02bold\x02 text"},
		{"strong", "<strong>bold</strong>", "\x02bold\x02"},
		{"italic", "<i>a</i> <em>b</em>", "\x1Da\x1D \x1Db\x1D"},
		{"underline", "<u>u</u>", "\x1Fu\x1F"},
		{"ins", "<ins>u</ins>", "\x1Fu\x1F"},
		{"strike", "<s>a</s><del>b</del><strike>c</strike>", "\x1Eabc\x1E"},
		{"inline code", "run <code>ls -l</code>", "run `ls -l`"},
		{"nested", "<b>a <i>b</i> c</b>", "\x02a \x1Db\x1D c\x02"},
		{"nested same", "<b>a <b>b</b> c</b>", "\x02a b c\x02"},
		{"nested strong in b", "<b>a<strong>b</strong></b>c", "\x02ab\x02c"},
		{"deep mix", "<b><i><u><s><code>x</code></s></u></i></b>", "\x02\x1D\x1F\x1E`x`\x1E\x1F\x1D\x02"},
		{"space before tag", "a <b>b</b>", "a \x02b\x02"},
		{"space inside tag", "a<b> b</b>", "a\x02 b\x02"},
		{"space at end of tag", "<b>a </b>b", "\x02a \x02b"},
		{"empty tags", "a<b></b><i></i> b", "a b"},
		{"formatted space", "a<i> </i>b", "a\x1D \x1Db"},
		{"whitespace collapse", "  a \n\t b  ", "a b"},
		{"nbsp kept", "a&nbsp;&nbsp;b", "a\u00a0\u00a0b"},
		{"entities", "&lt;3 &amp; &quot;hi&quot; &#128512; &eacute;", "<3 & \"hi\" 😀 é"},
		{"irc codes in html text", "a\x02b\x03" + "04c\x0Fd", "ab04cd"},

		{"code block", "<pre><code>func main() {\n    x := 1\n}\n</code></pre>", "func main() {\n    x := 1\n}"},
		{"code block language", `<pre><code class="language-go">  a</code></pre>`, "  a"},
		{"code block no formatting", "<pre><code><b>x</b>  <i>y</i>\n<a href=\"https://e.org\">l</a></code></pre>", "x  y\nl"},
		{"code block in bold", "<b>x<pre>y</pre>z</b>", "\x02x\x02\ny\n\x02z\x02"},
		{"code block between paragraphs", "<p>before</p><pre><code>  a\n\n  b\n</code></pre><p>after</p>", "before\n  a\n\n  b\nafter"},
		{"code block blank lines", "<pre>a\n\n\n\nb</pre>", "a\n\nb"},
		{"code block br", "<pre>a<br>b</pre>", "a\nb"},
		{"pre without code", "<pre>  x  </pre>", "  x  "},
		{"code block tabs", "<pre>\tx</pre>", "\tx"},

		{"blockquote", "<blockquote>quoted<br>two</blockquote>reply", "> quoted\n> two\nreply"},
		{"blockquote paragraphs", "<blockquote>\n<p>a</p>\n<p>b</p>\n</blockquote>\n<p>c</p>", "> a\n> b\nc"},
		{"blockquote nested", "<blockquote><blockquote>a</blockquote>b</blockquote>", "> > a\n> b"},
		{"blockquote blank line", "<blockquote>a<br><br>b</blockquote>", "> a\n>\n> b"},
		{"blockquote formatting", "<blockquote><b>a<br>b</b></blockquote>", "> \x02a\x02\n> \x02b\x02"},
		{"empty blockquote", "a<blockquote></blockquote>b", "a\nb"},

		{"list", "<ul><li>a</li><li>b</li></ul>", "• a\n• b"},
		{"list whitespace", "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n", "• a\n• b"},
		{"ordered", "<ol><li>a</li><li>b</li></ol>", "1. a\n2. b"},
		{"ordered start", `<ol start="9"><li>a</li><li>b</li></ol>`, "9. a\n10. b"},
		{"ordered bad start", `<ol start="x"><li>a</li></ol>`, "1. a"},
		{"nested list", "<ul><li>a<ul><li>b</li><li>c</li></ul></li><li>d</li></ul>", "• a\n  • b\n  • c\n• d"},
		{"nested ordered", "<ol><li>a<ol><li>b</li></ol></li><li>c</li></ol>", "1. a\n  1. b\n2. c"},
		{"list item paragraphs", "<ul><li><p>a</p><p>b</p></li></ul>", "• a\n  b"},
		{"list item br", "<ol><li>a<br>b</li></ol>", "1. a\n  b"},
		{"list formatting", "<ul><li><b>x</b> y</li></ul>", "• \x02x\x02 y"},
		{"empty list item", "<ol><li>a</li><li></li><li>c</li></ol>", "1. a\n2.\n3. c"},
		{"list around text", "x<ul><li>a</li></ul>y", "x\n• a\ny"},
		{"stray li", "<li>a</li>", "• a"},
		{"task list", `<ul><li><input type="checkbox" checked disabled>done</li><li><input type="checkbox" disabled> todo</li></ul>`, "• [x] done\n• [ ] todo"},
		{"list in quote", "<blockquote><ul><li>a</li></ul></blockquote>", "> • a"},
		{"list item blank line", "a<ul><li><br><br>x<br><br>y</li></ul>", "a\n\n• x\n\n  y"},
		{"quoted list blank line", "<blockquote><ol><li>x<br><br>y</li></ol></blockquote>", "> 1. x\n>\n>   y"},

		{"br", "a<br>b", "a\nb"},
		{"br blank", "a<br><br>b", "a\n\nb"},
		{"br many", "a<br><br><br><br>b", "a\n\nb"},
		{"br leading trailing", "<br><br>a<br><br>", "a"},
		{"br in bold", "<b>a<br>b</b>", "\x02a\x02\n\x02b\x02"},
		{"paragraphs", "<p>a</p><p>b</p>", "a\nb"},
		{"paragraphs and br", "<p>a</p><br><p>b</p>", "a\n\nb"},
		{"div", "<div>a</div>b<div>c</div>", "a\nb\nc"},
		{"newline in text", "a\nb", "a b"},

		{"heading", "<h1>Title</h1><p>text</p>", "\x02Title\x02\ntext"},
		{"heading 6", "x<h6>small <i>t</i></h6>y", "x\n\x02small \x1Dt\x1D\x02\ny"},
		{"heading bold inside", "<h2><b>a</b></h2>", "\x02a\x02"},
		{"hr", "a<hr>b", "a\n---\nb"},
		{"hr only", "<hr>", "---"},

		{"link", `<a href="https://example.org">site</a>`, "site (https://example.org)"},
		{"link same", `<a href="https://example.org">https://example.org</a>`, "https://example.org"},
		{"link no scheme", `<a href="https://example.org/x">example.org/x</a>`, "https://example.org/x"},
		{"link http", `<a href="http://example.org">example.org</a>`, "http://example.org"},
		{"link mailto", `<a href="mailto:a@example.org">a@example.org</a>`, "mailto:a@example.org"},
		{"link empty text", `<a href="https://example.org"></a>`, "https://example.org"},
		{"link no href", `<a>text</a>`, "text"},
		{"link formatted", `<a href="https://x.org"><b>x</b></a>!`, "\x02x\x02 (https://x.org)!"},
		{"link in bold", `<b><a href="https://x.org">x</a></b>`, "\x02x (https://x.org)\x02"},
		{"link whitespace", "<a href=\"https://x.org\"> x\n y </a>", "x y (https://x.org)"},
		{"link image", `<a href="https://x.org/big.png"><img src="mxc://x/y" alt="thumb"></a>`, "thumb (https://x.org/big.png)"},

		{"pill", `<a href="https://matrix.to/#/@alice:example.org">Alice Liddell</a>: hi`, "alice: hi"},
		{"pill encoded", `<a href="https://matrix.to/#/%40alice%3Aexample.org">Alice</a>: hi`, "alice: hi"},
		{"pill matrix uri", `<a href="matrix:u/alice:example.org">Alice</a>`, "alice"},
		{"pill via", `<a href="https://matrix.to/#/@bob:example.org?via=example.org">Bob</a>`, "bob[m]"},
		{"pill unknown user", `<a href="https://matrix.to/#/@dave:example.org">Dave  D</a>`, "Dave D"},
		{"pill unknown user no text", `<a href="https://matrix.to/#/@dave:example.org"></a>`, "@dave:example.org"},
		{"pill formatted", `<b><a href="https://matrix.to/#/@alice:example.org">A</a></b>`, "\x02alice\x02"},
		{"room alias", `<a href="https://matrix.to/#/#room:example.org">Room</a>`, "#room:example.org"},
		{"room alias encoded", `<a href="https://matrix.to/#/%23room%3Aexample.org">#room</a>`, "#room:example.org"},
		{"room alias matrix uri", `<a href="matrix:r/room:example.org">r</a>`, "#room:example.org"},
		{"room id", `<a href="https://matrix.to/#/!abc:example.org?via=example.org">a room</a>`, "!abc:example.org"},
		{"event link", `<a href="https://matrix.to/#/!abc:example.org/$ev?via=example.org">this</a>`, "this (https://matrix.to/#/!abc:example.org/$ev?via=example.org)"},
		{"bad matrix.to", `<a href="https://matrix.to/#/">x</a>`, "x (https://matrix.to/#/)"},
		{"bad matrix.to sigil", `<a href="https://matrix.to/#/+group:example.org">x</a>`, "x (https://matrix.to/#/+group:example.org)"},
		{"not matrix.to", `<a href="https://evilmatrix.to/#/@alice:example.org">x</a>`, "x (https://evilmatrix.to/#/@alice:example.org)"},
		{"http matrix.to", `<a href="http://matrix.to/#/@alice:example.org">x</a>`, "alice"},
		{"matrix uri event", `<a href="matrix:roomid/abc:example.org/e/ev">msg</a>`, "msg (matrix:roomid/abc:example.org/e/ev)"},
		{"matrix uri room id", `<a href="matrix:roomid/abc:example.org?via=example.org">r</a>`, "!abc:example.org"},
		{"bad matrix uri", `<a href="matrix:x/y">z</a>`, "z (matrix:x/y)"},

		{"colour", `<span data-mx-color="#ff0000">red</span> x`, "\x0304red\x03 x"},
		{"colour upper", `<span data-mx-color="#FF0000">red</span>`, "\x0304red\x03"},
		{"colour short", `<span data-mx-color="#f00">red</span>`, "\x0304red\x03"},
		{"colour fg bg", `<span data-mx-color="#ff0000" data-mx-bg-color="#00007f">x</span>`, "\x0304,02x\x03"},
		{"font color", `<font color="#009300">g</font>`, "\x0303g\x03"},
		{"font color name", `<font color="red">r</font>`, "\x0304r\x03"},
		{"font data-mx-color wins", `<font color="#ff0000" data-mx-color="#0000fc">b</font>`, "\x0312b\x03"},
		{"font bg", `<font data-mx-bg-color="#ffff00" color="#000000">x</font>`, "\x0301,08x\x03"},
		{"span color attr ignored", `<span color="#ff0000">x</span>`, "x"},
		{"all standard", `<font color="#FFFFFF">0</font><font color="#000000">1</font><font color="#00007F">2</font><font color="#009300">3</font>` +
			`<font color="#FF0000">4</font><font color="#7F0000">5</font><font color="#9C009C">6</font><font color="#FC7F00">7</font>` +
			`<font color="#FFFF00">8</font><font color="#00FC00">9</font><font color="#009393">a</font><font color="#00FFFF">b</font>` +
			`<font color="#0000FC">c</font><font color="#FF00FF">d</font><font color="#7F7F7F">e</font><font color="#D2D2D2">f</font>`,
			"\x03000\x03011\x03022\x03033\x03044\x03055\x03066\x03077\x03088\x03099\x0310a\x0311b\x0312c\x0313d\x0314e\x0315f\x03"},
		// Other colours are the nearest of the 99 mIRC colours (#123456 is
		// 23, #002747): irssi and WeeChat print \x04RRGGBB as text.
		{"other colour", `<span data-mx-color="#123456">x</span>`, "\x0323x\x03"},
		{"other bg", `<span data-mx-color="#ff0000" data-mx-bg-color="#123456">x</span>`, "\x0304,23x\x03"},
		{"near a standard colour", `<font color="#fe0101">r</font>`, "\x0304r\x03"},
		{"css green", `<font color="green">g</font>`, "\x0332g\x03"}, // #008000: 32 (#007400) is nearer than 3 (#009300)
		{"palette bg only", `<span data-mx-bg-color="#00007f">x</span>`, "\x0399,02x\x03"},
		{"extended bg only", `<span data-mx-bg-color="#470000">x</span>`, "\x0399,16x\x03"},
		{"other bg only", `<span data-mx-bg-color="#123456">x</span>`, "\x0399,23x\x03"},
		{"bad colour", `<span data-mx-color="bogus">x</span><font color="#12345">y</font>`, "xy"},
		{"nested colours", `<font color="#ff0000">a <font color="#0000fc">b</font> c</font>`, "\x0304a \x0312b\x0304 c\x03"},
		{"nested other colour", `<font color="#ff0000">a<font color="#123456">b</font>c</font>`, "\x0304a\x0323b\x0304c\x03"},
		{"inner fg keeps bg", `<span data-mx-bg-color="#00007f" data-mx-color="#ff0000">a<span data-mx-color="#009300">b</span></span>`, "\x0304,02a\x0303,02b\x03"},
		{"bg removed", `<span data-mx-color="#ff0000" data-mx-bg-color="#00007f">a</span><span data-mx-color="#ff0000">b</span>`, "\x0304,02a\x03\x0304b\x03"},
		{"colour and bold", `<b>a<font color="#ff0000">b</font>c</b>`, "\x02a\x0304b\x03c\x02"},
		{"colour then digit", `<font color="#ff0000">x</font>5`, "\x0304x\x03\x02\x025"},
		{"colour then comma", `<font color="#ff0000">x</font>,5`, "\x0304x\x03\x02\x02,5"},
		{"colour digit inside", `<font color="#ff0000">5</font>`, "\x03045\x03"},
		{"colour comma inside", `<font color="#ff0000">,5</font>`, "\x0304\x02\x02,5\x03"},
		{"colour bg digit inside", `<font color="#ff0000" data-mx-bg-color="#00007f">5,5</font>`, "\x0304,025,5\x03"},
		{"other colour then digit", `<font color="#123456">x</font>5`, "\x0323x\x03\x02\x025"},
		{"other colour then letter", `<font color="#123456">x</font>z`, "\x0323x\x03z"},
		{"colour across lines", `<font color="#ff0000">a<br>b</font>`, "\x0304a\x03\n\x0304b\x03"},

		{"reply fallback", `<mx-reply><blockquote><a href="https://matrix.to/#/!r:example.org/$e">In reply to</a> <a href="https://matrix.to/#/@bob:example.org">@bob</a><br>quoted</blockquote></mx-reply>answer`, "answer"},
		{"image alt", `<img src="mxc://x/y" alt="cat">`, "cat"},
		{"image title", `<img src="mxc://x/y" title="dog">`, "dog"},
		{"image bare", `look <img src="mxc://x/y"> here`, "look [image] here"},
		{"emoticon", `hi <img data-mx-emoticon src="mxc://x/y" alt=":wave:" height="32">`, "hi :wave:"},
		{"details", "<details><summary>More</summary>hidden <b>text</b></details>", "More\nhidden \x02text\x02"},
		{"details summary last", "<details>content<summary>Title</summary></details>", "Title\ncontent"},
		{"spoiler", "see <span data-mx-spoiler>secret</span>", "see \x02[spoiler]\x02 secret"},
		{"spoiler reason", `<span data-mx-spoiler="plot">he dies</span>`, "\x02[spoiler: plot]\x02 he dies"},
		{"spoiler in bold", "<b>a <span data-mx-spoiler>s</span></b>", "\x02a [spoiler] s\x02"},
		{"unknown tag", "<foo>bar</foo> <marquee>baz</marquee>", "bar baz"},
		{"sub sup", "H<sub>2</sub>O x<sup>2</sup>", "H2O x2"},
		{"math", `<span data-mx-maths="x^2">x²</span>`, "x²"},
		{"script and style", "<script>alert(1)</script><style>b{}</style>ok", "ok"},
		{"comment", "a<!-- hidden -->b", "ab"},
		{"table", "<table><tr><th>h1</th><th>h2</th></tr><tr><td>a</td><td>b</td></tr></table>", "h1 | h2\na | b"},
		{"full document", "<html><head><title>t</title></head><body><p>x</p></body></html>", "x"},

		{"unclosed", "<b>unclosed", "\x02unclosed\x02"},
		{"stray closing", "stray</b> text</i>", "stray text"},
		{"misnested", "<b><i>mis</b>nested</i>", "\x02\x1Dmis\x02nested\x1D"},
		{"unclosed list", "<ul><li>a<li>b", "• a\n• b"},
		{"broken tag", "a <b b</b>", "a"},
		{"lone lt", "a < b", "a < b"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			content := &event.MessageEventContent{MsgType: event.MsgText, Body: "fallback", Format: event.FormatHTML, FormattedBody: c.html}
			got := MatrixToIRC(content, testUserNick)
			if got != c.want {
				t.Errorf("MatrixToIRC(%q)\n got  %q\n want %q", c.html, got, c.want)
			}
			checkIRCLines(t, c.html, got)
		})
	}
}

func TestMatrixToIRCBody(t *testing.T) {
	reply := &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: "$orig"}}
	fallback := "> <@alice:example.org> original\n> second line\n\nmy reply"
	cases := []struct {
		name    string
		content *event.MessageEventContent
		want    string
	}{
		{"nil", nil, ""},
		{"plain", &event.MessageEventContent{Body: "hello"}, "hello"},
		{"plain keeps everything", &event.MessageEventContent{Body: "  a\n\n\nb \x02c"}, "  a\n\n\nb \x02c"},
		{"not html format", &event.MessageEventContent{Body: "body", Format: "org.example.other", FormattedBody: "<b>x</b>"}, "body"},
		{"html empty", &event.MessageEventContent{Body: "body", Format: event.FormatHTML}, "body"},
		{"reply fallback", &event.MessageEventContent{Body: fallback, RelatesTo: reply}, "my reply"},
		{"reply fallback multiline", &event.MessageEventContent{Body: "> <@a:b> q\n>\n> r\n\nline1\nline2", RelatesTo: reply}, "line1\nline2"},
		{"no relation keeps fallback", &event.MessageEventContent{Body: fallback}, fallback},
		{"reply without fallback", &event.MessageEventContent{Body: "just text", RelatesTo: reply}, "just text"},
		{"reply quote without blank line", &event.MessageEventContent{Body: "> quote\nnot blank", RelatesTo: reply}, "> quote\nnot blank"},
		{"reply quote only", &event.MessageEventContent{Body: "> quote", RelatesTo: reply}, "> quote"},
		{"reply quote then text then blank", &event.MessageEventContent{Body: "> quote\ntext\n\nmore", RelatesTo: reply}, "> quote\ntext\n\nmore"},
		{"thread without reply", &event.MessageEventContent{Body: fallback, RelatesTo: &event.RelatesTo{Type: event.RelThread, EventID: "$root"}}, fallback},
		{"html reply", &event.MessageEventContent{Body: fallback, RelatesTo: reply, Format: event.FormatHTML,
			FormattedBody: "<mx-reply><blockquote>original</blockquote></mx-reply>my <b>reply</b>"}, "my \x02reply\x02"},
		{"html renders nothing", &event.MessageEventContent{Body: fallback, RelatesTo: reply, Format: event.FormatHTML,
			FormattedBody: "<mx-reply><blockquote>original</blockquote></mx-reply>"}, "my reply"},
		{"html too deep", &event.MessageEventContent{Body: "deep text", Format: event.FormatHTML,
			FormattedBody: strings.Repeat("<b>", 10000) + "x"}, "deep text"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := MatrixToIRC(c.content, testUserNick); got != c.want {
				t.Errorf("MatrixToIRC(%+v) = %q, want %q", c.content, got, c.want)
			}
		})
	}
}

func TestMatrixToIRCNilResolver(t *testing.T) {
	content := &event.MessageEventContent{Format: event.FormatHTML,
		FormattedBody: `<a href="https://matrix.to/#/@alice:example.org">Alice</a>: hi`}
	if got := MatrixToIRC(content, nil); got != "Alice: hi" {
		t.Errorf("nil resolver: %q", got)
	}
}

// TestDeepNesting checks that deep or wide HTML neither recurses without
// bound nor makes output that grows faster than the input.
func TestDeepNesting(t *testing.T) {
	const deep = 10000
	cases := []struct {
		name string
		html func(depth int) string
	}{
		{"bold", func(d int) string { return strings.Repeat("<b>", d) + "x" + strings.Repeat("</b>", d) }},
		{"div", func(d int) string { return strings.Repeat("<div>", d) + "x" }},
		{"blockquote", func(d int) string { return strings.Repeat("<blockquote>x", d) }},
		{"list", func(d int) string { return strings.Repeat("<ul><li>x", d/2) }},
		{"ordered", func(d int) string { return strings.Repeat("<ol><li>x", d/2) }},
		{"colours", func(d int) string { return strings.Repeat(`<font color="#ff0000">a<font color="#123456">b`, d/2) }},
		{"spans", func(d int) string { return strings.Repeat("<span>", d) + "x" }},
		{"mixed", func(d int) string {
			return strings.Repeat("<b><i><blockquote><ul><li><a href='https://x.org'>", d/6) + "x"
		}},
		{"siblings", func(d int) string { return strings.Repeat("<b>x</b><br>", d) }},
		{"details", func(d int) string { return strings.Repeat("<details><summary>s</summary>", d/2) }},
		{"tables", func(d int) string { return strings.Repeat("<table><tr><td>", d/4) + "x" }},
		{"pre", func(d int) string { return "<pre>" + strings.Repeat("<b>  x\n", d) }},
	}
	for _, c := range cases {
		for _, depth := range []int{500, deep} {
			t.Run(fmt.Sprintf("%s/%d", c.name, depth), func(t *testing.T) {
				src := c.html(depth)
				content := &event.MessageEventContent{Body: "fallback", Format: event.FormatHTML, FormattedBody: src}
				got := MatrixToIRC(content, testUserNick)
				if got == "" {
					t.Fatal("empty output")
				}
				if len(got) > 8*len(src)+100 {
					t.Errorf("output %d bytes for %d bytes of HTML", len(got), len(src))
				}
				if out, ok := htmlToIRC(src, testUserNick); ok {
					checkIRCLines(t, c.name, out)
				}
				for _, l := range strings.Split(got, "\n") {
					if c.name != "colours" && len(l) > 200 {
						t.Errorf("line of %d bytes: indentation not capped", len(l))
						break
					}
				}
			})
		}
	}
	// Just under the parser's depth limit the HTML itself is rendered.
	nested := strings.Repeat("<blockquote>", 500) + "deep" + strings.Repeat("</blockquote>", 500)
	got := MatrixToIRC(&event.MessageEventContent{Body: "fallback", Format: event.FormatHTML, FormattedBody: nested}, nil)
	if want := strings.Repeat("> ", maxPrefixDepth) + "deep"; got != want {
		t.Errorf("500 blockquotes = %q, want %q", got, want)
	}
	list := strings.Repeat("<ul><li>x", 200)
	got = MatrixToIRC(&event.MessageEventContent{Format: event.FormatHTML, FormattedBody: list}, nil)
	lines := strings.Split(got, "\n")
	if len(lines) != 200 || lines[0] != "• x" || lines[1] != "  • x" || lines[199] != strings.Repeat("  ", maxPrefixDepth)+"• x" {
		t.Errorf("200 nested lists: %d lines, first %q %q, last %q", len(lines), lines[0], lines[1], lines[len(lines)-1])
	}
	// IRC text with many codes is linear too.
	body, formatted, _ := IRCToMatrix(strings.Repeat("\x02\x1Da\x0304,02b\x04123456c\x0F", deep), testNicks)
	if len(body) != 3*deep || len(formatted) > 200*deep {
		t.Errorf("IRCToMatrix of many codes: body %d, formatted %d bytes", len(body), len(formatted))
	}
}

// ircCodes are the bytes IRC uses for formatting.
const ircCodes = "\x02\x03\x04\x0F\x11\x16\x1D\x1E\x1F"

// styleAfter is the formatting in effect at the end of IRC text.
func styleAfter(s string) textStyle {
	runs := parseIRC(s + "\uE000")
	return runs[len(runs)-1].style
}

// checkIRCLines checks invariants of rendered HTML: every line ends with no
// formatting in effect, no blank line at either end or twice in a row.
func checkIRCLines(t *testing.T, src, out string) {
	t.Helper()
	if out == "" {
		return
	}
	lines := strings.Split(out, "\n")
	blank := func(l string) bool { return strings.Trim(l, ircCodes) == "" }
	if blank(lines[0]) || blank(lines[len(lines)-1]) {
		t.Errorf("%q → %q: blank line at an end", src, out)
	}
	for i, l := range lines {
		if st := styleAfter(l); !st.plain() {
			t.Errorf("%q → %q: line %d %q leaves %+v on", src, out, i, l, st)
		}
		if i > 0 && blank(l) && blank(lines[i-1]) {
			t.Errorf("%q → %q: two blank lines", src, out)
		}
	}
}

// fragmentText parses HTML as a Matrix client would (as the content of an
// element) and returns its text, with <br> as "\n".
func fragmentText(t *testing.T, formatted string) string {
	t.Helper()
	nodes, err := html.ParseFragment(strings.NewReader(formatted), &html.Node{Type: html.ElementNode, Data: "div", DataAtom: atom.Div})
	if err != nil {
		t.Fatalf("formatted %q does not parse: %v", formatted, err)
	}
	var b strings.Builder
	var visit func(n *html.Node)
	visit = func(n *html.Node) {
		switch {
		case n.Type == html.TextNode:
			b.WriteString(n.Data)
		case n.Type == html.ElementNode && n.Data == "br":
			b.WriteString("\n")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			visit(c)
		}
	}
	for _, n := range nodes {
		visit(n)
	}
	return b.String()
}

// allowedTags are the tags IRCToMatrix may write.
var allowedTags = map[string]bool{"strong": true, "em": true, "u": true, "del": true, "code": true, "span": true, "a": true, "br": true}

// checkFormatted checks IRCToMatrix output invariants: the body has no
// formatting codes, and formatted is well-nested HTML of known tags whose
// text is the body.
func checkFormatted(t *testing.T, in, body, formatted string) {
	t.Helper()
	if strings.ContainsAny(body, ircCodes+"\x00\r") {
		t.Errorf("IRCToMatrix(%q): body %q has codes", in, body)
	}
	if !utf8.ValidString(body) || !utf8.ValidString(formatted) {
		t.Errorf("IRCToMatrix(%q): invalid UTF-8 %q %q", in, body, formatted)
	}
	if formatted == "" {
		return
	}
	z := html.NewTokenizer(strings.NewReader(formatted))
	var stack []string
	var text strings.Builder
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		tok := z.Token()
		switch tt {
		case html.TextToken:
			text.WriteString(tok.Data)
		case html.StartTagToken:
			if !allowedTags[tok.Data] || tok.Data == "br" {
				if tok.Data == "br" {
					text.WriteString("\n")
					continue
				}
				t.Errorf("IRCToMatrix(%q): unexpected tag in %q", in, formatted)
			}
			stack = append(stack, tok.Data)
		case html.EndTagToken:
			if len(stack) == 0 || stack[len(stack)-1] != tok.Data {
				t.Fatalf("IRCToMatrix(%q): badly nested %q", in, formatted)
			}
			stack = stack[:len(stack)-1]
		default:
			t.Errorf("IRCToMatrix(%q): unexpected token %v in %q", in, tt, formatted)
		}
	}
	if len(stack) != 0 {
		t.Errorf("IRCToMatrix(%q): unclosed %v in %q", in, stack, formatted)
	}
	if got := text.String(); got != body {
		t.Errorf("IRCToMatrix(%q): tokenized text %q != body %q", in, got, body)
	}
	if got := fragmentText(t, formatted); got != body {
		t.Errorf("IRCToMatrix(%q): parsed text %q != body %q", in, got, body)
	}
}

// styledRune is one visible character with its formatting.
type styledRune struct {
	r  rune
	st textStyle
}

// visible is IRC text as its non-space characters with their formatting:
// what two renderings must agree on to look the same.
func visible(s string) []styledRune {
	var out []styledRune
	for _, run := range parseIRC(s) {
		// Colours look the same once they are the nearest of the 99 IRC
		// colours, which is what Matrix colours become.
		st := run.style
		if st.fg != "" {
			st.fg = mircPalette[nearestColorIndex(st.fg)]
		}
		if st.bg != "" {
			st.bg = mircPalette[nearestColorIndex(st.bg)]
		}
		for _, r := range run.text {
			if !unicode.IsSpace(r) {
				out = append(out, styledRune{r, st})
			}
		}
	}
	return out
}

func sameLook(a, b string) bool {
	return reflect.DeepEqual(visible(a), visible(b)) &&
		reflect.DeepEqual(strings.Fields(stripAll(a)), strings.Fields(stripAll(b)))
}

// stripAll removes IRC formatting (codes and parameters).
func stripAll(s string) string {
	var b strings.Builder
	for _, r := range parseIRC(s) {
		b.WriteString(r.text)
	}
	return b.String()
}

// ircRoundTrip sends IRC text to Matrix and back, rendering inline code as
// \x11 on the way back (MatrixToIRC uses backticks) so that monospace can be
// compared too.
func ircRoundTrip(text string) (string, string) {
	body, formatted, _ := IRCToMatrix(text, testNicks)
	if formatted == "" {
		return body, formatted
	}
	out, ok := renderIRC(formatted, testUserNick, true)
	if !ok || strings.TrimSpace(out) == "" {
		return body, formatted
	}
	return out, formatted
}

func TestIRCRoundTrip(t *testing.T) {
	exact := []string{
		"plain text",
		"\x02bold\x02 \x1Ditalic\x1D \x1Funderline\x1F \x1Estrike\x1E \x11mono\x11",
		"\x02a \x1Db\x1D c\x02",
		"\x0304red\x03 \x0312,01blue on black\x03 \x0399,04bg\x03",
		"alice: hi \x02bob[m]\x02 and Carol",
		"\x02line one\x02\n\x02line two\x02",
		"a\n\nb",
		"\x0304,02a\x0303,02b\x03",
		"x \x0304\x02\x02,5\x03",
	}
	for _, in := range exact {
		if got, formatted := ircRoundTrip(in); got != in {
			t.Errorf("round trip of %q via %q = %q", in, formatted, got)
		}
	}
	equivalent := []string{
		"\x02bold",
		"\x02a\x1Db\x02c\x1D",
		"\x034red",
		"\x0352extended red\x03",
		"\x0316dark\x03 \x0399,16dark bg\x03",
		"\x04ff0000hex red",
		"\x04123456hex\x04 \x04FF0000,123456both\x04",
		"\x02\x1D\x1F\x1E\x11all\x0Fnone",
		"\x0304,02a\x0303b",
		"\x16reverse\x16",
		"a  b",
		"\x02a\nb",
		"\x0304x\x03,5 and \x0304y\x035",
	}
	for _, in := range equivalent {
		if got, formatted := ircRoundTrip(in); !sameLook(got, in) {
			t.Errorf("round trip of %q via %q = %q", in, formatted, got)
		}
	}
}

// TestIRCRoundTripRandom round-trips random IRC text built from formatting
// codes, words and separators.
func TestIRCRoundTripRandom(t *testing.T) {
	pieces := []string{"a", "b", "5", ",", " ", "\n", "alice", ":", "<&>",
		"\x02", "\x1D", "\x1F", "\x1E", "\x11", "\x0F", "\x16", "\x03", "\x0304", "\x0312,01", "\x0399,05", "\x037", "\x0388",
		"\x04", "\x04123456", "\x04ABCDEF,000000"}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 5000; i++ {
		var b strings.Builder
		for n := rng.Intn(20); n >= 0; n-- {
			b.WriteString(pieces[rng.Intn(len(pieces))])
		}
		in := b.String()
		body, formatted, _ := IRCToMatrix(in, testNicks)
		checkFormatted(t, in, body, formatted)
		if got, formatted := ircRoundTrip(in); !sameLook(got, in) {
			t.Fatalf("round trip of %q via %q = %q", in, formatted, got)
		}
	}
}

// htmlRoundTrip renders HTML for IRC, then sends that back to Matrix and
// renders it again.
func htmlRoundTrip(src string) (first, second, formatted string) {
	first = MatrixToIRC(&event.MessageEventContent{Format: event.FormatHTML, FormattedBody: src}, testUserNick)
	second, formatted = ircRoundTrip(first)
	return
}

func TestHTMLRoundTrip(t *testing.T) {
	cases := []string{
		"<b>bold</b> <i>it</i> <u>u</u> <del>s</del> <code>c</code>",
		"<p>Hello <strong>world</strong>, <em>how</em> are you?</p><p>Second para</p>",
		"<ul><li>one</li><li>two<ol><li>nested</li></ol></li></ul>",
		"<blockquote><p>quote <b>bold</b></p></blockquote><p>answer</p>",
		"<pre><code>if x {\n    y()\n}\n</code></pre>",
		`<font color="#ff0000">red</font> <span data-mx-color="#123456" data-mx-bg-color="#00007f">hex</span>`,
		`<a href="https://example.org">a link</a> and <a href="https://matrix.to/#/@alice:example.org">alice</a>`,
		"<h1>Title</h1><hr><details><summary>s</summary>d</details>",
		"<span data-mx-spoiler>hidden</span> 1 &lt; 2",
		"<b>a<br>b<br><br>c</b>",
	}
	for _, src := range cases {
		first, second, formatted := htmlRoundTrip(src)
		if !sameLook(first, second) {
			t.Errorf("%q → %q → %q → %q", src, first, formatted, second)
		}
		// Every visible character of the HTML survives, in order.
		if !subsequence(visibleText(t, src), stripAll(second)) {
			t.Errorf("%q → %q lost text", src, second)
		}
	}
}

// visibleText is the text of HTML without whitespace.
func visibleText(t *testing.T, src string) string {
	return strings.Join(strings.Fields(fragmentText(t, src)), "")
}

// subsequence reports whether the runes of small appear in order in big
// (whitespace in big ignored).
func subsequence(small, big string) bool {
	rs := []rune(small)
	i := 0
	for _, r := range big {
		if i < len(rs) && r == rs[i] {
			i++
		}
	}
	return i == len(rs)
}

func TestColorTables(t *testing.T) {
	for i := 0; i < 16; i++ {
		if idx, ok := standardColorIndex(mircPalette[i]); !ok || idx != i {
			t.Errorf("standard colour %d: %d %v", i, idx, ok)
		}
		code, _ := ircColorCode(mircPalette[i], "")
		if want := fmt.Sprintf("\x03%02d", i); code != want {
			t.Errorf("colour %d → %q, want %q", i, code, want)
		}
	}
	for i, c := range mircPalette {
		if parseCSSColor(c) != c || len(c) != 7 {
			t.Errorf("palette %d: bad entry %q", i, c)
		}
		got, n := colorNumber(fmt.Sprintf("%02d", i))
		if got != c || n != 2 {
			t.Errorf("colorNumber(%02d) = %q, %d", i, got, n)
		}
	}
	if got, n := colorNumber("99"); got != "" || n != 2 {
		t.Errorf("colorNumber(99) = %q, %d", got, n)
	}
	for in, want := range map[string]string{"#ABCDEF": "#abcdef", " #abc ": "#aabbcc", "Red": "#ff0000",
		"#12345": "", "#1234567": "", "#ggg": "", "": "", "rgb(1,2,3)": "", "#": ""} {
		if got := parseCSSColor(in); got != want {
			t.Errorf("parseCSSColor(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzIRCToMatrix(f *testing.F) {
	for _, s := range []string{"", "hello", "\x02bold\x02", "\x0304,02x\x03", "\x04FF0000,00FF00x", "\x03,5", "\x0399,99",
		"alice: hi", "bob[m], \x02Carol\x02", "https://x.org/alice alice@x.org", "\x11alice\x11", "a\r\nb\rc\n",
		"\xff\xfe\x00", "\x02\x1D\x1F\x1E\x11x\x0Fy", "<&>\"'", "\x16x\x16", "\x04abcdef", "\x0312345"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		body, formatted, mentions := IRCToMatrix(text, testNicks)
		checkFormatted(t, text, body, formatted)
		if formatted == "" && mentions != nil {
			t.Fatalf("IRCToMatrix(%q): mentions %v without formatted", text, mentions)
		}
		seen := map[id.UserID]bool{}
		for _, m := range mentions {
			if seen[m] || testUsers[m] == "" {
				t.Fatalf("IRCToMatrix(%q): mentions %v", text, mentions)
			}
			seen[m] = true
			if !strings.Contains(formatted, `href="https://matrix.to/#/`+string(m)+`"`) {
				t.Fatalf("IRCToMatrix(%q): %s not pilled in %q", text, m, formatted)
			}
		}
		if want := stripAll(normalizeIRCText(text)); body != want {
			t.Fatalf("IRCToMatrix(%q): body %q, want %q", text, body, want)
		}
		// What IRC sent looks the same when it comes back.
		if got, formatted := ircRoundTrip(text); !sameLook(got, normalizeIRCText(text)) {
			t.Fatalf("round trip of %q via %q = %q", text, formatted, got)
		}
	})
}

func FuzzMatrixToIRC(f *testing.F) {
	for _, s := range []string{"", "<b>a <i>b</i> c</b>", "<pre><code>  x\n</code></pre>", "<ul><li>a<ol><li>b</li></ol></li></ul>",
		"<blockquote>q<br><br>r</blockquote>", `<a href="https://matrix.to/#/@alice:example.org">A</a>`,
		`<a href="https://x.org">x</a>`, `<font color="#ff0000">1<font color="#123456">2</font>3</font>4`,
		"<mx-reply>r</mx-reply>x", "<details>c<summary>s</summary></details>", "<span data-mx-spoiler=r>s</span>",
		"<b><i>mis</b>nested</i>", "<table><tr><td>a<td>b</table>", "<h1>t</h1><hr>", "<img alt=x>", "\x02\x03\x04",
		`<span data-mx-bg-color="#470000">x</span>`, "a<br>\n<br>b", "<ul><li><br><br>x</li><li></li></ul>",
		"<a href='https://x.org'><table><td><a href='https://y.org'>y</a></table></a>", "<pre>a<b>b</b>\n\n\tc</pre>",
		"<font color=red>5</font>,5<font color='#123456'>a</font>b", "<p>a</p><br><br><p>b</p>", "<ol start=-3><li>x<li>y</ol>",
		"<h1><a href='https://matrix.to/#/%23r%3Ax'>r</a></h1>", "<svg><title>t</title>x</svg><math>y</math>"} {
		f.Add(s, "body", false)
	}
	f.Add("", "> <@a:b> q\n\nreply", true)
	f.Fuzz(func(t *testing.T, formatted, body string, reply bool) {
		content := &event.MessageEventContent{MsgType: event.MsgText, Body: body, Format: event.FormatHTML, FormattedBody: formatted}
		if reply {
			content.RelatesTo = &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: "$x"}}
		}
		got := MatrixToIRC(content, testUserNick)
		if utf8.ValidString(formatted) && utf8.ValidString(body) && !utf8.ValidString(got) {
			t.Fatalf("MatrixToIRC(%q, %q) = %q: invalid UTF-8", formatted, body, got)
		}
		out, ok := htmlToIRC(formatted, testUserNick)
		if !ok {
			return
		}
		checkIRCLines(t, formatted, out)
		if !utf8.ValidString(formatted) {
			return
		}
		// Rendering is stable: what IRC shows, sent back to Matrix, shows the same.
		back, via := ircRoundTrip(out)
		if !sameLook(out, back) {
			t.Fatalf("%q → %q → %q → %q", formatted, out, via, back)
		}
	})
}

// benchInputs are typical and worst-case inputs of about 64 KiB, the Matrix
// event size limit.
var benchHTML = map[string]string{
	"typical":  `<mx-reply><blockquote><a href="https://matrix.to/#/!r:x/$e">In reply to</a> <a href="https://matrix.to/#/@bob:example.org">@bob</a><br>q</blockquote></mx-reply><p>Hello <b>world</b>, see <a href="https://example.org">this</a> and <code>code</code>.</p><ul><li>one</li><li>two</li></ul>`,
	"wide":     strings.Repeat(`<p><b>a</b> <font color="#123456">b</font> <a href="https://x.org">c</a></p>`, 800),
	"deep":     strings.Repeat("<blockquote><ul><li><b><a href='https://x.org'><span>", 80) + strings.Repeat("x ", 30000),
	"brs":      strings.Repeat("<br>", 16000),
	"comments": "<table><tr><td>a" + strings.Repeat("<!---->", 9000) + "<td>b</table>",
}

var benchIRC = map[string]string{
	"typical": "alice: \x02look\x02 at \x0304this\x03 https://example.org/alice \x1Dnow\x1D",
	"toggles": strings.Repeat("a\x02\x02", 20000),
	"colours": strings.Repeat("\x0304,02a\x04123456b\x03", 6000),
	"nicks":   strings.Repeat("alice bob[m] Carol ", 3400),
}

func BenchmarkMatrixToIRC(b *testing.B) {
	for name, src := range benchHTML {
		content := &event.MessageEventContent{Body: "x", Format: event.FormatHTML, FormattedBody: src}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				MatrixToIRC(content, testUserNick)
			}
		})
	}
}

func BenchmarkIRCToMatrix(b *testing.B) {
	for name, src := range benchIRC {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				IRCToMatrix(src, testNicks)
			}
		})
	}
}
