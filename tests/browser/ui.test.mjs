// Gatehouse's hosted pages (/ui/) in a real browser: Debian's chromium, headless,
// driven by puppeteer-core, on Gatehouse's own origin (http://localhost:UI_PORT, the
// server's http.public_url; scripts/browser.sh). Sign-up, sign-in with a password and
// with a passkey through conditional UI (the DevTools virtual authenticator), the
// account page's actions, sign-out, the forgotten password through the mailed link
// (the server's outbox), the password flows again with JavaScript off, an
// authenticator app set up on the account page (codes from otplib) and the
// second-factor step, and axe-core on every page signed out, signed in and with a
// form error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import puppeteer from 'puppeteer-core';
import { authenticator } from 'otplib';

const site = process.env.UI_URL;
const outbox = process.env.OUTBOX;
if (!site || !outbox) throw new Error('UI_URL and OUTBOX must be set (scripts/browser.sh sets them)');
const axe = await readFile(new URL('node_modules/axe-core/axe.min.js', import.meta.url), 'utf8');
const PASSWORD = 'correct horse battery';

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

const address = () => `ui-${randomBytes(6).toString('hex')}@example.com`;

/** A fresh incognito context and tab; `js: false` turns JavaScript off. */
async function tab({ js = true, authenticator = false } = {}) {
  const context = await browser.createBrowserContext();
  const t = await context.newPage();
  t.on('pageerror', (e) => console.error('page error:', e));
  await t.setJavaScriptEnabled(js);
  let credentials;
  if (authenticator) {
    const cdp = await t.createCDPSession();
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
        hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
    credentials = async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials;
  }
  return { t, context, credentials };
}

/** Fills the form's fields by label-bound ids and submits it; the next page. */
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

/** axe-core on the page: no serious or critical violation. */
async function axeCheck(t, label) {
  // Through DevTools: the pages' CSP refuses inline scripts, as it should.
  await t.evaluate(axe);
  const result = await t.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')) }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad, [], `${label}: ${JSON.stringify(bad)}`);
}

async function text(t, selector) {
  return t.$eval(selector, (el) => el.textContent.trim());
}

/** The link of the newest mail in the outbox to `to` whose link starts with `prefix`. */
async function mailedLink(to, prefix) {
  const deadline = Date.now() + 15000;
  for (;;) {
    for (const name of await readdir(outbox).catch(() => [])) {
      const mail = (await readFile(`${outbox}/${name}`, 'utf8')).replace(/=\r?\n/g, '').replace(/=3D/g, '=');
      if (!mail.includes(`To: ${to}`)) continue;
      const found = mail.match(new RegExp(`${prefix.replace(/[.?/]/g, '\\$&')}[A-Za-z0-9_-]+`));
      if (found) return found[0];
    }
    assert.ok(Date.now() < deadline, `no mail to ${to} with ${prefix}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

for (const js of [true, false]) {
  test(`password sign-up, the account page, sign-out and sign-in (JavaScript ${js ? 'on' : 'off'})`, async () => {
    const { t, context } = await tab({ js });
    // axe-core runs with JavaScript on (the same pages, checked once).
    const accessible = js ? axeCheck : async () => {};
    const email = address();
    await t.goto(`${site}/ui/account`);
    assert.equal(new URL(t.url()).pathname, '/ui/sign-in', 'signed out: to the sign-in page');
    assert.equal(new URL(t.url()).searchParams.get('return_to'), '/ui/account');
    assert.equal(await t.$eval('html', (h) => h.lang), 'en');
    await accessible(t, 'sign-in');
    if (js) {
      assert.equal(await t.$eval('form[data-passkey] button', (b) => b.disabled), false, 'the passkey button works');
    } else {
      assert.equal(await t.$eval('form[data-passkey] button', (b) => b.disabled), true);
      assert.equal(await t.$eval('[data-needs-js]', (p) => p.hidden), false, 'says passkeys need JavaScript');
    }

    await t.goto(`${site}/ui/sign-up`);
    await accessible(t, 'sign-up');
    let res = await submit(t, '/ui/sign-up', { email, password: 'short' });
    assert.equal(res.status(), 400);
    assert.equal(await text(t, '#form-error'), 'Choose a password of 8 characters to 1,024 bytes.');
    assert.equal(await t.$eval('#password', (i) => i.getAttribute('aria-invalid')), 'true');
    await accessible(t, 'sign-up with an error');
    res = await submit(t, '/ui/sign-up', { email, password: PASSWORD });
    assert.equal(new URL(t.url()).pathname, '/ui/account');
    assert.equal(res.status(), 200);
    assert.match(await t.content(), new RegExp(email.replace('.', '\\.')));
    await accessible(t, 'account');
    const cookies = await context.cookies(site);
    const session = cookies.find((c) => c.name === 'gatehouse-ui');
    assert.ok(session, JSON.stringify(cookies));
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Lax');

    // The account page's actions: a wrong current password, then the change.
    res = await submit(t, '/ui/account/password', { current_password: 'not-it-at-all', new_password: 'a new password 1' });
    assert.equal(res.status(), 403);
    assert.equal(await text(t, '#form-error'), 'The current password is wrong.');
    await accessible(t, 'account with an error');
    res = await submit(t, '/ui/account/password', { current_password: PASSWORD, new_password: 'a new password 1' });
    assert.equal(new URL(t.url()).search, '?done=password-changed');
    assert.equal(await text(t, '.notice'), 'Your password is changed; every other session is signed out.');

    res = await submit(t, '/ui/sign-out');
    assert.equal(res.status(), 200);
    assert.equal(await text(t, '.notice'), 'You are signed out.');
    assert.equal((await context.cookies(site)).find((c) => c.name === 'gatehouse-ui'), undefined);

    await t.goto(`${site}/ui/sign-in?return_to=%2Fui%2Faccount`);
    res = await submit(t, '/ui/sign-in', { email, password: PASSWORD });
    assert.equal(res.status(), 401);
    assert.equal(await text(t, '#form-error'), 'The email or password is wrong.');
    await accessible(t, 'sign-in with an error');
    res = await submit(t, '/ui/sign-in', { email, password: 'a new password 1' });
    assert.equal(new URL(t.url()).pathname, '/ui/account');

    // Delete the account.
    await t.$eval('#confirm', (c) => { c.checked = true; });
    res = await submit(t, '/ui/account/delete');
    assert.equal(res.status(), 200);
    assert.equal(await text(t, '.notice'), 'The account is deleted.');
    await context.close();
  });

  test(`a forgotten password through the mailed link (JavaScript ${js ? 'on' : 'off'})`, async () => {
    const { t, context } = await tab({ js });
    const accessible = js ? axeCheck : async () => {};
    const email = address();
    await t.goto(`${site}/ui/sign-up`);
    await submit(t, '/ui/sign-up', { email, password: PASSWORD });
    await submit(t, '/ui/sign-out');
    await t.goto(`${site}/ui/forgot-password`);
    await accessible(t, 'forgot-password');
    await submit(t, '/ui/forgot-password', { email });
    assert.match(await text(t, '.notice'), /a link to reset it is on its way/);
    const link = await mailedLink(email, `${site}/ui/reset-password?token=`);
    await t.goto(link);
    if (js) assert.equal(new URL(t.url()).search, '', 'the token left the address bar');
    await accessible(t, 'reset-password');
    await submit(t, '/ui/reset-password', { password: 'the reset password' });
    assert.equal(new URL(t.url()).pathname, '/ui/account', 'signed in by the reset');
    await submit(t, '/ui/sign-out');
    await t.goto(`${site}/ui/sign-in`);
    await submit(t, '/ui/sign-in', { email, password: 'the reset password' });
    assert.equal(new URL(t.url()).pathname, '/ui/account');
    await context.close();
  });
}

test('a passkey added on the account page signs in through conditional UI', async () => {
  const { t, context, credentials } = await tab({ authenticator: true });
  const email = address();
  await t.goto(`${site}/ui/sign-up`);
  await submit(t, '/ui/sign-up', { email, password: PASSWORD });
  await Promise.all([t.waitForNavigation(), t.click('form[data-passkey="add"] button')]);
  assert.equal(new URL(t.url()).search, '?done=passkey-added', await t.content());
  assert.equal((await credentials()).length, 1);
  assert.match(await t.content(), /<strong>Passkey<\/strong>/);
  await submit(t, '/ui/sign-out');

  // Conditional UI: the sign-in page asks with mediation "conditional"; the virtual
  // authenticator answers as a person picking the passkey in the autofill would.
  await t.goto(`${site}/ui/sign-in`);
  assert.equal(await t.evaluate(() => PublicKeyCredential.isConditionalMediationAvailable()), true);
  await t.waitForNavigation({ timeout: 15000 }).catch(async () => {
    // Chromium shows the passkey in the email field's autofill; focusing it opens it.
    await t.focus('#email');
    await t.waitForNavigation({ timeout: 15000 });
  });
  assert.equal(new URL(t.url()).pathname, '/ui/account', await t.content());
  assert.match(await t.content(), /Signed in with: passkey/);
  await context.close();
});

test('passkey-only sign-up makes an account whose way in is the passkey', async () => {
  const { t, context, credentials } = await tab({ authenticator: true });
  // No conditional UI here (the virtual authenticator would answer it at once): the
  // sign-in goes through the button.
  await t.evaluateOnNewDocument(() => {
    PublicKeyCredential.isConditionalMediationAvailable = async () => false;
  });
  await t.goto(`${site}/ui/sign-up`);
  await Promise.all([t.waitForNavigation(), t.click('form[data-passkey="sign-up"] button')]);
  assert.equal(new URL(t.url()).pathname, '/ui/account', await t.content());
  assert.equal((await credentials()).length, 1);
  assert.doesNotMatch(await t.content(), /id="current_password"/, 'no password');
  await submit(t, '/ui/sign-out');
  await t.goto(`${site}/ui/sign-in`);
  await Promise.all([t.waitForNavigation(), t.click('form[data-passkey="sign-in"] button')]);
  assert.equal(new URL(t.url()).pathname, '/ui/account', await t.content());
  await context.close();
});

test('German, dark mode and 320 px: the pages stay accessible', async () => {
  const { t, context } = await tab();
  await t.setExtraHTTPHeaders({ 'accept-language': 'de-DE,de;q=0.9' });
  await t.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'dark' }]);
  await t.setViewport({ width: 320, height: 640 });
  for (const path of ['/ui/sign-in', '/ui/sign-up', '/ui/forgot-password']) {
    await t.goto(`${site}${path}`);
    assert.equal(await t.$eval('html', (h) => h.lang), 'de');
    const overflow = await t.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
    assert.equal(overflow, false, `${path} fits 320 px`);
    await axeCheck(t, `${path} (de, dark)`);
  }
  await context.close();
});

test('another origin cannot frame the pages or post their forms', async () => {
  const res = await fetch(`${site}/ui/sign-in`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-security-policy'), /frame-ancestors 'none'/);
  assert.equal(res.headers.get('x-frame-options'), 'DENY');
  const { t, context } = await tab();
  await t.goto('about:blank');
  // A page of another origin posts the sign-up form: refused, nothing made.
  const email = address();
  await t.setContent(`<form method="post" action="${site}/ui/sign-up"><input name="email" value="${email}"><input name="password" value="${PASSWORD}"><button>go</button></form>`);
  const [answer] = await Promise.all([t.waitForNavigation(), t.click('button')]);
  assert.equal(answer.status(), 403);
  await context.close();
});

/** otplib's code for `secret` (base32) at `at` (milliseconds since the epoch). */
const codeAt = (secret, at) => authenticator.clone({ epoch: at }).generate(secret);

/** Now, a few seconds clear of a step's end, so that this step's and the next one's
 * codes are both within the server's drift while the test runs. */
async function clearOfAStepEnd() {
  const left = 30 - (Math.floor(Date.now() / 1000) % 30);
  if (left < 5) await new Promise((r) => setTimeout(r, (left + 1) * 1000));
  return Date.now();
}

test('an authenticator app set up on the account page, then a sign-in that owes its code', async () => {
  const { t, context } = await tab();
  const email = address();
  await t.goto(`${site}/ui/sign-up`);
  await submit(t, '/ui/sign-up', { email, password: PASSWORD });
  assert.equal(await text(t, '[data-totp]'), 'No authenticator app yet: your password alone signs in.');

  let res = await submit(t, '/ui/account/second-factor/enroll');
  assert.equal(res.status(), 200);
  assert.equal(res.headers()['cache-control'], 'no-store');
  assert.ok(await t.$('figure.qr svg'), 'the QR code is on the page');
  assert.equal(await t.$eval('#code', (i) => i.autocomplete), 'one-time-code');
  const secret = await text(t, '#secret');
  assert.match(secret, /^[A-Z2-7]{16,}$/);
  await axeCheck(t, 'enrolment');

  const now = await clearOfAStepEnd();
  res = await submit(t, '/ui/account/second-factor/confirm', { code: codeAt(secret, now) });
  assert.equal(res.status(), 200);
  assert.equal(res.headers()['cache-control'], 'no-store');
  const codes = await t.$$eval('[data-recovery-codes] code', (cs) => cs.map((c) => c.textContent));
  assert.equal(codes.length, 10);
  await axeCheck(t, 'recovery codes');

  await t.goto(`${site}/ui/account`);
  assert.match(await text(t, '[data-totp]'), /^An authenticator app is on/);
  assert.equal(await text(t, '[data-codes-left]'), '10');
  await submit(t, '/ui/sign-out');

  await t.goto(`${site}/ui/sign-in?return_to=%2Fui%2Faccount`);
  res = await submit(t, '/ui/sign-in', { email, password: PASSWORD });
  assert.equal(new URL(t.url()).pathname, '/ui/second-factor');
  assert.equal((await context.cookies(site)).find((c) => c.name === 'gatehouse-ui'), undefined, 'no session yet');
  assert.equal(await t.$eval('#code', (i) => i.autocomplete), 'one-time-code');
  await axeCheck(t, 'second factor');
  res = await submit(t, '/ui/second-factor', { code: '000000' });
  assert.equal(res.status(), 401);
  assert.match(await text(t, '#form-error'), /^The code is wrong or was used already\./);
  await axeCheck(t, 'second factor with an error');
  // The confirmation used this step: the next one's code signs in.
  res = await submit(t, '/ui/second-factor', { code: codeAt(secret, now + 30_000) });
  assert.equal(new URL(t.url()).pathname, '/ui/account', await t.content());
  assert.equal(res.status(), 200);
  assert.match(await t.content(), new RegExp(email.replace('.', '\\.')));
  assert.ok((await context.cookies(site)).find((c) => c.name === 'gatehouse-ui'), 'signed in');
  await context.close();
});

test('a passkey as the second factor after a password, on the second-factor page', async () => {
  const { t, context } = await tab({ authenticator: true });
  // No conditional UI (the virtual authenticator would answer it at once, and a passkey
  // sign-in is two factors by itself): this test is the password's second step.
  await t.evaluateOnNewDocument(() => {
    PublicKeyCredential.isConditionalMediationAvailable = async () => false;
  });
  const email = address();
  await t.goto(`${site}/ui/sign-up`);
  await submit(t, '/ui/sign-up', { email, password: PASSWORD });
  await Promise.all([t.waitForNavigation(), t.click('form[data-passkey="add"] button')]);
  assert.equal(new URL(t.url()).search, '?done=passkey-added', await t.content());
  await submit(t, '/ui/account/second-factor/enroll');
  const secret = await text(t, '#secret');
  await submit(t, '/ui/account/second-factor/confirm', { code: codeAt(secret, await clearOfAStepEnd()) });
  await t.goto(`${site}/ui/account`);
  await submit(t, '/ui/sign-out');

  await t.goto(`${site}/ui/sign-in`);
  await submit(t, '/ui/sign-in', { email, password: PASSWORD });
  assert.equal(new URL(t.url()).pathname, '/ui/second-factor');
  assert.equal(await text(t, 'form[data-passkey="second-factor"] button'), 'Use a passkey');
  assert.equal(await t.$eval('form[data-passkey="second-factor"] button', (b) => b.disabled), false);
  await axeCheck(t, 'second factor with a passkey');
  assert.equal((await context.cookies(site)).find((c) => c.name === 'gatehouse-ui'), undefined, 'no session yet');
  await Promise.all([t.waitForNavigation(), t.click('form[data-passkey="second-factor"] button')]);
  assert.equal(new URL(t.url()).pathname, '/ui/account', await t.content());
  assert.match(await t.content(), new RegExp(email.replace('.', '\\.')));
  assert.ok((await context.cookies(site)).find((c) => c.name === 'gatehouse-ui'), 'signed in');
  assert.equal((await context.cookies(site)).find((c) => c.name === 'gatehouse-ui-mfa'), undefined);
  await context.close();
});

// A second server with accounts.require_mfa (scripts/browser.sh starts it).
const strict = process.env.UI_REQUIRE_MFA_URL;
test('under accounts.require_mfa, the sign-in enrolls its authenticator on the second-factor page', { skip: !strict && 'UI_REQUIRE_MFA_URL is not set' }, async () => {
  const { t, context } = await tab();
  const email = address();
  await t.goto(`${strict}/ui/sign-up`);
  await submit(t, '/ui/sign-up', { email, password: PASSWORD });
  assert.equal(new URL(t.url()).pathname, '/ui/second-factor');
  assert.equal((await context.cookies(strict)).find((c) => c.name === 'gatehouse-ui'), undefined, 'no session yet');
  assert.equal(await t.$('form[action="/ui/second-factor"]'), null, 'no code form: only the enrolment');
  await axeCheck(t, 'second factor: enrol first');
  let res = await submit(t, '/ui/second-factor/enroll');
  assert.equal(res.status(), 200);
  assert.ok(await t.$('figure.qr svg'), 'the QR code is on the page');
  const secret = await text(t, '#secret');
  await axeCheck(t, 'second factor: the enrolment');
  res = await submit(t, '/ui/second-factor/confirm', { code: '000000' });
  assert.equal(res.status(), 401);
  assert.match(await text(t, '#form-error'), /^The code is wrong or was used already\./);
  res = await submit(t, '/ui/second-factor/confirm', { code: codeAt(secret, await clearOfAStepEnd()) });
  assert.equal(res.status(), 200);
  const codes = await t.$$eval('[data-recovery-codes] code', (cs) => cs.map((c) => c.textContent));
  assert.equal(codes.length, 10);
  assert.ok((await context.cookies(strict)).find((c) => c.name === 'gatehouse-ui'), 'signed in');
  await Promise.all([t.waitForNavigation(), t.click('main a[href="/ui/account"]')]);
  assert.equal(new URL(t.url()).pathname, '/ui/account');
  assert.match(await text(t, '[data-totp]'), /^An authenticator app is on/);
  await context.close();
});
