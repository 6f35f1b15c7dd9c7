// Command rig runs mxircd for irctest (https://github.com/progval/irctest):
// a fresh Dendrite and a fresh mxircd store per run, with mxircd configured
// as irctest expects a server to behave (see docs/irctest.md). It is what
// conformance/irctest/mxircd_controller.py starts for each test case.
//
//	rig serve -dir DIR -listen HOST:PORT -mxircd BIN [-tls-cert F -tls-key F] [-websocket HOST:PORT]
//	rig register -dir DIR USERNAME PASSWORD
//	rig prepare
//
// prepare builds Dendrite (cached in ~/.cache/mxircd-testenv, minutes when
// Go's build cache is cold) and starts and stops it once, so that the first
// test case does not spend irctest's 60 seconds of waiting on a build.
//
// serve starts Dendrite (internal/testenv, built once and cached) with its
// data under DIR/dendrite, writes DIR/mxircd.toml and runs BIN (a build of
// ./cmd/mxircd) with it, writes DIR/rig.json when both serve, and stops
// both on SIGTERM or SIGINT, or when mxircd exits.
//
// register creates the Matrix account USERNAME on the Dendrite that serve
// started in DIR, with PASSWORD, for irctest's SASL tests
// (registerUser). Dendrite refuses passwords shorter than 8 bytes, and
// irctest uses short ones ("sesame"): such an account is registered with a
// random long password, and then the bcrypt hash of PASSWORD is written
// over the stored one in Dendrite's account database, which is what
// Dendrite would have stored had it taken the password. Login only
// compares against the hash, so the account then logs in with PASSWORD.
//
// Build with the project's tag: go build -tags goolm ./conformance/irctest/rig
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
	_ "modernc.org/sqlite"

	"github.com/mxircd/mxircd/internal/testenv"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "register":
		err = register(os.Args[2:])
	case "prepare":
		err = prepare()
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rig:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: rig serve -dir DIR -listen HOST:PORT -mxircd BIN [-tls-cert FILE -tls-key FILE] [-websocket HOST:PORT]\n       rig register -dir DIR USERNAME PASSWORD\n       rig prepare")
	os.Exit(2)
}

func prepare() error {
	dir, err := os.MkdirTemp("", "mxircd-irctest-prepare-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "rig: "+format+"\n", a...) }
	hs, err := testenv.StartHomeserverIn(dir, testenv.Options{Quiet: true}, logf)
	if err != nil {
		return err
	}
	hs.Stop()
	return nil
}

// state is DIR/rig.json, what register needs to know about serve's Dendrite.
type state struct {
	Homeserver string `json:"homeserver"`
	ServerName string `json:"server_name"`
	DendriteDB string `json:"dendrite_userapi_db"`
}

const stateFile = "rig.json"

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := fs.String("dir", "", "a directory of this run's own (Dendrite's data, mxircd's store and config, logs)")
	listen := fs.String("listen", "", "the IRC listener irctest connects to")
	bin := fs.String("mxircd", "", "the mxircd binary (go build -tags goolm ./cmd/mxircd)")
	tlsCert := fs.String("tls-cert", "", "with -tls-key: the IRC listener speaks TLS with this certificate (PEM)")
	tlsKey := fs.String("tls-key", "", "the key of -tls-cert (PEM)")
	websocket := fs.String("websocket", "", "an IRC-over-WebSocket listener, when irctest asks for one")
	logLevel := fs.String("log-level", "info", "mxircd's log level")
	fs.Parse(args)
	if *dir == "" || *listen == "" || *bin == "" || (*tlsCert == "") != (*tlsKey == "") {
		usage()
	}
	// irctest does not always stop the server it started (a test that
	// skips in setUp after starting it is never torn down): end with the
	// process that started the rig, whatever happens to it.
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_PDEATHSIG): %v", errno)
	}
	if os.Getppid() == 1 {
		return errors.New("the process that started the rig is gone")
	}
	absDir, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	hsDir := filepath.Join(absDir, "dendrite")
	if err := os.MkdirAll(hsDir, 0o755); err != nil {
		return err
	}

	start := time.Now()
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "rig: "+format+"\n", a...) }
	hs, err := testenv.StartHomeserverIn(hsDir, testenv.Options{Quiet: true}, logf)
	if err != nil {
		return err
	}
	defer hs.Stop()
	logf("Dendrite at %s ready in %v", hs.URL, time.Since(start).Round(time.Millisecond))

	cfgPath := filepath.Join(absDir, "mxircd.toml")
	cfg := mxircdConfig(hs, absDir, *listen, *tlsCert, *tlsKey, *websocket, *logLevel)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}

	logFile, err := os.Create(filepath.Join(absDir, "mxircd.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(*bin, "-config", cfgPath)
	cmd.Dir = absDir
	cmd.Stdout = io.MultiWriter(logFile, os.Stderr)
	cmd.Stderr = cmd.Stdout
	// Like Dendrite (testenv), mxircd dies with the rig, however the rig
	// ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	st := state{
		Homeserver: hs.URL,
		ServerName: hs.ServerName,
		DendriteDB: filepath.Join(hs.Dir(), "dendrite_userapi.db"),
	}
	b, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(absDir, stateFile), b, 0o644); err != nil {
		cmd.Process.Kill()
		return err
	}
	logf("mxircd (pid %d) starting on %s", cmd.Process.Pid, *listen)

	select {
	case err := <-exited:
		return fmt.Errorf("mxircd exited: %v", err)
	case sig := <-signals:
		logf("%v: stopping mxircd and Dendrite", sig)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	return nil
}

// mxircdConfig is the configuration irctest's server tests are run with:
// every connection without a login gets an account of its own named after
// its nick and keeps the nick it asked for, as on an ordinary IRC server;
// channels are short aliases (#foo rather than #foo:localhost); anyone may
// open a DM with anyone, and create as many rooms as the tests need.
func mxircdConfig(hs *testenv.Homeserver, dir, listen, tlsCert, tlsKey, websocket, logLevel string) string {
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "[irc]\n")
	if tlsCert == "" {
		fmt.Fprintf(&b, "listen = [%s]\n", q(listen))
	} else {
		fmt.Fprintf(&b, "listen = []\n")
	}
	fmt.Fprintf(&b, "allow_insecure_plaintext = true\n")
	fmt.Fprintf(&b, "server_name = \"My.Little.Server\"\n")
	fmt.Fprintf(&b, "keep_client_nick = true\n")
	// irctest opens many connections from 127.0.0.1, and some tests
	// open dozens.
	fmt.Fprintf(&b, "max_connections_per_address = 0\n")
	if tlsCert != "" {
		fmt.Fprintf(&b, "\n[irc.tls]\nlisten = [%s]\ncert = %s\nkey = %s\n", q(listen), q(tlsCert), q(tlsKey))
	}
	if websocket != "" {
		fmt.Fprintf(&b, "\n[irc.websocket]\nlisten = [%s]\norigins = [\"*\"]\n", q(websocket))
	}
	fmt.Fprintf(&b, "\n[matrix]\nhomeserver = %s\nserver_name = %s\n", q(hs.URL), q(hs.ServerName))
	fmt.Fprintf(&b, "short_aliases = true\naccept_dm_invites = \"all\"\n")
	fmt.Fprintf(&b, "room_create_burst = 1000\nroom_create_interval = \"1s\"\n")
	fmt.Fprintf(&b, "sync_timeout = \"5s\"\n")
	// IRC's LIST shows every new channel.
	fmt.Fprintf(&b, "list_new_channels = true\n")
	fmt.Fprintf(&b, "\n[autoregister]\nenabled = true\nshared_secret = %s\n", q(testenv.RegistrationSharedSecret))
	// An IRC server, not a bouncer: a client that quits is gone (MONITOR
	// says offline), as irctest expects.
	fmt.Fprintf(&b, "\n[bouncer]\nalways_on = false\n")
	fmt.Fprintf(&b, "\n[store]\ndriver = \"sqlite\"\npath = %s\n", q(filepath.Join(dir, "mxircd.db")))
	fmt.Fprintf(&b, "\n[encryption]\npickle_key_file = %s\n", q(filepath.Join(dir, "pickle.key")))
	fmt.Fprintf(&b, "\n[log]\nlevel = %s\n", q(logLevel))
	return b.String()
}

func register(args []string) error {
	fs := flag.NewFlagSet("register", flag.ExitOnError)
	dir := fs.String("dir", "", "the directory of a running rig serve")
	fs.Parse(args)
	if *dir == "" || fs.NArg() != 2 {
		usage()
	}
	username, password := fs.Arg(0), fs.Arg(1)
	b, err := os.ReadFile(filepath.Join(*dir, stateFile))
	if err != nil {
		return fmt.Errorf("no running rig in %s: %w", *dir, err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	localpart := strings.ToLower(username)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Dendrite registers passwords of 8 to 512 bytes, and bcrypt (which
	// it hashes them with) takes at most 72: other passwords are set by
	// writing their hash.
	registered := password
	if len(password) < 8 || len(password) > 72 {
		registered = randomHex(16)
	}
	err = registerSharedSecret(ctx, st.Homeserver, localpart, registered)
	if errors.Is(err, errUserInUse) {
		// A connection without a login already has this name: its
		// account was registered for it, named after its nick (irctest's
		// testChathistoryDMs connects "baz" and then registers "baz", as
		// one would register one's current nick with NickServ). Giving
		// that account the password is what registering it means here.
		return setPasswordHash(ctx, st, localpart, password)
	}
	if err != nil {
		return err
	}
	if registered == password {
		return nil
	}
	return setPasswordHash(ctx, st, localpart, password)
}

// registerSharedSecret registers localpart with Dendrite's shared-secret
// registration (/_synapse/admin/v1/register, as Synapse's).
func registerSharedSecret(ctx context.Context, hs, localpart, password string) error {
	const path = "/_synapse/admin/v1/register"
	var nonce struct {
		Nonce string `json:"nonce"`
	}
	if err := doJSON(ctx, http.MethodGet, hs+path, nil, &nonce); err != nil {
		return fmt.Errorf("registration nonce: %w", err)
	}
	mac := hmac.New(sha1.New, []byte(testenv.RegistrationSharedSecret))
	mac.Write([]byte(nonce.Nonce + "\x00" + localpart + "\x00" + password + "\x00notadmin"))
	body := map[string]any{
		"nonce":    nonce.Nonce,
		"username": localpart,
		"password": password,
		"admin":    false,
		"mac":      hex.EncodeToString(mac.Sum(nil)),
	}
	if err := doJSON(ctx, http.MethodPost, hs+path, body, nil); err != nil {
		if strings.Contains(err.Error(), `"M_USER_IN_USE"`) {
			return errUserInUse
		}
		return fmt.Errorf("registering %q: %w", localpart, err)
	}
	return nil
}

var errUserInUse = errors.New("the user ID is taken")

// setPasswordHash stores the bcrypt hash of password as the account's, in
// Dendrite's account table, as Dendrite's own password change would (at the
// cost the -ci configuration uses; bcrypt hashes carry their cost, so any
// cost verifies).
func setPasswordHash(ctx context.Context, st state, localpart, password string) error {
	// bcrypt hashes the first 72 bytes of a password and ignores the rest,
	// both here and when Dendrite compares a login's password with the
	// hash; GenerateFromPassword only refuses to pretend otherwise.
	p := []byte(password)
	if len(p) > 72 {
		p = p[:72]
	}
	hash, err := bcrypt.GenerateFromPassword(p, bcrypt.MinCost)
	if err != nil {
		return err
	}
	// Dendrite has the file open; SQLite's locking serialises the write
	// with its own, and busy_timeout waits out a lock it holds.
	db, err := sql.Open("sqlite", "file:"+st.DendriteDB+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := db.ExecContext(ctx,
		"UPDATE userapi_accounts SET password_hash = $1 WHERE localpart = $2 AND server_name = $3",
		string(hash), localpart, st.ServerName)
	if err != nil {
		return fmt.Errorf("writing the password hash of %q: %w", localpart, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("writing the password hash of %q: %d rows changed (%v)", localpart, n, err)
	}
	return nil
}

func doJSON(ctx context.Context, method, url string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
