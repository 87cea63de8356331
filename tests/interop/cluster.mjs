// The cluster test's load (scripts/cluster.sh test): mixed traffic through HAProxy
// while the script SIGKILLs a node and restarts it, then the checks. Not a *.test.mjs:
// the interop run does not pick it up. Prints a JSON summary; exits 1 on a failed check.
//
// Env: GATEHOUSE_URL (HAProxy), GATEHOUSE_OWNID_SECRET, CLUSTER_SECONDS (load time),
// CLUSTER_WORKERS (concurrent clients).
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { Wallet } from 'ethers';

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
async function call(path, { method = 'GET', headers = {}, token, json, raw } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  let body = raw;
  if (json !== undefined) {
    h['content-type'] = 'application/json';
    body = JSON.stringify(json);
  }
  try {
    const res = await fetch(path.startsWith('http') ? path : `${base}${path}`, { method, headers: h, body });
    const text = await res.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch { parsed = text; }
    return { status: res.status, body: parsed, failed: res.status >= 500 };
  } catch (e) {
    return { status: 0, body: String(e), failed: true };
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
    failures.push({ flow, status: res.status, body: res.body });
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

const flows = [register, register, login, login, selfkey, ownid];

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
// The lockout is one count across nodes: HAProxy spreads these over all of them.
const target = unique();
const statuses = [];
for (let i = 0; i < 7; i += 1) {
  statuses.push((await call('/auth/login', { method: 'POST', json: { email: target, password: 'wrong-password' } })).status);
}
checks.lockout_statuses = statuses;

const summary = { stats, checks, failures: failures.slice(0, 20) };
console.log(JSON.stringify(summary, null, 2));
const ok = lost === 0 && reused === 0 && relogged === 0 && replayed === 0
  && statuses.slice(0, 5).every((s) => s === 401) && statuses.slice(5).every((s) => s === 429)
  // Only requests in flight on the killed node may fail (HAProxy retries the rest).
  && stats.failed <= workers
  && registered.length > 0 && usedLoginTokens.length > 0 && ownidReplays.length > 0;
process.exit(ok ? 0 : 1);
