// Passkeys in a real browser: Debian's chromium, headless, driven by puppeteer-core,
// with the DevTools Protocol's virtual authenticator (CTAP2, internal transport,
// resident keys, user verification), on a page that uses @simplewebauthn/browser.
//
// The page is served by a small server on http://localhost:PAGE_PORT that also
// forwards /auth/* to Gatehouse, as an integrator's reverse proxy would; Gatehouse is
// configured with that origin (scripts/browser.sh). A second server on OTHER_PORT is
// an origin Gatehouse does not know.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import puppeteer from 'puppeteer-core';

const gatehouse = process.env.GATEHOUSE_URL;
const pagePort = Number(process.env.PAGE_PORT);
const otherPort = Number(process.env.OTHER_PORT);
if (!gatehouse || !pagePort || !otherPort) {
  throw new Error('GATEHOUSE_URL, PAGE_PORT and OTHER_PORT must be set (scripts/browser.sh sets them)');
}
const here = new URL('.', import.meta.url);
const page = await readFile(new URL('page.html', here));
const library = await readFile(
  new URL('node_modules/@simplewebauthn/browser/dist/bundle/index.umd.min.js', here),
);

function pageServer() {
  return http.createServer(async (req, res) => {
    if (req.url === '/' || req.url === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
    } else if (req.url === '/simplewebauthn.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(library);
    } else if (req.url.startsWith('/auth/')) {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      const headers = {};
      for (const h of ['content-type', 'authorization']) {
        if (req.headers[h]) headers[h] = req.headers[h];
      }
      const answer = await fetch(`${gatehouse}${req.url}`, {
        method: req.method,
        headers,
        body: chunks.length ? Buffer.concat(chunks) : undefined,
      });
      const body = Buffer.from(await answer.arrayBuffer());
      res.writeHead(answer.status, {
        'content-type': answer.headers.get('content-type') ?? 'application/json',
      }).end(body);
    } else {
      res.writeHead(404).end();
    }
  });
}

/** Listens on localhost (both loopback families where the machine has them). */
function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', () => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    server.listen({ port, host: '::', ipv6Only: false }, resolve);
  });
}

let browser;
const servers = [pageServer(), pageServer()];

before(async () => {
  await listen(servers[0], pagePort);
  await listen(servers[1], otherPort);
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    userDataDir: process.env.CHROMIUM_PROFILE,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-dev-shm-usage',
    ],
  });
});

after(async () => {
  await browser?.close();
  for (const s of servers) s.close();
});

/**
 * A fresh tab on `origin` with a virtual authenticator of its own: CTAP2 over the
 * internal transport, resident keys, user verification that succeeds (or, with
 * `verifies: false`, none at all).
 */
async function tab(port = pagePort, { verifies = true } = {}) {
  const tab = await browser.newPage();
  tab.on('pageerror', (e) => console.error('page error:', e));
  const cdp = await tab.createCDPSession();
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: verifies,
      isUserVerified: verifies,
      automaticPresenceSimulation: true,
    },
  });
  await tab.goto(`http://localhost:${port}/`);
  const credentials = async () =>
    (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials;
  return { tab, cdp, authenticatorId, credentials };
}

function claims(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
}

async function gatehouseCall(method, path, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${gatehouse}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

test('a new account registers a passkey and signs in usernameless', async () => {
  const { tab: t, credentials } = await tab();
  const reg = await t.evaluate(() => registerPasskey({ name: 'Chromium' }));
  assert.equal(reg.step, 'finish', JSON.stringify(reg));
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  assert.equal(reg.body.name, 'Chromium');
  assert.match(reg.body.created_at, /Z$/);
  const account = claims(reg.body.session.token).sub;

  // The virtual authenticator holds one discoverable credential for this account.
  const held = await credentials();
  assert.equal(held.length, 1);
  assert.equal(held[0].isResidentCredential, true);
  assert.equal(held[0].rpId, 'localhost');
  assert.equal(Buffer.from(held[0].userHandle, 'base64').length, 16);

  const login = await t.evaluate(() => signIn());
  assert.equal(login.step, 'finish', JSON.stringify(login));
  assert.equal(login.status, 200, JSON.stringify(login.body));
  assert.equal(claims(login.body.token).sub, account);

  const list = await gatehouseCall('GET', '/auth/passkeys', undefined, login.body.token);
  assert.equal(list.status, 200);
  assert.equal(list.body.passkeys.length, 1);
  const [p] = list.body.passkeys;
  assert.equal(p.name, 'Chromium');
  assert.deepEqual(p.transports, ['internal']);
  assert.match(p.aaguid, /^[0-9a-f-]{36}$/);
  assert.equal(p.credential_id, reg.sent.credential.id);
  assert.ok(p.last_used_at, 'the sign-in is recorded');

  // The options fit conditional UI (autofill) too.
  assert.equal(await t.evaluate(() => conditionalUiAvailable()), true);
  await t.close();
});

test('a password account adds a passkey, signs in with it, and removes it', async () => {
  const email = `browser-${randomBytes(6).toString('hex')}@example.com`;
  const registered = await gatehouseCall('POST', '/auth/register', {
    email,
    password: 'correct horse battery',
  });
  assert.equal(registered.status, 200, JSON.stringify(registered.body));
  const token = registered.body.token;

  const { tab: t } = await tab();
  const reg = await t.evaluate((token) => registerPasskey({ token, name: 'Second way in' }), token);
  assert.equal(reg.status, 201, JSON.stringify(reg));
  assert.equal(reg.body.session, undefined, 'no new account');

  const login = await t.evaluate(() => signIn());
  assert.equal(login.status, 200, JSON.stringify(login));
  assert.equal(claims(login.body.token).sub, claims(token).sub);

  // Registering the same authenticator again is refused by the browser itself
  // (excludeCredentials), so the account keeps one passkey.
  const again = await t.evaluate((token) => registerPasskey({ token }), token);
  assert.equal(again.step, 'browser', JSON.stringify(again));
  assert.match(again.error, /InvalidStateError/);

  // The password remains, so the passkey can be removed.
  const removed = await t.evaluate(
    (id, token) => api('DELETE', `/auth/passkeys/${id}`, undefined, token),
    reg.body.id,
    token,
  );
  assert.equal(removed.status, 204, JSON.stringify(removed));
  const list = await gatehouseCall('GET', '/auth/passkeys', undefined, token);
  assert.deepEqual(list.body, { passkeys: [] });
  const refused = await t.evaluate(() => signIn());
  assert.equal(refused.status, 401, JSON.stringify(refused));
  assert.equal(refused.body.error, 'unknown_credential');
  await t.close();
});

test('the last passkey of a passkey-only account cannot be removed', async () => {
  const { tab: t } = await tab();
  const reg = await t.evaluate(() => registerPasskey());
  assert.equal(reg.status, 201, JSON.stringify(reg));
  const token = reg.body.session.token;
  const removed = await t.evaluate(
    (id, token) => api('DELETE', `/auth/passkeys/${id}`, undefined, token),
    reg.body.id,
    token,
  );
  assert.equal(removed.status, 409, JSON.stringify(removed));
  assert.equal(removed.body.error, 'last_sign_in_method');
  const list = await gatehouseCall('GET', '/auth/passkeys', undefined, token);
  assert.equal(list.body.passkeys.length, 1);
  await t.close();
});

test('a user who was not verified is refused', async () => {
  // An authenticator that cannot verify its user (no PIN, no biometrics).
  const { tab: t, cdp, authenticatorId } = await tab(pagePort, { verifies: false });
  // Asked for user verification, the browser finds no authenticator that can.
  const asked = await t.evaluate(() => registerPasskey());
  assert.equal(asked.step, 'browser', JSON.stringify(asked));
  assert.match(asked.error, /NotAllowedError|NotSupportedError/);
  // A page that drops the requirement gets a credential without the UV flag, and
  // Gatehouse refuses it: the requirement is the server's, not the page's.
  const dropped = await t.evaluate(() => registerPasskey({ tweak: 'uv-discouraged' }));
  assert.equal(dropped.step, 'finish', JSON.stringify(dropped));
  assert.equal(dropped.status, 400, JSON.stringify(dropped.body));
  assert.equal(dropped.body.error, 'user_not_verified');

  // A passkey registered with verification (without the credProtect request, so that
  // an authenticator offers it unverified), copied into the one that cannot verify:
  // its sign-in without verification is refused.
  const verified = await tab();
  const reg = await verified.tab.evaluate(() => registerPasskey({ tweak: 'no-cred-protect' }));
  assert.equal(reg.status, 201, JSON.stringify(reg));
  const [credential] = await verified.credentials();
  await verified.tab.close();
  await cdp.send('WebAuthn.addCredential', { authenticatorId, credential });
  // (The page names the credential: unverified, an authenticator lists none.)
  const login = await t.evaluate(
    (allow) => signIn({ tweak: 'uv-discouraged', allow }),
    reg.sent.credential.id,
  );
  assert.equal(login.step, 'finish', JSON.stringify(login));
  assert.equal(login.status, 401, JSON.stringify(login.body));
  assert.equal(login.body.error, 'user_not_verified');
  await t.close();
});

test('an origin Gatehouse is not configured for is refused', async () => {
  const { tab: t } = await tab(otherPort);
  const reg = await t.evaluate(() => registerPasskey());
  assert.equal(reg.step, 'finish', JSON.stringify(reg));
  assert.equal(reg.status, 400, JSON.stringify(reg.body));
  assert.equal(reg.body.error, 'wrong_origin');
  await t.close();
});

test('a replayed sign-in is refused', async () => {
  const { tab: t } = await tab();
  const reg = await t.evaluate(() => registerPasskey());
  assert.equal(reg.status, 201, JSON.stringify(reg));
  const login = await t.evaluate(() => signIn({ replay: true }));
  assert.equal(login.status, 200, JSON.stringify(login));
  assert.equal(login.replay.status, 400, JSON.stringify(login.replay));
  assert.equal(login.replay.body.error, 'ceremony_unknown');
  assert.equal(login.replay.body.token, undefined);
  await t.close();
});
