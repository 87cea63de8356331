// "Continue with …" in a real browser: Debian's chromium, headless, driven by
// puppeteer-core, from the hosted sign-in page through panva's oidc-provider (a
// certified OpenID provider, run on loopback by tests/interop/oidc-upstream.mjs) and
// back to Gatehouse's callback, ending signed in on /ui/account. Gatehouse
// (GATEHOUSE_BIN) is started here on its own origin, http://localhost:PORT, with a
// kind oidc provider pointing at the upstream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import puppeteer from 'puppeteer-core';
import { freePort, startUpstream, startGatehouse } from '../interop/oidc-upstream.mjs';

const bin = process.env.GATEHOUSE_BIN;
if (!bin) throw new Error('GATEHOUSE_BIN must be set (scripts/browser.sh sets it)');

let browser;
let upstream;
let gatehouse;
let site;
before(async () => {
  const port = await freePort();
  site = `http://localhost:${port}`;
  const client = {
    client_id: 'gatehouse-browser', client_secret: randomBytes(24).toString('hex'),
    redirect_uri: `${site}/auth/social/panva/callback`, alg: 'ES256',
  };
  upstream = await startUpstream([client]);
  gatehouse = await startGatehouse(bin, {
    port, publicUrl: site,
    providers: [{ id: 'panva', kind: 'oidc', name: 'Panva', issuer: upstream.issuer,
      client_id: client.client_id, client_secret: client.client_secret, trust_email_verified: true }],
  });
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
});
after(async () => {
  await browser?.close();
  gatehouse?.stop();
  await upstream?.stop();
});

test('Continue with Panva: the hosted sign-in page, oidc-provider, and back signed in on the account page', async () => {
  const context = await browser.createBrowserContext();
  const t = await context.newPage();
  t.on('pageerror', (e) => console.error('page error:', e));
  const email = `social-${randomBytes(6).toString('hex')}@example.com`;
  upstream.signInAs({ sub: `person-${randomBytes(6).toString('hex')}`, email, email_verified: true, name: 'Ada' });

  await t.goto(`${site}/ui/account`);
  assert.equal(new URL(t.url()).pathname, '/ui/sign-in', 'signed out: to the sign-in page');
  const button = await t.$('a[href="/auth/social/panva?return_to=%2Fui%2Faccount"]');
  assert.ok(button, await t.content());
  assert.equal(await button.evaluate((a) => a.textContent.trim()), 'Continue with Panva');

  const [res] = await Promise.all([t.waitForNavigation(), button.click()]);
  const hops = res.request().redirectChain().map((r) => new URL(r.url()));
  const trail = hops.map((u) => `${u.origin}${u.pathname}`).join(' → ');
  assert.equal(`${hops[0].origin}${hops[0].pathname}`, `${site}/auth/social/panva`, trail);
  assert.ok(hops.some((u) => u.origin === upstream.issuer), `through the upstream: ${trail}`);
  assert.equal(`${hops.at(-1).origin}${hops.at(-1).pathname}`, `${site}/auth/social/panva/callback`, trail);
  assert.equal(new URL(t.url()).href, `${site}/ui/account`);
  assert.equal(res.status(), 200);
  // The upstream conforms (the email is in UserInfo, not the ID token): one UserInfo call.
  assert.deepEqual(upstream.seen, { authorizations: 1, tokens: 1, userinfo: 1 });
  const html = await t.content();
  assert.match(html, new RegExp(email.replace('.', '\\.')));
  const providers = await t.$eval('section[aria-labelledby="h-providers"]', (s) => s.textContent);
  assert.match(providers, /Panva/);
  const cookies = await context.cookies(site);
  const session = cookies.find((c) => c.name === 'gatehouse-ui');
  assert.ok(session, JSON.stringify(cookies));
  assert.equal(session.httpOnly, true);
  assert.equal(cookies.find((c) => c.name === 'gatehouse-social'), undefined, 'the binding cookie is gone');
  await context.close();
});
