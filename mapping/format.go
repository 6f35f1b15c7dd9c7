package mapping

import (
	stdhtml "html"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// This file translates IRC formatting codes (https://modern.ircdocs.horse/formatting)
// to and from Matrix HTML (org.matrix.custom.html).
//
// Matrix → IRC walks the golang.org/x/net/html parse tree itself rather than
// using mautrix's format.HTMLParser: importing maunium.net/go/mautrix/format
// pulls in goldmark (a new dependency), and its fixed renderings ("* " bullets,
// "# " headings, trimmed code blocks, no mx-reply handling, nested toggles that
// cancel out) differ from what IRC needs. The walk is iterative; the HTML
// parser itself refuses input nested deeper than 512 elements, and such
// messages fall back to their plain body.

// UserResolver maps a Matrix user to the nick the client sees (for pills → nicks).
type UserResolver func(id.UserID) (nick string, ok bool)

// NickResolver maps a nick the client typed to a Matrix user (for nicks → pills).
type NickResolver func(nick string) (id.UserID, bool)

// IRC formatting control codes.
const (
	ircBold      = '\x02'
	ircColor     = '\x03'
	ircHexColor  = '\x04'
	ircReset     = '\x0F'
	ircMono      = '\x11'
	ircReverse   = '\x16'
	ircItalic    = '\x1D'
	ircStrike    = '\x1E'
	ircUnderline = '\x1F'
)

// isIRCFormatByte reports whether b is one of the IRC formatting codes.
func isIRCFormatByte(b byte) bool {
	switch b {
	case ircBold, ircColor, ircHexColor, ircReset, ircMono, ircReverse, ircItalic, ircStrike, ircUnderline:
		return true
	}
	return false
}

// mircPalette holds the RGB of mIRC colours 0-98 as "#rrggbb": 0-15 are the
// standard mIRC colours, 16-98 the extended palette of
// https://modern.ircdocs.horse/formatting#colors-16-98. 99 means "default".
var mircPalette = [99]string{
	// 0-15
	"#ffffff", "#000000", "#00007f", "#009300", "#ff0000", "#7f0000", "#9c009c", "#fc7f00",
	"#ffff00", "#00fc00", "#009393", "#00ffff", "#0000fc", "#ff00ff", "#7f7f7f", "#d2d2d2",
	// 16-27
	"#470000", "#472100", "#474700", "#324700", "#004700", "#00472c", "#004747", "#002747", "#000047", "#2e0047", "#470047", "#47002a",
	// 28-39
	"#740000", "#743a00", "#747400", "#517400", "#007400", "#007449", "#007474", "#004074", "#000074", "#4b0074", "#740074", "#740045",
	// 40-51
	"#b50000", "#b56300", "#b5b500", "#7db500", "#00b500", "#00b571", "#00b5b5", "#0063b5", "#0000b5", "#7500b5", "#b500b5", "#b5006b",
	// 52-63
	"#ff0000", "#ff8c00", "#ffff00", "#b2ff00", "#00ff00", "#00ffa0", "#00ffff", "#008cff", "#0000ff", "#a500ff", "#ff00ff", "#ff0098",
	// 64-75
	"#ff5959", "#ffb459", "#ffff71", "#cfff60", "#6fff6f", "#65ffc9", "#6dffff", "#59b4ff", "#5959ff", "#c459ff", "#ff66ff", "#ff59bc",
	// 76-87
	"#ff9c9c", "#ffd39c", "#ffff9c", "#e2ff9c", "#9cff9c", "#9cffdb", "#9cffff", "#9cd3ff", "#9c9cff", "#dc9cff", "#ff9cff", "#ff94d3",
	// 88-98
	"#000000", "#131313", "#282828", "#363636", "#4d4d4d", "#656565", "#818181", "#9f9f9f", "#bcbcbc", "#e2e2e2", "#ffffff",
}

// standardColorIndex returns the standard mIRC colour (0-15) whose RGB is
// exactly c ("#rrggbb", lower case).
func standardColorIndex(c string) (int, bool) {
	for i := 0; i < 16; i++ {
		if mircPalette[i] == c {
			return i, true
		}
	}
	return 0, false
}

// textStyle is the formatting in effect for a piece of text, on either side.
// Colours are "#rrggbb" in lower case, or "" for the default.
type textStyle struct {
	bold, italic, underline, strike, mono bool
	fg, bg                                string
}

func (s textStyle) plain() bool { return s == textStyle{} }

// ---------------------------------------------------------------------------
// IRC → Matrix

// IRCToMatrix turns IRC text (with formatting codes) into message content fields:
// body is plain text (codes stripped), formatted is HTML ("" when the text has no formatting and no mentions),
// mentions lists users pilled in the text (for m.mentions).
//
// Invalid UTF-8 becomes U+FFFD, NUL bytes are dropped and "\r\n" or "\r"
// become "\n" in both body and formatted. Mentions are whole words (runs of
// letters, digits and -_[]\`^{}|) that nicks resolves, outside URL-like words
// (containing "://", or starting with "www.", "mailto:" or "matrix:", or
// e-mail addresses) and outside monospace text; the pill shows the word as
// typed. A nick split by a formatting change is not pilled.
func IRCToMatrix(text string, nicks NickResolver) (body, formatted string, mentions []id.UserID) {
	text = normalizeIRCText(text)
	runs := parseIRC(text)
	var b strings.Builder
	b.Grow(len(text))
	styled := false
	for _, r := range runs {
		b.WriteString(r.text)
		if !r.style.plain() {
			styled = true
		}
	}
	body = b.String()
	spans := findMentions(body, runs, nicks)
	if !styled && len(spans) == 0 {
		return body, "", nil
	}
	seen := make(map[id.UserID]bool, len(spans))
	for _, s := range spans {
		if !seen[s.user] {
			seen[s.user] = true
			mentions = append(mentions, s.user)
		}
	}
	return body, renderHTML(runs, spans), mentions
}

// normalizeIRCText makes text valid UTF-8 without NUL, with "\n" line ends.
func normalizeIRCText(text string) string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	if strings.IndexByte(text, 0) >= 0 {
		text = strings.ReplaceAll(text, "\x00", "")
	}
	if strings.IndexByte(text, '\r') >= 0 {
		text = strings.ReplaceAll(text, "\r\n", "\n")
		text = strings.ReplaceAll(text, "\r", "\n")
	}
	return text
}

// styledRun is a piece of IRC text (codes removed) with its formatting.
// Adjacent runs always differ in style and runs are never empty.
type styledRun struct {
	text  string
	style textStyle
}

// parseIRC splits IRC text into styled runs, interpreting formatting codes as
// https://modern.ircdocs.horse/formatting describes. Reverse (\x16) is ignored.
func parseIRC(s string) []styledRun {
	// The text of all runs is built in one buffer and cut up at the end, so
	// merging many runs of the same style stays linear.
	var text strings.Builder
	text.Grow(len(s))
	var runs []styledRun
	var ends []int
	var st textStyle
	add := func(t string) {
		if t == "" {
			return
		}
		text.WriteString(t)
		if n := len(runs); n > 0 && runs[n-1].style == st {
			ends[n-1] = text.Len()
			return
		}
		runs = append(runs, styledRun{style: st})
		ends = append(ends, text.Len())
	}
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if !isIRCFormatByte(c) {
			i++
			continue
		}
		add(s[start:i])
		i++
		switch c {
		case ircBold:
			st.bold = !st.bold
		case ircItalic:
			st.italic = !st.italic
		case ircUnderline:
			st.underline = !st.underline
		case ircStrike:
			st.strike = !st.strike
		case ircMono:
			st.mono = !st.mono
		case ircReset:
			st = textStyle{}
		case ircReverse:
			// Matrix HTML has no reverse video.
		case ircColor:
			fg, n := colorNumber(s[i:])
			if n == 0 {
				st.fg, st.bg = "", ""
				break
			}
			i += n
			st.fg = fg
			if i+1 < len(s) && s[i] == ',' && isDigit(s[i+1]) {
				bg, n := colorNumber(s[i+1:])
				st.bg = bg
				i += 1 + n
			}
		case ircHexColor:
			fg, ok := hexColor(s[i:])
			if !ok {
				st.fg, st.bg = "", ""
				break
			}
			i += 6
			st.fg = fg
			if i < len(s) && s[i] == ',' {
				if bg, ok := hexColor(s[i+1:]); ok {
					st.bg = bg
					i += 7
				}
			}
		}
		start = i
	}
	add(s[start:])
	all, from := text.String(), 0
	for i := range runs {
		runs[i].text = all[from:ends[i]]
		from = ends[i]
	}
	return runs
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

func isHexDigit(b byte) bool {
	return isDigit(b) || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F')
}

// colorNumber reads a one- or two-digit mIRC colour number at the start of s.
// It returns the colour ("" for 99, the default) and how many bytes it used
// (0 when s does not start with a digit).
func colorNumber(s string) (string, int) {
	if len(s) == 0 || !isDigit(s[0]) {
		return "", 0
	}
	n, used := int(s[0]-'0'), 1
	if len(s) > 1 && isDigit(s[1]) {
		n, used = n*10+int(s[1]-'0'), 2
	}
	if n >= len(mircPalette) {
		return "", used
	}
	return mircPalette[n], used
}

// hexColor reads six hex digits at the start of s as "#rrggbb".
func hexColor(s string) (string, bool) {
	if len(s) < 6 {
		return "", false
	}
	for i := 0; i < 6; i++ {
		if !isHexDigit(s[i]) {
			return "", false
		}
	}
	return "#" + strings.ToLower(s[:6]), true
}

// mentionSpan is a pilled nick: body[start:end] mentions user.
type mentionSpan struct {
	start, end int
	user       id.UserID
}

// isNickRune reports whether r can be part of a nick for mention matching.
func isNickRune(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.IndexByte("-_[]\\`^{}|", byte(r)) >= 0
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// urlLike reports whether a whitespace-separated word looks like a URL or an
// e-mail address, inside which nicks are never pilled.
func urlLike(word string) bool {
	lower := strings.ToLower(word)
	if strings.Contains(lower, "://") || strings.HasPrefix(lower, "www.") ||
		strings.HasPrefix(lower, "mailto:") || strings.HasPrefix(lower, "matrix:") {
		return true
	}
	at := strings.IndexByte(word, '@')
	return at > 0 && strings.Contains(word[at+1:], ".")
}

// findMentions finds the words of body that nicks resolves. A word must lie
// within one styled run, not in monospace, and not in a URL-like word.
func findMentions(body string, runs []styledRun, nicks NickResolver) []mentionSpan {
	if nicks == nil {
		return nil
	}
	var spans []mentionSpan
	runIdx, runStart := 0, 0
	for fieldStart := 0; fieldStart < len(body); {
		r, size := utf8.DecodeRuneInString(body[fieldStart:])
		if unicode.IsSpace(r) {
			fieldStart += size
			continue
		}
		fieldEnd := len(body)
		if k := strings.IndexFunc(body[fieldStart:], unicode.IsSpace); k >= 0 {
			fieldEnd = fieldStart + k
		}
		if urlLike(body[fieldStart:fieldEnd]) {
			fieldStart = fieldEnd
			continue
		}
		// Nick characters are never spaces, so words stay inside the field.
		for i := fieldStart; i < fieldEnd; {
			r, size := utf8.DecodeRuneInString(body[i:])
			if !isNickRune(r) {
				i += size
				continue
			}
			j := i + size
			for j < fieldEnd {
				r, size := utf8.DecodeRuneInString(body[j:])
				if !isNickRune(r) {
					break
				}
				j += size
			}
			if user, ok := nicks(body[i:j]); ok && user != "" {
				for runIdx < len(runs) && runStart+len(runs[runIdx].text) <= i {
					runStart += len(runs[runIdx].text)
					runIdx++
				}
				if runIdx < len(runs) && j <= runStart+len(runs[runIdx].text) && !runs[runIdx].style.mono {
					spans = append(spans, mentionSpan{i, j, user})
				}
			}
			i = j
		}
		fieldStart = fieldEnd
	}
	return spans
}

// Matrix HTML tags for each kind of formatting, outermost first.
type htmlTag struct {
	kind   byte // 'c' colour, 'b', 'i', 'u', 's', 'm'
	fg, bg string
}

func (t htmlTag) satisfiedBy(s textStyle) bool {
	switch t.kind {
	case 'c':
		return s.fg == t.fg && s.bg == t.bg && (s.fg != "" || s.bg != "")
	case 'b':
		return s.bold
	case 'i':
		return s.italic
	case 'u':
		return s.underline
	case 's':
		return s.strike
	default:
		return s.mono
	}
}

func (t htmlTag) open(b *strings.Builder) {
	switch t.kind {
	case 'c':
		b.WriteString("<span")
		if t.fg != "" {
			b.WriteString(` data-mx-color="` + t.fg + `"`)
		}
		if t.bg != "" {
			b.WriteString(` data-mx-bg-color="` + t.bg + `"`)
		}
		b.WriteString(">")
	case 'b':
		b.WriteString("<strong>")
	case 'i':
		b.WriteString("<em>")
	case 'u':
		b.WriteString("<u>")
	case 's':
		b.WriteString("<del>")
	default:
		b.WriteString("<code>")
	}
}

func (t htmlTag) close(b *strings.Builder) {
	switch t.kind {
	case 'c':
		b.WriteString("</span>")
	case 'b':
		b.WriteString("</strong>")
	case 'i':
		b.WriteString("</em>")
	case 'u':
		b.WriteString("</u>")
	case 's':
		b.WriteString("</del>")
	default:
		b.WriteString("</code>")
	}
}

// wantedTags lists the tags a style needs, in nesting order (outermost first).
func wantedTags(s textStyle) []htmlTag {
	var tags []htmlTag
	if s.fg != "" || s.bg != "" {
		tags = append(tags, htmlTag{kind: 'c', fg: s.fg, bg: s.bg})
	}
	for _, k := range []struct {
		on   bool
		kind byte
	}{{s.bold, 'b'}, {s.italic, 'i'}, {s.underline, 'u'}, {s.strike, 's'}, {s.mono, 'm'}} {
		if k.on {
			tags = append(tags, htmlTag{kind: k.kind})
		}
	}
	return tags
}

// renderHTML writes the runs as Matrix HTML. Open tags form a stack: a style
// change closes tags down to the first one that no longer applies and opens
// what is missing, so the result is always well nested.
func renderHTML(runs []styledRun, spans []mentionSpan) string {
	var b strings.Builder
	var open []htmlTag
	offset := 0
	for _, r := range runs {
		keep := 0
		for keep < len(open) && open[keep].satisfiedBy(r.style) {
			keep++
		}
		for i := len(open) - 1; i >= keep; i-- {
			open[i].close(&b)
		}
		open = open[:keep]
		for _, t := range wantedTags(r.style) {
			have := false
			for _, o := range open {
				if o.kind == t.kind {
					have = true
					break
				}
			}
			if !have {
				t.open(&b)
				open = append(open, t)
			}
		}
		// The text, with pills for the mentions inside it.
		text, pos := r.text, offset
		for len(spans) > 0 && spans[0].start < offset+len(r.text) {
			s := spans[0]
			spans = spans[1:]
			writeHTMLText(&b, text[:s.start-pos])
			b.WriteString(`<a href="https://matrix.to/#/`)
			b.WriteString(stdhtml.EscapeString(url.PathEscape(string(s.user))))
			b.WriteString(`">`)
			writeHTMLText(&b, text[s.start-pos:s.end-pos])
			b.WriteString("</a>")
			text, pos = text[s.end-pos:], s.end
		}
		writeHTMLText(&b, text)
		offset += len(r.text)
	}
	for i := len(open) - 1; i >= 0; i-- {
		open[i].close(&b)
	}
	return b.String()
}

// writeHTMLText writes HTML-escaped text, newlines as <br>.
func writeHTMLText(b *strings.Builder, s string) {
	for {
		line, rest, found := strings.Cut(s, "\n")
		b.WriteString(stdhtml.EscapeString(line))
		if !found {
			return
		}
		b.WriteString("<br>")
		s = rest
	}
}

// ---------------------------------------------------------------------------
// Matrix → IRC

// MatrixToIRC renders a message for IRC: from formatted_body when its format is org.matrix.custom.html, else from body.
// It returns plain IRC text with IRC formatting codes, possibly with newlines (the caller splits lines).
//
// HTML that cannot be parsed (nested deeper than 512 elements) or that
// renders to nothing falls back to the body. From HTML, every line closes the
// formatting it opened, and IRC codes inside the HTML's text are dropped; the
// plain body is returned as it is, apart from removing a reply fallback.
func MatrixToIRC(content *event.MessageEventContent, users UserResolver) string {
	if content == nil {
		return ""
	}
	if content.Format == event.FormatHTML && content.FormattedBody != "" {
		if out, ok := htmlToIRC(content.FormattedBody, users); ok && strings.TrimSpace(out) != "" {
			return out
		}
	}
	if content.RelatesTo.GetReplyTo() != "" {
		return stripReplyFallback(content.Body)
	}
	return content.Body
}

// stripReplyFallback removes the "> " quoted lines and the empty line after
// them that Matrix reply fallbacks put before the body. Text that does not
// have that shape is returned unchanged.
func stripReplyFallback(body string) string {
	if !strings.HasPrefix(body, "> ") {
		return body
	}
	rest := body
	for {
		line, after, found := strings.Cut(rest, "\n")
		if line == "" {
			return after
		}
		if !found || !(strings.HasPrefix(line, "> ") || line == ">") {
			return body
		}
		rest = after
	}
}

// maxPrefixDepth caps how many nested quotes and list items indent a line, so
// deep nesting cannot blow up the output.
const maxPrefixDepth = 8

// prefixEntry is what a blockquote or list item puts before each of its lines.
type prefixEntry struct {
	first, rest string // for its first line, for the others
	used        bool   // the first line has been written
	item        bool   // a list item, whose marker shows even when it is empty
}

// listState numbers the items of one list.
type listState struct {
	ordered bool
	next    int
}

// elemFrame records what entering an element changed, to undo on leaving it.
type elemFrame struct {
	style, prefix, list, pre, block bool
	ticks                           bool // inline code, shown between backticks
	linkSuffix                      string
}

// ircRenderer writes HTML as IRC text. Formatting is tracked as state: the
// style each element asks for (styles) and the style the output currently
// has (emitted); codes are written only before text, so empty elements cost
// nothing and nested or overlapping elements always close correctly.
type ircRenderer struct {
	users     UserResolver
	monoCodes bool // inline code as \x11 (monospace) rather than backticks
	buf       []byte

	styles   []textStyle
	frames   []elemFrame
	prefixes []prefixEntry
	lists    []listState
	pre      int

	emitted   textStyle
	open      []byte // the codes in effect, in the order they were opened ('c' for colour)
	colorCode string // the colour code in effect on this line, "" for none
	guard     string // bytes that must not directly follow the last colour code

	wrote        bool // anything at all has been written
	lineOpen     bool // the current line has been started (prefix written)
	pendingNL    int  // line breaks owed before the next text (at most 2)
	pendingSpace bool // collapsed whitespace owed before the next word
	spaceStyle   textStyle
}

// skippedTags are elements whose content is never shown.
var skippedTags = map[string]bool{
	"mx-reply": true, "script": true, "style": true, "template": true, "noscript": true,
	"iframe": true, "title": true, "head": true, "noembed": true, "noframes": true, "xmp": true,
}

// blockTags are elements that start and end on their own lines.
var blockTags = map[string]bool{
	"p": true, "div": true, "table": true, "tr": true, "thead": true, "tbody": true, "tfoot": true,
	"caption": true, "details": true, "summary": true, "section": true, "article": true, "aside": true,
	"header": true, "footer": true, "nav": true, "main": true, "figure": true, "figcaption": true,
	"dl": true, "dt": true, "dd": true, "address": true, "center": true, "fieldset": true, "legend": true,
}

// htmlToIRC renders Matrix HTML. ok is false when the HTML cannot be parsed.
func htmlToIRC(src string, users UserResolver) (out string, ok bool) {
	return renderIRC(src, users, false)
}

// renderIRC renders Matrix HTML, with inline code as \x11 when monoCodes.
func renderIRC(src string, users UserResolver, monoCodes bool) (out string, ok bool) {
	ctx := &html.Node{Type: html.ElementNode, Data: "div", DataAtom: atom.Div}
	nodes, err := html.ParseFragment(strings.NewReader(src), ctx)
	if err != nil {
		return "", false
	}
	r := &ircRenderer{users: users, monoCodes: monoCodes, styles: []textStyle{{}}}
	for _, n := range nodes {
		r.walk(n)
	}
	r.setStyle(textStyle{})
	return string(r.buf), true
}

// walk visits root's subtree without recursion, using the parent links.
func (r *ircRenderer) walk(root *html.Node) {
	n := root
	for {
		if r.enter(n) && n.FirstChild != nil {
			n = n.FirstChild
			continue
		}
		for {
			r.leave(n)
			if n == root {
				return
			}
			if n.NextSibling != nil {
				n = n.NextSibling
				break
			}
			n = n.Parent
		}
	}
}

func (r *ircRenderer) cur() textStyle { return r.styles[len(r.styles)-1] }

var inlineCodeTags = map[string]bool{"code": true, "tt": true, "kbd": true, "samp": true}

func getAttr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Namespace == "" && a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// enter starts an element (or writes a text node) and reports whether to
// visit its children.
func (r *ircRenderer) enter(n *html.Node) bool {
	switch n.Type {
	case html.TextNode:
		if r.pre > 0 {
			r.preText(n.Data)
		} else {
			r.text(n.Data)
		}
		return false
	case html.ElementNode:
	default:
		return false
	}
	var f elemFrame
	descend := true
	switch {
	case skippedTags[n.Data]:
		descend = false
	case n.Data == "br":
		r.hardBreak()
		descend = false
	case r.pre > 0:
		// Inside a code block only the text counts.
	case inlineCodeTags[n.Data] && !r.monoCodes:
		// Backticks rather than \x11: irssi and other common clients show
		// the monospace code as a stray ^Q, while `code` reads everywhere.
		r.text("`")
		r.styles = append(r.styles, r.cur())
		f.style, f.ticks = true, true
	default:
		if st, ok := r.inlineStyle(n); ok {
			r.styles = append(r.styles, st)
			f.style = true
		} else {
			descend = r.enterElement(n, &f)
		}
	}
	r.frames = append(r.frames, f)
	return descend
}

// inlineStyle returns the style inside an inline formatting element; ok is
// false for other elements. A spoiler writes its label here.
func (r *ircRenderer) inlineStyle(n *html.Node) (st textStyle, ok bool) {
	st = r.cur()
	switch n.Data {
	case "b", "strong":
		st.bold = true
	case "i", "em":
		st.italic = true
	case "u", "ins":
		st.underline = true
	case "s", "del", "strike":
		st.strike = true
	case "code", "tt", "kbd", "samp":
		st.mono = true
	case "span", "font":
		if reason, ok := getAttr(n, "data-mx-spoiler"); ok && n.Data == "span" {
			label := "[spoiler]"
			if reason = strings.TrimSpace(reason); reason != "" {
				label = "[spoiler: " + reason + "]"
			}
			bold := st
			bold.bold = true
			r.styles = append(r.styles, bold)
			r.text(label)
			r.styles = r.styles[:len(r.styles)-1]
			r.text(" ")
		}
		fg, _ := getAttr(n, "data-mx-color")
		if fg == "" && n.Data == "font" {
			fg, _ = getAttr(n, "color")
		}
		bg, _ := getAttr(n, "data-mx-bg-color")
		if c := parseCSSColor(fg); c != "" {
			st.fg = c
		}
		if c := parseCSSColor(bg); c != "" {
			st.bg = c
		}
	default:
		return st, false
	}
	return st, true
}

// enterElement starts any element but inline formatting, recording in f what
// to undo on leaving it, and reports whether to visit its children.
func (r *ircRenderer) enterElement(n *html.Node, f *elemFrame) bool {
	tag := n.Data
	switch {
	case tag == "pre":
		r.blockBreak()
		f.block, f.pre, f.style = true, true, true
		r.pre++
		r.styles = append(r.styles, textStyle{})
	case tag == "hr":
		r.blockBreak()
		r.text("---")
		r.blockBreak()
		return false
	case tag == "img":
		alt, _ := getAttr(n, "alt")
		if strings.TrimSpace(alt) == "" {
			alt, _ = getAttr(n, "title")
		}
		if strings.TrimSpace(alt) == "" {
			alt = "[image]"
		}
		r.text(alt)
		return false
	case tag == "input":
		if typ, _ := getAttr(n, "type"); strings.EqualFold(typ, "checkbox") {
			if _, checked := getAttr(n, "checked"); checked {
				r.text("[x] ")
			} else {
				r.text("[ ] ")
			}
		}
		return false
	case len(tag) == 2 && tag[0] == 'h' && tag[1] >= '1' && tag[1] <= '6':
		r.blockBreak()
		f.block, f.style = true, true
		st := r.cur()
		st.bold = true
		r.styles = append(r.styles, st)
	case tag == "a":
		return r.enterLink(n, f)
	case tag == "blockquote":
		r.blockBreak()
		f.block, f.prefix = true, true
		r.prefixes = append(r.prefixes, prefixEntry{first: "> ", rest: "> "})
	case tag == "ul" || tag == "ol":
		r.blockBreak()
		f.block, f.list = true, true
		l := listState{ordered: tag == "ol", next: 1}
		if start, ok := getAttr(n, "start"); ok && l.ordered {
			if v, err := strconv.Atoi(strings.TrimSpace(start)); err == nil && v > -1e9 && v < 1e9 {
				l.next = v
			}
		}
		r.lists = append(r.lists, l)
	case tag == "li":
		r.blockBreak()
		f.block, f.prefix = true, true
		marker := "• "
		if k := len(r.lists) - 1; k >= 0 && r.lists[k].ordered {
			marker = strconv.Itoa(r.lists[k].next) + ". "
			r.lists[k].next++
		}
		r.prefixes = append(r.prefixes, prefixEntry{first: marker, rest: "  ", item: true})
	case tag == "td" || tag == "th":
		for p := n.PrevSibling; p != nil; p = p.PrevSibling {
			if p.Type == html.ElementNode && (p.Data == "td" || p.Data == "th") {
				r.text(" | ")
				break
			}
		}
	case tag == "details":
		// The summary comes first, whatever the order in the HTML.
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if c.Type == html.ElementNode && c.Data == "summary" {
				if c != n.FirstChild {
					n.RemoveChild(c)
					n.InsertBefore(c, n.FirstChild)
				}
				break
			}
		}
		r.blockBreak()
		f.block = true
	case blockTags[tag]:
		r.blockBreak()
		f.block = true
	}
	return true
}

// enterLink handles <a>: pills become nicks or room names, other links
// "text (URL)", or just the URL when the text is the URL.
func (r *ircRenderer) enterLink(n *html.Node, f *elemFrame) bool {
	href, _ := getAttr(n, "href")
	href = strings.TrimSpace(href)
	if href == "" {
		return true
	}
	if target, event, ok := parseMatrixLink(href); ok {
		switch {
		case target[0] == '@':
			nick := ""
			if r.users != nil {
				if nk, ok := r.users(id.UserID(target)); ok {
					nick = nk
				}
			}
			if nick == "" {
				nick = textContent(n)
			}
			if nick == "" {
				nick = target
			}
			r.text(nick)
			return false
		case !event:
			r.text(target)
			return false
		}
	}
	text := textContent(n)
	if text == "" || text == href || text == strings.TrimPrefix(href, "mailto:") ||
		text == strings.TrimPrefix(href, "http://") || text == strings.TrimPrefix(href, "https://") {
		r.text(href)
		return false
	}
	f.linkSuffix = href
	return true
}

// parseMatrixLink reads a matrix.to URL or matrix: URI: the user, room alias
// or room ID it points at, and whether it points at an event in that room.
// matrix.to fragments are split before they are unescaped, so IDs with an
// escaped "/" or "?" survive.
func parseMatrixLink(href string) (target string, event, ok bool) {
	u, err := url.Parse(href)
	if err != nil {
		return "", false, false
	}
	if u.Scheme == "matrix" {
		uri, err := id.ProcessMatrixURI(u)
		if err != nil || uri == nil || uri.MXID1 == "" {
			return "", false, false
		}
		return uri.PrimaryIdentifier(), uri.Sigil2 != 0, true
	}
	if (u.Scheme != "https" && u.Scheme != "http") || !strings.EqualFold(u.Hostname(), "matrix.to") {
		return "", false, false
	}
	frag, _, _ := strings.Cut(u.EscapedFragment(), "?")
	parts := strings.Split(frag, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] != "" {
		return "", false, false
	}
	target, err = url.PathUnescape(parts[1])
	if err != nil || len(target) < 2 || strings.IndexByte("@#!", target[0]) < 0 {
		return "", false, false
	}
	return target, len(parts) == 3 && parts[2] != "", true
}

func (r *ircRenderer) leave(n *html.Node) {
	if n.Type != html.ElementNode {
		return
	}
	f := r.frames[len(r.frames)-1]
	r.frames = r.frames[:len(r.frames)-1]
	if f.style {
		r.styles = r.styles[:len(r.styles)-1]
	}
	if f.pre {
		r.pre--
	}
	if f.ticks {
		r.text("`")
	}
	if f.linkSuffix != "" {
		r.text(" (" + f.linkSuffix + ")")
	}
	if f.prefix {
		if top := r.prefixes[len(r.prefixes)-1]; top.item && !top.used {
			// An empty list item still shows its bullet or number.
			r.blockBreak()
			r.startLine()
			for len(r.buf) > 0 && r.buf[len(r.buf)-1] == ' ' {
				r.buf = r.buf[:len(r.buf)-1]
			}
		}
		r.blockBreak()
		r.prefixes = r.prefixes[:len(r.prefixes)-1]
	}
	if f.list {
		r.lists = r.lists[:len(r.lists)-1]
	}
	if f.block {
		r.blockBreak()
	}
}

// textContent is the whitespace-collapsed text of n's subtree (images count
// as their alt text), without IRC codes.
func textContent(root *html.Node) string {
	var b strings.Builder
	n := root
	for {
		descend := false
		switch n.Type {
		case html.TextNode:
			b.WriteString(n.Data)
		case html.ElementNode:
			switch {
			case skippedTags[n.Data]:
			case n.Data == "img":
				alt, _ := getAttr(n, "alt")
				b.WriteString(" " + alt + " ")
			default:
				descend = true
			}
		}
		if descend && n.FirstChild != nil {
			n = n.FirstChild
			continue
		}
		for n != root && n.NextSibling == nil {
			n = n.Parent
		}
		if n == root {
			break
		}
		n = n.NextSibling
	}
	return strings.Join(strings.Fields(stripIRCCodes(b.String())), " ")
}

// stripIRCCodes drops IRC formatting bytes (not their parameters) and NUL.
func stripIRCCodes(s string) string {
	i := 0
	for i < len(s) && !isIRCFormatByte(s[i]) && s[i] != 0 {
		i++
	}
	if i == len(s) {
		return s
	}
	b := make([]byte, 0, len(s))
	for j := 0; j < len(s); j++ {
		if !isIRCFormatByte(s[j]) && s[j] != 0 {
			b = append(b, s[j])
		}
	}
	return string(b)
}

func isHTMLSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\f' || b == '\r'
}

// text writes HTML text outside code blocks: runs of whitespace collapse to
// one space, and none is written at the start or end of a line.
func (r *ircRenderer) text(s string) {
	s = stripIRCCodes(s)
	for len(s) > 0 {
		if isHTMLSpace(s[0]) {
			if r.lineOpen && !r.pendingSpace {
				r.pendingSpace = true
				r.spaceStyle = r.cur()
			}
			s = s[1:]
			continue
		}
		end := 1
		for end < len(s) && !isHTMLSpace(s[end]) {
			end++
		}
		r.word(s[:end])
		s = s[end:]
	}
}

// word writes text without whitespace in the current style.
func (r *ircRenderer) word(w string) {
	r.startLine()
	if r.pendingSpace {
		r.setStyle(r.spaceStyle)
		r.writeText(" ")
		r.pendingSpace = false
	}
	r.setStyle(r.cur())
	r.writeText(w)
}

// preText writes the text of a code block: lines as they are, unformatted.
func (r *ircRenderer) preText(s string) {
	s = stripIRCCodes(s)
	for {
		line, rest, found := strings.Cut(s, "\n")
		if line != "" {
			r.startLine()
			r.setStyle(r.cur())
			r.writeText(line)
		}
		if !found {
			return
		}
		r.hardBreak()
		s = rest
	}
}

// hardBreak ends the line (<br>, or a newline in a code block); a second
// one in a row leaves a blank line, more do nothing.
func (r *ircRenderer) hardBreak() {
	r.pendingSpace = false
	if !r.wrote {
		return
	}
	if r.lineOpen {
		r.lineOpen = false
		r.pendingNL = 1
	} else if r.pendingNL < 2 {
		r.pendingNL++
	}
}

// blockBreak makes sure what follows starts on a new line.
func (r *ircRenderer) blockBreak() {
	r.pendingSpace = false
	if r.lineOpen {
		r.lineOpen = false
		r.pendingNL = 1
	}
}

// startLine begins a line if none is open: it closes the previous line's
// formatting, writes the owed newlines and the quote and list prefixes.
func (r *ircRenderer) startLine() {
	if r.lineOpen {
		return
	}
	if r.wrote {
		r.setStyle(textStyle{})
		r.buf = append(r.buf, '\n')
		for i := 1; i < r.pendingNL; i++ {
			r.buf = append(r.buf, strings.TrimRight(r.prefix(true), " ")...)
			r.buf = append(r.buf, '\n')
		}
		r.guard = ""
	}
	r.buf = append(r.buf, r.prefix(false)...)
	r.wrote, r.lineOpen, r.pendingNL = true, true, 0
}

// prefix returns the quote and list prefix of a line. The first line of a
// list item shows its marker (and marks it shown); blank lines and later
// lines are indented instead. Only the outermost maxPrefixDepth levels
// indent; a deeper list item still shows its own marker.
func (r *ircRenderer) prefix(blank bool) string {
	var b strings.Builder
	n := len(r.prefixes)
	limit := min(n, maxPrefixDepth)
	for i := 0; i < limit; i++ {
		if e := r.prefixes[i]; e.used || blank {
			b.WriteString(e.rest)
		} else {
			b.WriteString(e.first)
		}
	}
	if n > limit && !blank {
		if last := r.prefixes[n-1]; last.item && !last.used {
			b.WriteString(last.first)
		}
	}
	if !blank {
		for i := range r.prefixes {
			r.prefixes[i].used = true
		}
	}
	return b.String()
}

// writeText appends text, first breaking up anything a preceding colour code
// would otherwise swallow as its parameters (with an empty bold toggle).
func (r *ircRenderer) writeText(s string) {
	if r.guard != "" && s != "" && strings.IndexByte(r.guard, s[0]) >= 0 {
		r.buf = append(r.buf, ircBold, ircBold)
	}
	r.guard = ""
	r.buf = append(r.buf, s...)
}

// setStyle writes the codes that turn the emitted formatting into want.
// Codes that must go are closed innermost first, then new ones are opened.
func (r *ircRenderer) setStyle(want textStyle) {
	if r.emitted == want {
		return
	}
	code, hasBg := ircColorCode(want.fg, want.bg)
	old := r.colorCode
	// A colour is closed when it goes away, changes between \x03 and \x04,
	// or loses its background (a code without one keeps the old background).
	closeColor := old != "" && code != old && (code == "" || old[0] != code[0] || (strings.Contains(old, ",") && !hasBg))
	has := func(k byte) bool {
		switch k {
		case ircBold:
			return want.bold
		case ircItalic:
			return want.italic
		case ircUnderline:
			return want.underline
		case ircStrike:
			return want.strike
		case ircMono:
			return want.mono
		}
		return !closeColor && code != ""
	}
	kept := r.open[:0]
	for i := len(r.open) - 1; i >= 0; i-- {
		if k := r.open[i]; !has(k) {
			if k == 'c' {
				r.writeCode(old[:1], guardAfterClose(old[0]))
			} else {
				r.writeCode(string(k), "")
			}
		}
	}
	for _, k := range r.open {
		if has(k) {
			kept = append(kept, k)
		}
	}
	r.open = kept
	for _, k := range []byte{ircBold, ircItalic, ircUnderline, ircStrike, ircMono} {
		if has(k) && strings.IndexByte(string(r.open), k) < 0 {
			r.writeCode(string(k), "")
			r.open = append(r.open, k)
		}
	}
	if code != "" && (code != old || closeColor) {
		guard := ""
		if !hasBg {
			guard = ","
		}
		r.writeCode(code, guard)
		if strings.IndexByte(string(r.open), 'c') < 0 {
			r.open = append(r.open, 'c')
		}
	}
	r.colorCode = code
	r.emitted = want
}

// guardAfterClose is what must not directly follow \x03 or \x04 alone.
func guardAfterClose(kind byte) string {
	if kind == ircHexColor {
		return "0123456789abcdefABCDEF,"
	}
	return "0123456789,"
}

// writeCode appends formatting codes; guard lists the bytes that would
// wrongly extend them if text began with one.
func (r *ircRenderer) writeCode(code, guard string) {
	r.buf = append(r.buf, code...)
	r.guard = guard
}

// ircColorCode is the IRC code for a colour pair: \x03NN[,NN], each colour
// the nearest of the 99 mIRC colours (99 standing for a missing
// foreground). \x04RRGGBB is never sent: irssi 1.4 and WeeChat 3.8 print it
// as text ("FF00green").
func ircColorCode(fg, bg string) (code string, hasBg bool) {
	if fg == "" && bg == "" {
		return "", false
	}
	code = "\x0399"
	if fg != "" {
		code = "\x03" + twoDigits(nearestColorIndex(fg))
	}
	if bg != "" {
		code += "," + twoDigits(nearestColorIndex(bg))
	}
	return code, bg != ""
}

// nearestColorIndex is the mIRC colour (0-98) that looks most like c
// ("#rrggbb"): an exact one if there is one, the lowest number among
// equals (so the 16 standard colours first), else the nearest by the
// "redmean" distance, which weighs red, green and blue as eyes do.
func nearestColorIndex(c string) int {
	if i, ok := standardColorIndex(c); ok {
		return i
	}
	r, g, b, ok := rgbOf(c)
	if !ok {
		return 99
	}
	best, bestD := 99, -1
	for i, p := range mircPalette {
		pr, pg, pb, _ := rgbOf(p)
		rm := (r + pr) / 2
		dr, dg, db := r-pr, g-pg, b-pb
		d := (512+rm)*dr*dr>>8 + 4*dg*dg + (767-rm)*db*db>>8
		if bestD < 0 || d < bestD {
			best, bestD = i, d
		}
	}
	return best
}

// rgbOf reads "#rrggbb".
func rgbOf(c string) (r, g, b int, ok bool) {
	if len(c) != 7 || c[0] != '#' {
		return 0, 0, 0, false
	}
	v, err := strconv.ParseUint(c[1:], 16, 32)
	if err != nil {
		return 0, 0, 0, false
	}
	return int(v >> 16), int(v >> 8 & 0xff), int(v & 0xff), true
}

func twoDigits(n int) string {
	return string([]byte{byte('0' + n/10), byte('0' + n%10)})
}

// cssColorNames are the colour keywords accepted in <font color>.
var cssColorNames = map[string]string{
	"black": "#000000", "white": "#ffffff", "red": "#ff0000", "lime": "#00ff00",
	"blue": "#0000ff", "yellow": "#ffff00", "cyan": "#00ffff", "aqua": "#00ffff",
	"magenta": "#ff00ff", "fuchsia": "#ff00ff", "gray": "#808080", "grey": "#808080",
	"silver": "#c0c0c0", "maroon": "#800000", "olive": "#808000", "green": "#008000",
	"purple": "#800080", "teal": "#008080", "navy": "#000080", "orange": "#ffa500",
}

// parseCSSColor reads "#rrggbb", "#rgb" or a basic colour name as
// "#rrggbb" in lower case; anything else gives "".
func parseCSSColor(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if c, ok := cssColorNames[s]; ok {
		return c
	}
	if len(s) == 0 || s[0] != '#' {
		return ""
	}
	hex := s[1:]
	for i := 0; i < len(hex); i++ {
		if !isHexDigit(hex[i]) {
			return ""
		}
	}
	switch len(hex) {
	case 6:
		return s
	case 3:
		return string([]byte{'#', hex[0], hex[0], hex[1], hex[1], hex[2], hex[2]})
	}
	return ""
}
