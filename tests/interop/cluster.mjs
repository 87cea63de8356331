// The cluster test's load (scripts/cluster.sh test): mixed traffic through HAProxy
// while the script SIGKILLs a node and restarts it, then the checks. Not a *.test.mjs:
// the interop run does not pick it up. Prints a JSON summary; exits 1 on a failed check.
//
// Env: GATEHOUSE_URL (HAProxy), GATEHOUSE_OWNID_SECRET, CLUSTER_NODES (the URLs of
// two nodes that are not killed, for SIWE nonces taken from one node and verified
// through HAProxy), CLUSTER_SECONDS (load time),
// CLUSTER_WORKERS (concurrent clients), CLUSTER_HAPROXY_LOG (HAProxy's request log),
// CLUSTER_KILLED (JSON: the killed server's name, when the signal was sent and when
// the process was gone, Unix ms).
//
// Every request carries an X-Request-Id of its own, which HAProxy logs with the server
// that handled it: each failed request is traced to the killed node and shown to have
// been in flight there when it died.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Wallet } from 'ethers';
import { SiweMessage } from 'siwe';

const base = process.env.GATEHOUSE_URL;
const ownidSecret = process.env.GATEHOUSE_OWNID_SECRET;
const seconds = Number(process.env.CLUSTER_SECONDS || 8);
const workers = Number(process.env.CLUSTER_WORKERS || 8);
const root = `${base}/api/v1/selfkey`;
const wallet = { origin: 'IDW', 'user-agent': 'SelfKeyIDW/1.4.0' };
const emailSchema = 'http://platform.selfkey.org/schema/attribute/email.json';

let seq = 0;
const unique = () => `c${process.pid}-${Date.now()}-${seq++}@cluster.example`;

/** A request; `failed` when no answer came, or a 5xx (HAProxy's 502/503 included). */
let requestSeq = 0;
const balanced = []; // the ids of the requests sent through HAProxy
async function call(path, { method = 'GET', headers = {}, token, json, raw } = {}) {
  const id = `cluster-${process.pid}-${requestSeq++}`;
  const url = path.startsWith('http') ? path : `${base}${path}`;
  if (url.startsWith(base)) balanced.push(id);
  const h = { ...headers, 'x-request-id': id };
  if (token) h.authorization = `Bearer ${token}`;
  let body = raw;
  if (json !== undefined) {
    h['content-type'] = 'application/json';
    body = JSON.stringify(json);
  }
  const sent = Date.now();
  try {
    const res = await fetch(url, { method, headers: h, body });
    const text = await res.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch { parsed = text; }
    return { id, status: res.status, body: parsed, failed: res.status >= 500 };
  } catch (e) {
    return { id, status: 0, body: `${e}: ${e.cause ?? ''}`, failed: true, sent, gaveUp: Date.now() };
  }
}

const stats = { requests: 0, failed: 0, byFlow: {} };
const failures = [];
/** Counts an answer; a failed one is recorded, a wrong one throws. */
function seen(flow, res) {
  stats.requests += 1;
  stats.byFlow[flow] = (stats.byFlow[flow] || 0) + 1;
  if (res.failed) {
    stats.failed += 1;
    failures.push({ id: res.id, flow, status: res.status, body: res.body, sent: res.sent, gaveUp: res.gaveUp });
  }
  return !res.failed;
}

const registered = []; // acknowledged: { email, password }
const spentRefresh = []; // refresh tokens rotated away (grace 0: each accepted once)
const usedLoginTokens = []; // SelfKey login tokens redeemed once
const ownidReplays = []; // exact OwnID requests accepted once

async function register() {
  const email = unique();
  const res = await call('/auth/register', { method: 'POST', json: { email, password: 'password123' } });
  if (!seen('register', res)) return;
  assert.equal(res.status, 200, JSON.stringify(res.body));
  registered.push({ email, password: 'password123' });
  // Valid on whichever node answers next; then rotated once.
  const me = await call('/auth/me', { token: res.body.token });
  if (seen('me', me)) assert.equal(me.status, 200, JSON.stringify(me.body));
  const next = await call('/auth/refresh', { method: 'POST', json: { refresh_token: res.body.refresh_token } });
  if (!seen('refresh', next)) return;
  assert.equal(next.status, 200, JSON.stringify(next.body));
  spentRefresh.push(res.body.refresh_token);
}

async function login() {
  if (registered.length === 0) return register();
  const { email, password } = registered[Math.floor(Math.random() * registered.length)];
  const res = await call('/auth/login', { method: 'POST', json: { email, password } });
  if (seen('login', res)) assert.equal(res.status, 200, JSON.stringify(res.body));
}

function claimsOf(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));
}

async function walletToken(signer) {
  const id = `0x${signer.signingKey.publicKey.slice(4)}`;
  const challenge = await call(`${root}/auth/challenge/${id}`, { headers: wallet });
  if (!seen('selfkey', challenge)) return null;
  assert.equal(challenge.status, 200, JSON.stringify(challenge.body));
  const signature = await signer.signMessage(claimsOf(challenge.body.jwt).challenge);
  const answered = await call(`${root}/auth/challenge`, {
    method: 'POST', headers: wallet, token: challenge.body.jwt, json: { signature },
  });
  if (!seen('selfkey', answered)) return null;
  assert.equal(answered.status, 201, JSON.stringify(answered.body));
  // The challenge was single-use, on every node.
  const replay = await call(`${root}/auth/challenge`, {
    method: 'POST', headers: wallet, token: challenge.body.jwt, json: { signature },
  });
  if (seen('selfkey', replay)) assert.equal(replay.status, 401, JSON.stringify(replay.body));
  return answered.body.jwt;
}

async function selfkey() {
  const signer = Wallet.createRandom();
  let token = await walletToken(signer);
  if (!token) return;
  const attributes = [{ id: emailSchema, schemaId: emailSchema, data: { value: unique() }, documents: [] }];
  const signup = await call(`${root}/users`, { method: 'POST', headers: wallet, token, json: { attributes, meta: {} } });
  if (!seen('selfkey', signup)) return;
  assert.equal(signup.status, 201, JSON.stringify(signup.body));
  token = await walletToken(signer);
  if (!token) return;
  const login = await call(`${root}/users/token`, { headers: wallet, token });
  if (!seen('selfkey', login)) return;
  assert.equal(login.status, 200, JSON.stringify(login.body));
  const session = await call(`${root}/login`, { method: 'POST', json: { token: login.body.token } });
  if (!seen('selfkey', session)) return;
  assert.equal(session.status, 201, JSON.stringify(session.body));
  usedLoginTokens.push(login.body.token);
}

let lastTimestamp = 0;
function signedOwnid(name, body) {
  lastTimestamp = Math.max(Date.now(), lastTimestamp + 1);
  const timestamp = String(lastTimestamp);
  const raw = JSON.stringify(body);
  const signature = createHmac('sha256', Buffer.from(ownidSecret, 'base64'))
    .update(Buffer.concat([Buffer.from(raw, 'utf8'), Buffer.from(`.${timestamp}`)]))
    .digest('base64');
  return {
    path: `/ownid/${name}`,
    options: {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'ownid-signature': signature, 'ownid-timestamp': timestamp },
      raw,
    },
  };
}

async function ownid() {
  if (registered.length === 0) return register();
  const { email } = registered[Math.floor(Math.random() * registered.length)];
  const set = signedOwnid('setOwnIDDataByLoginId', { loginId: email, ownIdData: `device-of-${email}` });
  const res = await call(set.path, set.options);
  if (!seen('ownid', res)) return;
  assert.equal(res.status, 204, JSON.stringify(res.body));
  ownidReplays.push(set);
  const get = signedOwnid('getSessionByLoginId', { loginId: email });
  const session = await call(get.path, get.options);
  if (seen('ownid', session)) assert.equal(session.status, 200, JSON.stringify(session.body));
}

// SIWE: the nonce from one node directly, the signed message verified through HAProxy
// (any node), then replayed straight to the other node: one use, across nodes. The
// nodes' siwe.domains (scripts/cluster.sh sets it): http://localhost:8080.
const direct = (process.env.CLUSTER_NODES || '').split(' ').filter(Boolean);
const siweSite = { scheme: 'http', domain: 'localhost:8080', uri: 'http://localhost:8080/login' };
const siweSignIns = []; // { message, signature } accepted once

async function siwe() {
  const signer = Wallet.createRandom();
  const [issuer, other] = Math.random() < 0.5 ? direct : [...direct].reverse();
  const nonce = await call(`${issuer}/auth/siwe/nonce`);
  if (!seen('siwe', nonce)) return;
  assert.equal(nonce.status, 200, JSON.stringify(nonce.body));
  const message = new SiweMessage({
    ...siweSite,
    address: signer.address,
    statement: 'Sign in to Gatehouse',
    version: '1',
    chainId: 1,
    nonce: nonce.body.nonce,
    issuedAt: new Date().toISOString(),
  }).prepareMessage();
  const signed = { message, signature: await signer.signMessage(message) };
  const res = await call('/auth/siwe', { method: 'POST', json: signed });
  if (!seen('siwe', res)) return;
  assert.equal(res.status, 200, JSON.stringify(res.body));
  siweSignIns.push(signed);
  const replay = await call(`${other}/auth/siwe`, { method: 'POST', json: signed });
  if (seen('siwe', replay)) {
    assert.deepEqual([replay.status, replay.body.code], [401, 'invalid_nonce'], JSON.stringify(replay.body));
  }
}

const flows = [register, register, login, login, selfkey, ownid, siwe];

async function worker(until) {
  while (Date.now() < until) {
    await flows[Math.floor(Math.random() * flows.length)]();
  }
}

const until = Date.now() + seconds * 1000;
await Promise.all(Array.from({ length: workers }, () => worker(until)));

// Checks, with every node back (the script restarted the killed one).
const checks = {};
let lost = 0;
for (const { email, password } of registered) {
  const res = await call('/auth/login', { method: 'POST', json: { email, password } });
  if (res.status !== 200) lost += 1;
}
checks.acknowledged_registrations = registered.length;
checks.lost_registrations = lost;
let reused = 0;
for (const token of spentRefresh) {
  const res = await call('/auth/refresh', { method: 'POST', json: { refresh_token: token } });
  if (res.status === 200) reused += 1;
}
checks.spent_refresh_tokens_accepted_again = reused;
let relogged = 0;
for (const token of usedLoginTokens) {
  const res = await call(`${root}/login`, { method: 'POST', json: { token } });
  if (res.status === 201) relogged += 1;
}
checks.selfkey_login_tokens_accepted_again = relogged;
let replayed = 0;
for (const { path, options } of ownidReplays) {
  const res = await call(path, options);
  if (res.status !== 401) replayed += 1;
}
checks.ownid_replays_accepted = replayed;
let resigned = 0;
for (const signed of siweSignIns) {
  const res = await call('/auth/siwe', { method: 'POST', json: signed });
  if (res.status === 200) resigned += 1;
}
checks.siwe_sign_ins = siweSignIns.length;
checks.siwe_messages_accepted_again = resigned;
// The lockout is one count across nodes: HAProxy spreads these over all of them.
const target = unique();
const statuses = [];
for (let i = 0; i < 7; i += 1) {
  statuses.push((await call('/auth/login', { method: 'POST', json: { email: target, password: 'wrong-password' } })).status);
}
checks.lockout_statuses = statuses;

// Every failed request, traced through HAProxy's log: sent to the killed node, received
// before that node was gone and not finished before the signal (1 ms for rounding).
// And every 5xx HAProxy logged is such a request: nothing else failed, seen or not.
const killed = JSON.parse(readFileSync(process.env.CLUSTER_KILLED, 'utf8'));
const logged = new Map();
// HAProxy writes a request's line as it ends, a moment after the client has its answer.
let logLines = [];
for (let waited = 0; waited < 2000; waited += 100) {
  logLines = readFileSync(process.env.CLUSTER_HAPROXY_LOG, 'utf8').split('\n');
  if (logLines.some((l) => l.startsWith(`id=${balanced.at(-1)} `))) break;
  await new Promise((resolve) => setTimeout(resolve, 100));
}
for (const line of logLines) {
  if (!line.startsWith('id=')) continue;
  const entry = Object.fromEntries(line.trim().split(' ').map((f) => f.split(/=(.*)/s).slice(0, 2)));
  // Its first byte: the connection's accept date plus the handshake and idle times
  // (one request per connection); its end: that plus its active time.
  const received = Number(entry.accepted_s) * 1000 + Number(entry.accepted_ms)
    + Number(entry.handshake_ms) + Number(entry.idle_ms);
  logged.set(entry.id, {
    server: entry.server,
    status: Number(entry.status),
    received,
    ended: received + Number(entry.active_ms),
    end: entry.end,
    retries: entry.retries,
  });
}
const inFlightOnKilled = (e) => e.server === killed.server
  && e.received <= killed.dead_at + 1 && e.ended >= killed.killed_at - 1;
const untraced = failures.filter((f) => !logged.has(f.id) || !inFlightOnKilled(logged.get(f.id)))
  .map((f) => ({ ...f, logged: logged.get(f.id) ?? null }));
const failedInLog = [...logged].filter(([, e]) => e.status >= 500 && !inFlightOnKilled(e))
  .map(([id, e]) => ({ id, ...e }));
const unlogged = balanced.filter((id) => !logged.has(id));
checks.requests_through_haproxy = balanced.length;
checks.requests_haproxy_did_not_log = unlogged.slice(0, 20);
checks.in_flight_on_killed_node = [...logged.values()].filter(inFlightOnKilled).length;
checks.failures_traced_to_killed_node = failures.length - untraced.length;
checks.failures_not_traced = untraced;
checks.logged_5xx_not_in_flight_on_killed_node = failedInLog.slice(0, 20);

const summary = { stats, checks, killed, failures: failures.slice(0, 20).map((f) => ({ ...f, logged: logged.get(f.id) })) };
console.log(JSON.stringify(summary, null, 2));
const ok = lost === 0 && reused === 0 && relogged === 0 && replayed === 0 && resigned === 0
  && statuses.slice(0, 5).every((s) => s === 401) && statuses.slice(5).every((s) => s === 429)
  // Only requests in flight on the killed node failed (HAProxy retried the others).
  && untraced.length === 0 && failedInLog.length === 0
  && unlogged.length === 0
  && registered.length > 0 && usedLoginTokens.length > 0 && ownidReplays.length > 0
  && siweSignIns.length > 0;
process.exit(ok ? 0 : 1);
