package ircd

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/mxircd/mxircd/irctext"
)

// What this server announces about itself. PREFIX and CHANMODES must match
// what the session actually does with power levels and room state.
const (
	ChanTypes    = "#!"
	UserModes    = "i"
	ChannelModes = "biKmnpstov"
	NickLen      = 64
)

// ISupport builds RPL_ISUPPORT: tokens are validated when added and split
// into lines of at most 13 tokens and ~380 bytes.
type ISupport struct {
	tokens []string
}

// Add appends a token; value "" means a token without a value. It panics on
// a malformed token because the set is fixed at start-up.
func (is *ISupport) Add(name, value string) {
	if name == "" || strings.ToUpper(name) != name || strings.ContainsAny(name, " =:") {
		panic(fmt.Sprintf("ircd: bad ISUPPORT token name %q", name))
	}
	if strings.ContainsAny(value, " \x00\r\n") {
		panic(fmt.Sprintf("ircd: bad ISUPPORT value %q for %s", value, name))
	}
	for _, t := range is.tokens {
		if t == name || strings.HasPrefix(t, name+"=") {
			panic("ircd: duplicate ISUPPORT token " + name)
		}
	}
	if value != "" {
		name += "=" + value
	}
	is.tokens = append(is.tokens, name)
}

const (
	isupportMaxTokens = 13
	isupportMaxBytes  = 380
)

// lines returns the parameters of each 005 line, without the nick and the
// trailing text.
func (is *ISupport) lines() [][]string {
	var out [][]string
	var cur []string
	size := 0
	for _, t := range is.tokens {
		if len(cur) == isupportMaxTokens || (len(cur) > 0 && size+1+len(t) > isupportMaxBytes) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, t)
		size += 1 + len(t)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func defaultISupport(cfg *Config) *ISupport {
	is := &ISupport{}
	is.Add("CASEMAPPING", "ascii")
	is.Add("CHANMODES", "b,,,iKmnpst")
	is.Add("CHANTYPES", ChanTypes)
	is.Add("CHATHISTORY", strconv.Itoa(irctext.MaxHistoryLimit))
	// Only these client tags mean something in Matrix; others are dropped.
	is.Add("CLIENTTAGDENY", "*,-draft/reply,-draft/react,-typing")
	// ELIST=S: LIST >#space lists a Matrix space's rooms (session/spaces.go).
	is.Add("ELIST", "S")
	is.Add("LINELEN", strconv.Itoa(MaxLineBytes))
	is.Add("MONITOR", "100")
	is.Add("MSGREFTYPES", "msgid,timestamp")
	is.Add("NETWORK", cfg.Network)
	is.Add("NICKLEN", strconv.Itoa(NickLen))
	is.Add("PREFIX", "(ov)@+")
	is.Add("SAFELIST", "")
	is.Add("SILENCE", strconv.Itoa(irctext.SilenceLimit))
	is.Add("TARGMAX", "JOIN:,PART:,PRIVMSG:1,NOTICE:1,NAMES:1,WHOIS:1")
	is.Add("UTF8ONLY", "")
	is.Add("WHOX", "")
	return is
}
