// The wallet buttons of the hosted sign-in page in a real browser (Debian's chromium,
// puppeteer-core; scripts/browser.sh starts the server): Sign-In with Ethereum through
// an injected EIP-1193 provider whose accounts and personal_sign are answered in Node
// by an ethers Wallet (a real secp256k1 key), and Login with SelfKey, with the
// extension's side of the page contract played in the page (its window messages) and
// the wallet's HTTP calls (challenge, EIP-191 signature, login token) made in Node
// with an ethers Wallet, as tests/interop does for SelfKey. Each ends signed in on the
// account page, or, for an account with an authenticator app, on the second-factor
// page and then signed in with its code.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import puppeteer from 'puppeteer-core';
import { authenticator } from 'otplib';

// ethers from tests/interop's packages (scripts/browser.sh installs them).
const { Wallet, getBytes } = createRequire(new URL('../interop/package.json', import.meta.url))('ethers');

const site = process.env.UI_URL;
if (!site) throw new Error('UI_URL must be set (scripts/browser.sh sets it)');
const root = `${site}/api/v1/selfkey`;
const EMAIL_SCHEMA = 'http://platform.selfkey.org/schema/attribute/email.json';
// What the SelfKey wallet sends with each call (docs/protocols: lws.md).
const walletHeaders = { origin: 'IDW', 'user-agent': 'SelfKeyIDW/1.4.0' };

let browser;
before(async () => {
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
});
after(async () => browser?.close());

async function tab() {
  const context = await browser.createBrowserContext();
  const t = await context.newPage();
  t.on('pageerror', (e) => console.error('page error:', e));
  return { t, context };
}

async function text(t, selector) {
  return t.$eval(selector, (el) => el.textContent.trim());
}

/** Fills the form posting to `action` and submits it; the next page's answer. */
async function submit(t, action, fields = {}) {
  for (const [id, value] of Object.entries(fields)) {
    await t.$eval(`form[action="${action}"] #${id}`, (el) => { el.value = ''; });
    await t.type(`form[action="${action}"] #${id}`, value);
  }
  const [res] = await Promise.all([
    t.waitForNavigation(),
    t.$eval(`form[action="${action}"] button[type=submit]`, (b) => b.click()),
  ]);
  return res;
}

const sessionCookie = async (context) => (await context.cookies(site)).find((c) => c.name === 'gatehouse-ui');

/** otplib's code for `secret` (base32) at `at` (milliseconds since the epoch). */
const codeAt = (secret, at) => authenticator.clone({ epoch: at }).generate(secret);

/** Now, a few seconds clear of a step's end. */
async function clearOfAStepEnd() {
  const left = 30 - (Math.floor(Date.now() / 1000) % 30);
  if (left < 5) await new Promise((r) => setTimeout(r, (left + 1) * 1000));
  return Date.now();
}

/** Sets up an authenticator app on the account page the tab is signed in to; its secret. */
async function enrollTotp(t) {
  await t.goto(`${site}/ui/account`);
  await submit(t, '/ui/account/second-factor/enroll');
  const secret = await text(t, '#secret');
  const res = await submit(t, '/ui/account/second-factor/confirm', { code: codeAt(secret, await clearOfAStepEnd()) });
  assert.equal(res.status(), 200, await t.content());
  await t.goto(`${site}/ui/account`);
  assert.match(await text(t, '[data-totp]'), /^An authenticator app is on/);
  return secret;
}

/** On the second-factor page: a wrong code is refused, the next step's code signs in. */
async function secondFactor(t, context, secret) {
  assert.equal(new URL(t.url()).pathname, '/ui/second-factor', await t.content());
  assert.equal(await sessionCookie(context), undefined, 'no session before the code');
  let res = await submit(t, '/ui/second-factor', { code: '000000' });
  assert.equal(res.status(), 401);
  assert.match(await text(t, '#form-error'), /^The code is wrong or was used already\./);
  // The enrolment used this step's code: the next one's signs in.
  res = await submit(t, '/ui/second-factor', { code: codeAt(secret, Date.now() + 30_000) });
  assert.equal(res.status(), 200);
  assert.equal(new URL(t.url()).pathname, '/ui/account', await t.content());
  assert.ok(await sessionCookie(context), 'signed in after the code');
}

// --- Sign-In with Ethereum -------------------------------------------------------

/** An EIP-1193 provider on every page of the tab (window.ethereum), answered by
 * `wallet` in Node; the methods the page asked for, in order. */
async function injectProvider(t, wallet) {
  const asked = [];
  await t.exposeFunction('gatehouseTestEthereum', async ({ method, params }) => {
    asked.push(method);
    switch (method) {
      case 'eth_requestAccounts':
      case 'eth_accounts':
        return [wallet.address];
      case 'personal_sign': {
        const [data, from] = params;
        if (from.toLowerCase() !== wallet.address.toLowerCase()) throw new Error(`not this wallet: ${from}`);
        return wallet.signMessage(getBytes(data));
      }
      default:
        throw new Error(`unsupported method ${method}`);
    }
  });
  await t.evaluateOnNewDocument(() => {
    window.ethereum = { request: (args) => window.gatehouseTestEthereum(args) };
  });
  return asked;
}

async function siweSignIn(t) {
  await t.goto(`${site}/ui/sign-in?return_to=%2Fui%2Faccount`);
  assert.equal(await t.$eval('form[data-siwe] button', (b) => b.disabled), false, 'the wallet button works');
  assert.equal(await t.$eval('[data-needs-wallet]', (p) => p.hidden), true);
  return Promise.all([t.waitForNavigation(), t.click('form[data-siwe] button')]);
}

test('Sign-In with Ethereum: the button, the wallet\'s account and signature, the account page', async () => {
  const { t, context } = await tab();
  const wallet = Wallet.createRandom();
  const asked = await injectProvider(t, wallet);
  const [res] = await siweSignIn(t);
  assert.equal(res.status(), 200);
  assert.equal(new URL(t.url()).pathname, '/ui/account', await t.content());
  assert.deepEqual(asked, ['eth_requestAccounts', 'personal_sign']);
  assert.ok((await t.content()).toLowerCase().includes(wallet.address.toLowerCase()), 'the wallet is on the account page');
  const session = await sessionCookie(context);
  assert.ok(session);
  assert.equal(session.httpOnly, true);
  assert.deepEqual(await t.evaluate(() => [localStorage.length, sessionStorage.length]), [0, 0], 'no token in the page');
  await context.close();
});

test('Sign-In with Ethereum for an account with an authenticator app: the second-factor page', async () => {
  const { t, context } = await tab();
  const wallet = Wallet.createRandom();
  await injectProvider(t, wallet);
  await siweSignIn(t);
  assert.equal(new URL(t.url()).pathname, '/ui/account', await t.content());
  const secret = await enrollTotp(t);
  await submit(t, '/ui/sign-out');
  assert.equal(await sessionCookie(context), undefined);

  await siweSignIn(t);
  await secondFactor(t, context, secret);
  assert.ok((await t.content()).toLowerCase().includes(wallet.address.toLowerCase()));
  await context.close();
});

// --- Login with SelfKey ----------------------------------------------------------

async function walletCall(url, { method = 'GET', bearer, json } = {}) {
  const headers = { ...walletHeaders };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  if (json) headers['content-type'] = 'application/json';
  const res = await fetch(url, { method, headers, body: json && JSON.stringify(json) });
  return { status: res.status, body: await res.json().catch(() => null) };
}

/** The wallet's steps 1-2 against the page's configuration: a challenge for its key,
 * signed (EIP-191), answered; its wallet token. */
async function walletToken(config, signer) {
  const key = `0x${signer.signingKey.publicKey.slice(4)}`;
  const challenge = await walletCall(`${config.rootEndpoint}/auth/challenge/${key}`);
  assert.equal(challenge.status, 200, JSON.stringify(challenge.body));
  const claims = JSON.parse(Buffer.from(challenge.body.jwt.split('.')[1], 'base64url'));
  const signature = await signer.signMessage(claims.challenge);
  const answer = await walletCall(`${config.rootEndpoint}/auth/challenge`, {
    method: 'POST', bearer: challenge.body.jwt, json: { signature },
  });
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
  return answer.body.jwt;
}

/** A wallet signed up with `email` (steps 1-2, then POST /users). */
async function signedUpWallet(email) {
  const signer = Wallet.createRandom();
  const config = { rootEndpoint: root };
  const jwt = await walletToken(config, signer);
  const users = await walletCall(`${root}/users`, {
    method: 'POST', bearer: jwt,
    json: { attributes: [{ id: EMAIL_SCHEMA, schemaId: EMAIL_SCHEMA, data: { value: email } }], meta: {} },
  });
  assert.equal(users.status, 201, JSON.stringify(users.body));
  return signer;
}

/** The SelfKey extension and wallet for the tab: the page's wp_init message gets the
 * extension's answer, the wallet (in Node, `signer`) runs steps 1-3 against the
 * configuration the page handed over, and the page gets wp_auth with the login
 * token. Returns the configurations the page handed over. */
async function installExtension(t, signer) {
  const seen = [];
  await t.exposeFunction('gatehouseTestSelfKeyWallet', async (config) => {
    seen.push(config);
    const jwt = await walletToken(config, signer);
    const token = await walletCall(config.endpoints['/auth/token'], { bearer: jwt });
    assert.equal(token.status, 200, JSON.stringify(token.body));
    return token.body.token;
  });
  await t.evaluateOnNewDocument(() => {
    window.addEventListener('message', async (event) => {
      const msg = event.data;
      if (event.source !== window || !msg || !msg.meta || msg.meta.src !== 'browser_lib') return;
      if (msg.type !== 'wp_init') return;
      const reply = (m) => window.postMessage({ ...m, meta: { id: msg.meta.id, src: 'content' } }, window.location.origin);
      reply({ type: 'wp_init', payload: { hash: 'test' } });
      try {
        reply({ type: 'wp_auth', payload: { token: await window.gatehouseTestSelfKeyWallet(msg.payload) } });
      } catch (e) {
        reply({ type: 'wp_auth', error: true, payload: { code: 'wallet', message: String(e) } });
      }
    });
  });
  return seen;
}

async function selfkeySignIn(t) {
  await t.goto(`${site}/ui/sign-in?return_to=%2Fui%2Faccount`);
  assert.equal(await t.$eval('form[data-selfkey] button', (b) => b.disabled), false, 'the SelfKey button works');
  assert.equal(await t.$eval('form[data-selfkey] [data-needs-js]', (p) => p.hidden), true);
  return Promise.all([t.waitForNavigation(), t.click('form[data-selfkey] button')]);
}

test('Login with SelfKey: the button hands the lws.init object over and the wallet\'s token signs in', async () => {
  const { t, context } = await tab();
  const email = `selfkey-${randomBytes(6).toString('hex')}@example.com`;
  const signer = await signedUpWallet(email);
  const seen = await installExtension(t, signer);
  const [res] = await selfkeySignIn(t);
  assert.equal(res.status(), 200);
  assert.equal(new URL(t.url()).pathname, '/ui/account', await t.content());
  assert.ok((await t.content()).toLowerCase().includes(signer.address.toLowerCase()), 'the wallet is on the account page');
  assert.ok(await sessionCookie(context));
  assert.equal(seen.length, 1);
  assert.equal(seen[0].rootEndpoint, root);
  assert.equal(seen[0].endpoints['/auth/token'], `${root}/auth/token`);
  assert.equal(typeof seen[0].website.name, 'string');
  assert.deepEqual(await t.evaluate(() => [localStorage.length, sessionStorage.length]), [0, 0], 'no token in the page');
  await context.close();
});

test('Login with SelfKey with no extension says so on the page', async () => {
  const { t, context } = await tab();
  await t.goto(`${site}/ui/sign-in`);
  await t.click('form[data-selfkey] button');
  await t.waitForFunction(() => document.querySelector('[data-selfkey-status]').textContent !== '', { timeout: 10000 });
  assert.equal(await text(t, '[data-selfkey-status]'),
    "The SelfKey wallet's login could not be used. Try again, or sign in another way.");
  assert.equal(await t.$eval('form[data-selfkey] button', (b) => b.disabled), false, 'the button can be tried again');
  assert.equal(new URL(t.url()).pathname, '/ui/sign-in');
  assert.equal(await sessionCookie(context), undefined);
  await context.close();
});

test('Login with SelfKey for an account with an authenticator app: the second-factor page', async () => {
  const { t, context } = await tab();
  const email = `selfkey-${randomBytes(6).toString('hex')}@example.com`;
  const signer = await signedUpWallet(email);
  await installExtension(t, signer);
  await selfkeySignIn(t);
  assert.equal(new URL(t.url()).pathname, '/ui/account', await t.content());
  const secret = await enrollTotp(t);
  await submit(t, '/ui/sign-out');
  assert.equal(await sessionCookie(context), undefined);

  await selfkeySignIn(t);
  await secondFactor(t, context, secret);
  assert.ok((await t.content()).toLowerCase().includes(signer.address.toLowerCase()));
  await context.close();
});
