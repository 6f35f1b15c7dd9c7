// An IRC client made with npm's irc-framework, over WebSocket, driven by
// mxircd's tests (internal/testenv/ircframework). It logs in with SASL,
// then reports on stdout, one line each:
//   REGISTERED <nick>             once welcomed
//   MESSAGE <target> <nick> <text> for each PRIVMSG it gets
//   CLOSED                        when the connection ends
// and takes commands on stdin: "SAY <target> <text>", "QUIT".
'use strict';
const readline = require('node:readline');
const IRC = require('irc-framework');
const WebSocketTransport = require('irc-framework/src/transports/websocket');

const opts = JSON.parse(process.argv[2]);
if (typeof WebSocket === 'undefined') {
	console.error('this Node.js has no WebSocket (Node 22, or 20 with --experimental-websocket)');
	process.exit(2);
}
const out = (line) => process.stdout.write(line + '\n');

const client = new IRC.Client();
client.on('registered', (e) => out('REGISTERED ' + e.nick));
client.on('privmsg', (e) => out('MESSAGE ' + e.target + ' ' + e.nick + ' ' + e.message));
client.on('close', () => { out('CLOSED'); process.exit(0); });
client.on('socket close', () => { out('CLOSED'); process.exit(0); });
client.on('irc error', (e) => out('IRCERROR ' + JSON.stringify(e)));

client.connect({
	host: opts.host,
	port: opts.port,
	tls: !!opts.tls,
	path: '/',
	transport: WebSocketTransport,
	websocket_protocol: opts.protocol || 'text.ircv3.net',
	nick: opts.nick,
	username: opts.account,
	gecos: 'irc-framework test',
	account: { account: opts.account, password: opts.password },
	auto_reconnect: false,
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
	const [cmd, target, ...rest] = line.split(' ');
	if (cmd === 'SAY') {
		client.say(target, rest.join(' '));
	} else if (cmd === 'QUIT') {
		client.quit('done');
	}
});
