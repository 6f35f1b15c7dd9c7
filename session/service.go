package session

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"gopkg.in/irc.v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/crypto/ssss"
	"maunium.net/go/mautrix/event"

	"github.com/mxircd/mxircd/irctext"
)

// The service nick is a pseudo-user (Config.ServiceNick, "mxircd" by
// default; NickServ is an alias) that clients query for what IRC has no
// command for. It answers with NOTICEs from itself. Nothing typed to it
// ever reaches Matrix: a PRIVMSG to it is taken before any Matrix target
// is looked up, and no Matrix user is given its nick.

// DefaultServiceNick is the service nick when the configuration names none.
const DefaultServiceNick = "mxircd"

// serviceCommand is one command of the service, with its help.
type serviceCommand struct {
	name  string
	usage string
	help  string
	run   func(s *Session, a *Attachment, out output, reply func(string), args string)
}

// serviceCommands is the service's command table; HELP is made from it.
var serviceCommands map[string]serviceCommand

func init() {
	serviceCommands = map[string]serviceCommand{}
	for _, c := range []serviceCommand{
		{name: "HELP", usage: "HELP [command]", help: "lists the commands, or explains one", run: (*Session).serviceHelp},
		{name: "VERIFY", usage: "VERIFY <recovery key or passphrase>",
			help: "verifies this gateway's device with your account's recovery key (or its passphrase), as Element's \"Verify with Security Key\" does, so your contacts see it as trusted, and restores your key backup so older encrypted messages can be read. VERIFY EMOJI instead compares emoji with your other device (Element), or accepts the request it sent",
			run:  (*Session).serviceVerify},
		{name: "PASSWORD", usage: "PASSWORD SET <password> | PASSWORD CLEAR",
			help: "sets (or removes) an app password: a password of this gateway only that SASL PLAIN, PASS and IDENTIFY accept for your account, for accounts with no Matrix password (OAuth, SSO) or to keep that one out of your IRC client. Only over TLS or from this machine",
			run:  (*Session).servicePassword},
		certFPCommand,
		{name: "STATUS", usage: "STATUS", help: "shows your account's homeserver, whether it is syncing, your rooms, encryption and the last error", run: (*Session).serviceStatus},
		{name: "DEVICES", usage: "DEVICES | DEVICES DELETE <device ID> [<Matrix password>]",
			help: "lists your account's Matrix devices, or logs one out; most homeservers ask for your Matrix password to do that (it is passed on, never stored or shown)",
			run:  (*Session).serviceDevices},
		{name: "LOGOUT", usage: "LOGOUT [CONFIRM]", help: "logs this gateway's device out of your Matrix account and disconnects your IRC clients here; asks for CONFIRM first", run: (*Session).serviceLogout},
		{name: "ALWAYSON", usage: "ALWAYSON [ON|OFF|DEFAULT]", help: alwaysOnHelp, run: (*Session).serviceAlwaysOn},
		{name: "TAGSONLY", usage: "TAGSONLY [ON|OFF [<client>]]", help: tagsOnlyHelp, run: (*Session).serviceTagsOnly},
		{name: "IDENTIFY", usage: "IDENTIFY <account> <password>", help: "logs a connection in that is not logged in yet (for clients without SASL)", run: (*Session).serviceIdentify},
		{name: "LOGIN", usage: "LOGIN [<Matrix ID or server>]", help: "logs a connection in that is not logged in yet, in your web browser (OAuth 2.0 device login or SSO)", run: (*Session).serviceIdentify},
		{name: "CONFIRM", usage: "CONFIRM", help: "says the emoji of a verification are the same as on your other device", run: (*Session).serviceConfirm},
		{name: "INVITES", usage: "INVITES", help: "lists the invitations waiting for an answer (JOIN accepts one)", run: (*Session).serviceInvites},
		{name: "DECLINE", usage: "DECLINE <channel or sender> [IGNORE]", help: "refuses an invitation, or every invitation from one sender (nick or Matrix ID); IGNORE also adds who sent them to your ignore list (SILENCE)", run: (*Session).serviceDecline},
		{name: "VOTE", usage: "VOTE <channel> <number>[,<number>...]",
			help: "votes in the newest open poll of a channel that this gateway saw start, by the numbers its answers were shown with (several, separated by commas, where the poll allows more than one)",
			run:  (*Session).serviceVote},
		{name: "POLL", usage: "POLL <channel> <question> | <answer> | <answer>...",
			help: "starts a poll in a channel, with 2 to 20 answers separated by |; people vote in Element, or here with VOTE",
			run:  (*Session).servicePoll},
		{name: "ENDPOLL", usage: "ENDPOLL <channel>",
			help: "ends the newest open poll of a channel that you started (or any, if you are a moderator there); its results show in the channel",
			run:  (*Session).serviceEndPoll},
		{name: "SEARCH", usage: "SEARCH [<channel>] <words>",
			help: "searches your rooms' messages on the homeserver (or one channel's) and answers with the matching lines: time, channel, sender, text and the message's ID, which CHATHISTORY AROUND <channel> msgid=<ID> opens. The homeserver cannot search end-to-end encrypted rooms",
			run:  (*Session).serviceSearch},
		{name: "THREADS", usage: "THREADS <channel>",
			help: "lists a channel's threads, newest activity first, from the messages this gateway has kept (the homeserver, Dendrite, cannot list them): each thread's first message, its ID (reply to it to write in the thread) and how many replies it has",
			run:  (*Session).serviceThreads},
		{name: "CANCEL", usage: "CANCEL", help: "ends a verification under way (or refuses a request), e.g. when the emoji differ", run: (*Session).serviceCancel},
	} {
		serviceCommands[c.name] = c
	}
}

// isServiceNick says whether a nick names the service. Any goroutine.
func (s *Session) isServiceNick(nick string) bool {
	folded := irctext.Casefold(nick)
	return folded == irctext.Casefold(s.mgr.cfg.ServiceNick) || folded == "nickserv"
}

// serviceMessage runs a line a client sent to the service, named as the
// client addressed it. NOTICEs get no answer. Owner goroutine.
func (s *Session) serviceMessage(a *Attachment, out output, command, to, text string) {
	if command != "PRIVMSG" {
		return
	}
	reply := func(line string) {
		out.SendMessage(&irc.Message{Prefix: &irc.Prefix{Name: to, User: "service", Host: a.client.ServerName()}, Command: "NOTICE", Params: []string{a.client.Nick(), line}})
	}
	name, args, _ := strings.Cut(strings.TrimSpace(text), " ")
	c, ok := serviceCommands[strings.ToUpper(name)]
	if !ok {
		reply(fmt.Sprintf("Unknown command %q; HELP lists the commands.", name))
		return
	}
	c.run(s, a, out, reply, strings.TrimSpace(args))
}

func (s *Session) serviceHelp(_ *Attachment, _ output, reply func(string), args string) {
	if c, ok := serviceCommands[strings.ToUpper(args)]; ok {
		reply(c.usage + ": " + c.help)
		return
	}
	names := make([]string, 0, len(serviceCommands))
	for name := range serviceCommands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c := serviceCommands[name]
		reply(c.usage + ": " + c.help)
	}
}

func (s *Session) serviceVerify(a *Attachment, out output, reply func(string), key string) {
	if key == "" {
		reply("Usage: " + serviceCommands["VERIFY"].usage + ", or VERIFY EMOJI")
		return
	}
	if strings.EqualFold(key, "EMOJI") {
		s.serviceVerifyEmoji(a, out, reply)
		return
	}
	mach := s.olm.Load()
	if mach == nil {
		reply("Encryption is off for your account on this gateway, so there is no device to verify.")
		return
	}
	s.request(a, out, "PRIVMSG", func(ctx context.Context) func() {
		version, err := verifyDevice(ctx, mach, key)
		return func() {
			switch {
			case err != nil:
				reply("Not verified: " + err.Error())
			case version == "":
				reply("This gateway's device is now verified with your account's cross-signing keys. Your account has no key backup, so nothing was restored.")
			default:
				s.backupDue.Store(true)
				reply(fmt.Sprintf("This gateway's device is now verified with your account's cross-signing keys, and the keys in your key backup (version %s) are restored: older encrypted messages can be read (CHATHISTORY). New room keys go to the backup from now on.", version))
			}
		}
	})
}

// verifyDevice opens the account's secret storage with a recovery key or
// passphrase, signs the gateway's device with the cross-signing keys kept
// there, and restores the newest key backup. It returns the backup's
// version, "" when there is none. Request worker.
func verifyDevice(ctx context.Context, mach *crypto.OlmMachine, secret string) (string, error) {
	keyID, keyData, err := mach.SSSS.GetDefaultKeyData(ctx)
	if errors.Is(err, mautrix.MNotFound) || errors.Is(err, ssss.ErrNoDefaultKeyID) {
		return "", errors.New("your account has no secret storage (set up \"Secure Backup\" in Element first)")
	} else if err != nil {
		return "", fmt.Errorf("cannot read your secret storage: %w", err)
	}
	key, err := keyData.VerifyRecoveryKey(keyID, secret)
	if err != nil && !errors.Is(err, ssss.ErrUnverifiableKey) && keyData.Passphrase != nil {
		key, err = keyData.VerifyPassphrase(keyID, secret)
	}
	if err != nil && !errors.Is(err, ssss.ErrUnverifiableKey) {
		return "", errors.New("that is not your account's recovery key or passphrase")
	}
	if err := mach.FetchCrossSigningKeysFromSSSS(ctx, key); err != nil {
		return "", fmt.Errorf("cannot read your cross-signing keys from secret storage: %w", err)
	}
	if err := mach.SignOwnDevice(ctx, mach.OwnIdentity()); err != nil {
		return "", fmt.Errorf("cannot sign this device: %w", err)
	}
	if err := mach.SignOwnMasterKey(ctx); err != nil {
		return "", fmt.Errorf("cannot sign your master key with this device: %w", err)
	}
	raw, err := mach.SSSS.GetDecryptedAccountData(ctx, event.AccountDataMegolmBackupKey, key)
	if errors.Is(err, mautrix.MNotFound) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("verified, but cannot read the key backup's key: %w", err)
	}
	backupKey, err := backup.MegolmBackupKeyFromBytes(raw)
	if err != nil {
		return "", fmt.Errorf("verified, but the key backup's key is unreadable: %w", err)
	}
	version, err := mach.DownloadAndStoreLatestKeyBackup(ctx, backupKey)
	if err != nil {
		return "", fmt.Errorf("verified, but restoring the key backup failed: %w", err)
	}
	if version != "" {
		if err := trustBackup(ctx, mach, backupKey, version); err != nil {
			return "", fmt.Errorf("verified and restored, but new room keys cannot be backed up: %w", err)
		}
	}
	return string(version), nil
}
