// One Matrix client built on Element's matrix-js-sdk with its Rust crypto,
// driven by mxircd's tests (package e2eepeer) over a line-based JSON protocol:
//
//   stdin:  {"id":N,"op":"...",...}
//   stdout: {"id":N,"ok":true,...} or {"id":N,"error":"..."}
//           {"event":"ready","user_id":...,"device_id":...} once, after the first sync
//           {"event":"message",...} for every m.room.message it sees, again
//           when a late key turns a decryption failure into plaintext
//
// Only protocol lines go to stdout; everything the SDK logs goes to stderr.
//
// Configuration comes from the environment so that the password does not
// show in the process list: PEER_HOMESERVER, PEER_USER, PEER_PASSWORD, and
// PEER_LOG_LEVEL (error, warn, info or debug; warn by default).

// Static imports run before this module's body, and the SDK's loggers would
// then reach stdout; hence only node built-ins here and dynamic imports below.
import { createInterface } from "node:readline";
import { randomUUID } from "node:crypto";

const levels = { error: 0, warn: 1, info: 2, debug: 3 };
const logLevel = levels[process.env.PEER_LOG_LEVEL ?? "warn"] ?? levels.warn;
const toStderr = (level) => (...args) => {
	if (levels[level] <= logLevel) process.stderr.write(format(level, args) + "\n");
};
function format(level, args) {
	return `[${level}] ` + args.map((a) => (typeof a === "string" ? a : inspect(a))).join(" ");
}
function inspect(v) {
	if (v instanceof Error) return v.stack ?? String(v);
	try {
		return JSON.stringify(v);
	} catch {
		return String(v);
	}
}
console.error = toStderr("error");
console.warn = toStderr("warn");
console.info = toStderr("info");
console.log = toStderr("info");
console.debug = toStderr("debug");
console.trace = toStderr("debug");

// matrix-js-sdk 43 uses Promise.withResolvers, which node 20 lacks.
if (typeof Promise.withResolvers !== "function") {
	Promise.withResolvers = function () {
		let resolve, reject;
		const promise = new this((res, rej) => {
			resolve = res;
			reject = rej;
		});
		return { promise, resolve, reject };
	};
}

function emit(obj) {
	process.stdout.write(JSON.stringify(obj) + "\n");
}

function fatal(msg) {
	process.stderr.write(`[fatal] ${msg}\n`);
	process.exit(1);
}

const homeserver = process.env.PEER_HOMESERVER;
const user = process.env.PEER_USER;
const password = process.env.PEER_PASSWORD;
if (!homeserver || !user || !password) {
	fatal("PEER_HOMESERVER, PEER_USER and PEER_PASSWORD must be set");
}

// The Rust crypto keeps its store in IndexedDB, which node has not.
await import("fake-indexeddb/auto");
const sdk = await import("matrix-js-sdk");
const { ClientEvent, RoomEvent, MatrixEventEvent, EventType, MsgType, Preset, Visibility } = sdk;
// The SDK waits a random 0–10 s before uploading new room keys to the key
// backup, so that many clients do not upload at once; a test peer has no
// crowd to spread out and would only make tests slow and uneven.
const { RustBackupManager } = await import("matrix-js-sdk/lib/rust-crypto/backup.js");
RustBackupManager.maxBackupLoopStartDelayMillis = 0;

// Secret storage asks for its key through callbacks; the peer keeps the key
// it created in memory, as Element does for the length of a session.
const secretStorageKeys = new Map();
const cryptoCallbacks = {
	getSecretStorageKey: async ({ keys }) => {
		for (const keyId of Object.keys(keys)) {
			const key = secretStorageKeys.get(keyId);
			if (key) return [keyId, key];
		}
		return null;
	},
	cacheSecretStorageKey: (keyId, _keyInfo, key) => {
		secretStorageKeys.set(keyId, key);
	},
};

const login = await sdk.createClient({ baseUrl: homeserver }).loginRequest({
	type: "m.login.password",
	identifier: { type: "m.id.user", user },
	password,
	initial_device_display_name: "mxircd e2eepeer",
});
const client = sdk.createClient({
	baseUrl: homeserver,
	userId: login.user_id,
	deviceId: login.device_id,
	accessToken: login.access_token,
	cryptoCallbacks,
});
// Every peer is a fresh device, so each gets a database of its own.
await client.initRustCrypto({ cryptoDatabasePrefix: `e2eepeer-${randomUUID()}` });
const crypto = client.getCrypto();

// Interactive verification (Element's "verify with another device"): the
// one request under way, the SAS it shows, and the requests other devices
// sent that nobody has taken yet.
const { CryptoEvent, VerificationPhase, VerificationRequestEvent, VerifierEvent, decodeRecoveryKey } = await import(
	"matrix-js-sdk/lib/crypto-api/index.js"
);
const phaseNames = Object.fromEntries(Object.entries(VerificationPhase).filter(([, v]) => typeof v === "number").map(([k, v]) => [v, k]));
let verification = null; // { request, sas, outcome }
const incomingRequests = [];
function wakeWaiters() {
	for (const w of syncWaiters) w();
}
client.on(CryptoEvent.VerificationRequestReceived, (request) => {
	incomingRequests.push(request);
	wakeWaiters();
});
function track(request) {
	const v = { request, sas: null, outcome: "" };
	verification = v;
	let hooked = false;
	const onChange = () => {
		const verifier = request.verifier;
		if (verifier && !hooked) {
			hooked = true;
			verifier.on(VerifierEvent.ShowSas, (sas) => {
				v.sas = sas;
				wakeWaiters();
			});
			verifier.verify().then(
				() => (v.outcome = "done"),
				(err) => (v.outcome = `failed: ${err?.message ?? err}`),
			);
		}
		wakeWaiters();
	};
	request.on(VerificationRequestEvent.Change, onChange);
	onChange();
	return v;
}
function verificationState() {
	const r = verification?.request;
	if (!r) return { phase: "" };
	return {
		transaction_id: r.transactionId ?? "",
		phase: phaseNames[r.phase] ?? String(r.phase),
		other_device: r.otherDeviceId ?? "",
		cancellation_code: r.cancellationCode ?? "",
		cancelled_by: r.cancellingUserId ?? "",
		emoji_shown: !!verification.sas,
		outcome: verification.outcome,
	};
}

// messages[roomId] is every m.room.message seen in the room, by event ID,
// in the order first seen; a later decryption replaces the entry.
const messages = new Map();

function messageOf(ev) {
	const content = ev.getContent();
	return {
		room: ev.getRoomId(),
		sender: ev.getSender(),
		event_id: ev.getId(),
		body: ev.isDecryptionFailure() ? "" : (content.body ?? ""),
		msgtype: ev.isDecryptionFailure() ? "" : (content.msgtype ?? ""),
		encrypted: ev.isEncrypted(),
		decryption_error: ev.isDecryptionFailure() ? String(ev.decryptionFailureReason ?? "unable to decrypt") : "",
	};
}

function record(ev) {
	if (ev.getType() !== EventType.RoomMessage && !ev.isDecryptionFailure()) return;
	const msg = messageOf(ev);
	if (!msg.event_id || msg.event_id.startsWith("~")) return; // local echo
	let room = messages.get(msg.room);
	if (!room) messages.set(msg.room, (room = new Map()));
	room.set(msg.event_id, msg);
	emit({ event: "message", ...msg });
}

client.on(RoomEvent.Timeline, (ev) => {
	if (!ev.isEncrypted()) {
		record(ev);
		return;
	}
	// Decryption may fail first and succeed when the key arrives; each
	// outcome is reported.
	ev.on(MatrixEventEvent.Decrypted, () => record(ev));
	if (!ev.isBeingDecrypted() && !ev.getClearContent()) {
		client.decryptEventIfNeeded(ev).catch((err) => console.warn("decrypting", ev.getId(), err));
	} else if (ev.getClearContent()) {
		record(ev);
	}
});

// Listeners for room changes, woken on every sync, so that ops can wait until
// the SDK knows what the server said (e.g. that a room is encrypted).
const syncWaiters = new Set();
client.on(ClientEvent.Sync, () => {
	for (const w of syncWaiters) w();
});
client.on(RoomEvent.MyMembership, () => {
	for (const w of syncWaiters) w();
});

async function waitFor(what, check, timeoutMs = 30000) {
	if (await check()) return;
	await new Promise((resolve, reject) => {
		let busy = false;
		const timer = setTimeout(() => {
			syncWaiters.delete(wake);
			reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
		}, timeoutMs);
		const wake = async () => {
			if (busy) return;
			busy = true;
			try {
				if (await check()) {
					clearTimeout(timer);
					syncWaiters.delete(wake);
					resolve();
				}
			} catch (err) {
				clearTimeout(timer);
				syncWaiters.delete(wake);
				reject(err);
			} finally {
				busy = false;
			}
		};
		syncWaiters.add(wake);
	});
}

// A room is usable once the SDK holds it as joined and, if the server has it
// encrypted, the crypto knows that too: sending earlier would go out in the
// clear.
async function waitJoined(roomId, wantEncrypted) {
	await waitFor(`room ${roomId} to be joined`, async () => {
		const room = client.getRoom(roomId);
		if (!room || room.getMyMembership() !== "join") return false;
		const serverSays = wantEncrypted || room.hasEncryptionStateEvent();
		return !serverSays || (await crypto.isEncryptionEnabledInRoom(roomId));
	});
}

function needString(req, key) {
	const v = req[key];
	if (typeof v !== "string" || v === "") throw new Error(`"${key}" must be a non-empty string`);
	return v;
}

const msgtypes = new Set([MsgType.Text, MsgType.Notice, MsgType.Emote]);

const ops = {
	async whoami() {
		return { user_id: client.getUserId(), device_id: client.getDeviceId() };
	},

	async create_room(req) {
		const invite = req.invite ?? [];
		const opts = {
			name: req.name || undefined,
			invite,
			visibility: Visibility.Private,
			preset: req.is_direct ? Preset.TrustedPrivateChat : Preset.PrivateChat,
			is_direct: !!req.is_direct,
			initial_state: [],
		};
		if (req.encrypted) {
			opts.initial_state.push({
				type: EventType.RoomEncryption,
				state_key: "",
				content: { algorithm: "m.megolm.v1.aes-sha2" },
			});
		}
		const { room_id } = await client.createRoom(opts);
		if (req.is_direct) {
			// Element records a DM in m.direct under each other member.
			const direct = client.getAccountData(EventType.Direct)?.getContent() ?? {};
			for (const u of invite) direct[u] = [...new Set([...(direct[u] ?? []), room_id])];
			await client.setAccountData(EventType.Direct, direct);
		}
		await waitJoined(room_id, !!req.encrypted);
		return { room_id };
	},

	async join(req) {
		const room = await client.joinRoom(needString(req, "room"));
		await waitJoined(room.roomId, false);
		return { room_id: room.roomId };
	},

	async leave(req) {
		await client.leave(needString(req, "room"));
		return {};
	},

	async send(req) {
		const roomId = needString(req, "room");
		const msgtype = req.msgtype || MsgType.Text;
		if (!msgtypes.has(msgtype)) throw new Error(`msgtype ${msgtype} is not one of ${[...msgtypes].join(", ")}`);
		const room = client.getRoom(roomId);
		if (!room || room.getMyMembership() !== "join") throw new Error(`not joined to ${roomId} (join or create it first)`);
		const encrypted = await crypto.isEncryptionEnabledInRoom(roomId);
		const { event_id } = await client.sendMessage(roomId, { msgtype, body: String(req.body ?? "") });
		return { event_id, encrypted };
	},

	async messages(req) {
		return { messages: [...(messages.get(needString(req, "room"))?.values() ?? [])] };
	},

	async encrypted(req) {
		return { encrypted: await crypto.isEncryptionEnabledInRoom(needString(req, "room")) };
	},

	// Marks every device of a user as verified on this device, so that a
	// test does not depend on how the SDK treats unverified devices.
	// Send room keys only to verified devices (Element's "never send
	// encrypted messages to unverified sessions").
	async only_verified(req) {
		crypto.globalBlacklistUnverifiedDevices = req.on !== false;
		return {};
	},

	async trust(req) {
		const userId = needString(req, "user");
		const devices = (await crypto.getUserDeviceInfo([userId], true)).get(userId) ?? new Map();
		const ids = [];
		for (const deviceId of devices.keys()) {
			if (userId === client.getUserId() && deviceId === client.getDeviceId()) continue;
			await crypto.setDeviceVerified(userId, deviceId, true);
			ids.push(deviceId);
		}
		return { devices: ids };
	},

	async device_status(req) {
		const userId = needString(req, "user");
		const deviceId = needString(req, "device");
		await crypto.getUserDeviceInfo([userId], true);
		const s = await crypto.getDeviceVerificationStatus(userId, deviceId);
		if (!s) return { known: false };
		return {
			known: true,
			verified: s.isVerified(),
			cross_signing_verified: s.crossSigningVerified,
			locally_verified: s.localVerified,
			signed_by_owner: s.signedByOwner,
		};
	},

	// Sets up what Element's "set up secure backup" does: cross-signing keys,
	// secret storage under a new recovery key holding them, and a key backup.
	async bootstrap_cross_signing() {
		const recoveryKey = await crypto.createRecoveryKeyFromPassphrase();
		await crypto.bootstrapCrossSigning({
			setupNewCrossSigning: true,
			authUploadDeviceSigningKeys: async (makeRequest) => {
				await makeRequest({
					type: "m.login.password",
					identifier: { type: "m.id.user", user: client.getUserId() },
					password,
				});
			},
		});
		await crypto.bootstrapSecretStorage({
			createSecretStorageKey: async () => recoveryKey,
			setupNewSecretStorage: true,
			setupNewKeyBackup: true,
		});
		return {
			recovery_key: recoveryKey.encodedPrivateKey,
			backup_version: (await crypto.getActiveSessionBackupVersion()) ?? "",
			cross_signing_ready: await crypto.isCrossSigningReady(),
			secret_storage_ready: await crypto.isSecretStorageReady(),
		};
	},

	// What Element does on a new login with "Verify with Security Key":
	// open secret storage with the recovery key, take the key backup's key
	// from it, and restore the backup. Events that could not be decrypted
	// are decrypted again as their keys come in (and reported again).
	async restore_backup(req) {
		const keyId = await client.secretStorage.getDefaultKeyId();
		if (!keyId) throw new Error("the account has no secret storage");
		secretStorageKeys.set(keyId, decodeRecoveryKey(needString(req, "recovery_key")));
		await crypto.loadSessionBackupPrivateKeyFromSecretStorage();
		const result = await crypto.restoreKeyBackup();
		return { total: result.total, imported: result.imported };
	},

	// crypto.olmMachine is not public API, but the key counts are the only
	// way to know that the backup has caught up.
	async key_backup() {
		const counts = await crypto.olmMachine.roomKeyCounts();
		return {
			version: (await crypto.getActiveSessionBackupVersion()) ?? "",
			total: counts.total,
			backed_up: counts.backedUp,
		};
	},

	// Asks the account's other devices to verify this one, as Element's
	// "verify with another device" does.
	async verify_request() {
		track(await crypto.requestOwnUserVerification());
		return verificationState();
	},

	// Takes the oldest request another device of the account sent (waiting
	// for one), and accepts it.
	async verify_accept() {
		await waitFor("a verification request", () => incomingRequests.length > 0);
		const request = incomingRequests.shift();
		track(request);
		await request.accept();
		return verificationState();
	},

	// The emoji the SDK shows once the SAS exchange got that far (waiting for
	// it), as [{emoji, name}]. The other side starts the SAS.
	async verify_emoji() {
		await waitFor("the emoji to compare", () => !!verification?.sas || ["Cancelled", "Done"].includes(verificationState().phase));
		if (!verification.sas) throw new Error(`no emoji: the verification is ${JSON.stringify(verificationState())}`);
		const sas = verification.sas.sas;
		return { emoji: (sas.emoji ?? []).map(([emoji, name]) => ({ emoji, name })), decimals: sas.decimal ?? [] };
	},

	async verify_confirm() {
		if (!verification?.sas) throw new Error("no emoji shown to confirm");
		await verification.sas.confirm();
		return verificationState();
	},

	// Cancels the verification: as "they don't match" once emoji are shown,
	// else as the user's cancel.
	async verify_cancel() {
		if (!verification) throw new Error("no verification under way");
		if (verification.sas) verification.sas.mismatch();
		else await verification.request.cancel();
		return verificationState();
	},

	async verify_state() {
		return verificationState();
	},

	async stop() {
		client.stopClient();
		setImmediate(() => process.exit(0));
		return {};
	},
};

async function handle(line) {
	let req;
	try {
		req = JSON.parse(line);
	} catch (err) {
		emit({ id: null, error: `not JSON: ${err.message}` });
		return;
	}
	const op = ops[req.op];
	if (!op) {
		emit({ id: req.id, error: `unknown op ${JSON.stringify(req.op)}; known: ${Object.keys(ops).join(", ")}` });
		return;
	}
	try {
		emit({ id: req.id, ok: true, ...(await op(req)) });
	} catch (err) {
		console.warn(`op ${req.op} failed: ${err?.message ?? err}`);
		emit({ id: req.id, error: err?.message ?? String(err) });
	}
}

await client.startClient({ initialSyncLimit: 20 });
await waitFor("the first sync", () => client.isInitialSyncComplete(), 60000);
// Ready means others can encrypt for this device: its keys are on the
// homeserver, not only queued for upload after the first sync. A test that
// sends to the peer at once otherwise races the upload, and the sender
// finds no device to share the room key with.
async function keysPublished() {
	const me = client.getUserId();
	const res = await client.http.authedRequest(sdk.Method.Post, "/keys/query", undefined, { device_keys: { [me]: [] } });
	return !!res?.device_keys?.[me]?.[client.getDeviceId()];
}
for (let tries = 0; !(await keysPublished()); tries++) {
	if (tries >= 600) fatal("the device's keys were not on the homeserver 60 s after the first sync");
	await new Promise((resolve) => setTimeout(resolve, 100));
}
emit({ event: "ready", user_id: client.getUserId(), device_id: client.getDeviceId() });

// Ops run concurrently, so that a slow one (e.g. a join waiting for sync)
// does not hold up the rest; the test matches replies by id.
const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
	if (line.trim() !== "") handle(line);
});
// The test closing stdin (or dying) ends the peer.
rl.on("close", () => {
	client.stopClient();
	process.exit(0);
});
