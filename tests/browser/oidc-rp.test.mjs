// Gatehouse as the OpenID Connect provider of a web app, in a real browser: Debian's
// chromium, headless, driven by puppeteer-core. The app (tests/interop/oidc-rp.mjs, on
// http://127.0.0.1:PORT) is a relying party built on panva's openid-client (v6) — and
// again on oauth4webapi — that sends the browser to /oauth/authorize; the browser signs
// in on Gatehouse's hosted /ui/sign-in form and consents, lands on the app's callback,
// where the library exchanges the code (PKCE S256), validates the ID token (signature,
// issuer, audience, nonce, state, RFC 9207's iss), calls UserInfo and refreshes. Then
// prompt=none while signed in (a code without a page), RP-initiated logout through the
// browser (id_token_hint, post_logout_redirect_uri, state) back to the app, after which
// the session is gone (refresh refused, introspection inactive, UserInfo refused) and
// prompt=none answers login_required to the app.
//
// Gatehouse (GATEHOUSE_BIN) is started here on its own origin, http://localhost:PORT
// (so its cookies and the app's are apart); the openid-client app's client is declared
// in the configuration (`[[oidc.clients]]`, its secret from a file), the oauth4webapi
// app's registered with `gatehouse clients add`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';
import { startGatehouse } from '../interop/oidc-upstream.mjs';
import { freePort, appUris, startApp } from '../interop/oidc-rp.mjs';

const bin = process.env.GATEHOUSE_BIN;
if (!bin) throw new Error('GATEHOUSE_BIN must be set (scripts/browser.sh sets it)');
const PASSWORD = 'correct horse battery staple';

let browser;
let gatehouse;
let site;
let secrets;
const apps = {};

/** A TOML inline table (strings, booleans, arrays of strings), for an environment variable. */
const inlineTable = (o) => `{${Object.entries(o).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`;

before(async () => {
  const port = await freePort();
  site = `http://localhost:${port}`;
  secrets = mkdtempSync(join(tmpdir(), 'gatehouse-rp-'));
  // The openid-client app: declared in the configuration, its secret in a file.
  const declaredPort = await freePort();
  const declared = appUris(declaredPort);
  const declaredSecret = randomBytes(32).toString('base64url');
  writeFileSync(join(secrets, 'secret'), declaredSecret, { mode: 0o600 });
  gatehouse = await startGatehouse(bin, {
    port, publicUrl: site, providers: [],
    settings: {
      GATEHOUSE_OIDC__ENABLED: 'true',
      GATEHOUSE_OIDC__CLIENTS: `[${inlineTable({
        client_id: 'rp-openid-client', name: 'Notes (openid-client)',
        client_secret_file: join(secrets, 'secret'),
        redirect_uris: [declared.redirectUri], post_logout_redirect_uris: [declared.postLogoutRedirectUri],
        id_token_signed_response_alg: 'RS256',
      })}]`,
    },
  });
  apps['openid-client'] = await startApp({
    library: 'openid-client', port: declaredPort, issuer: site,
    clientId: 'rp-openid-client', clientSecret: declaredSecret, alg: 'RS256',
  });
  // The oauth4webapi app: registered with the command, ES256 ID tokens.
  const cliPort = await freePort();
  const registered = appUris(cliPort);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GATEHOUSE_')));
  const added = JSON.parse(execFileSync(bin, ['clients', 'add', '--name', 'Notes (oauth4webapi)',
    '--redirect-uri', registered.redirectUri, '--post-logout-redirect-uri', registered.postLogoutRedirectUri,
    '--id-token-signed-response-alg', 'ES256', '--json', '--data-dir', gatehouse.data], { env, encoding: 'utf8' }));
  apps.oauth4webapi = await startApp({
    library: 'oauth4webapi', port: cliPort, issuer: site,
    clientId: added.client_id, clientSecret: added.client_secret, alg: 'ES256',
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
  for (const app of Object.values(apps)) await app.stop();
  gatehouse?.stop();
  if (secrets) rmSync(secrets, { recursive: true, force: true });
});

/** An account with a password (the API's sign-up): its id and address. */
async function person() {
  const email = `rp-${randomBytes(6).toString('hex')}@example.com`;
  const res = await fetch(`${gatehouse.base}/auth/register`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password: PASSWORD }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return { id: JSON.parse(Buffer.from(body.token.split('.')[1], 'base64url')).sub, email };
}

/** `origin + pathname` of each hop of a navigation, and of where it ended. */
function trail(res) {
  const hop = (u) => { const url = new URL(u); return `${url.origin}${url.pathname}`; };
  return [...res.request().redirectChain().map((r) => hop(r.url())), hop(res.url())];
}

/** Goes to `url`; the navigation's final response. */
async function go(t, url) {
  const res = await t.goto(url, { waitUntil: 'load' });
  assert.ok(res, `no response for ${url}`);
  return res;
}

/** Clicks `selector` (a submit button); the navigation's final response. */
async function click(t, selector) {
  const [res] = await Promise.all([t.waitForNavigation({ waitUntil: 'load' }), t.$eval(selector, (b) => b.click())]);
  return res;
}

for (const library of ['openid-client', 'oauth4webapi']) {
  test(`${library} app: sign-in on the hosted form, consent, code flow, prompt=none, RP-initiated logout`, async () => {
    const app = apps[library];
    const alg = library === 'openid-client' ? 'RS256' : 'ES256';
    const who = await person();
    const context = await browser.createBrowserContext();
    const t = await context.newPage();
    t.on('pageerror', (e) => console.error('page error:', e));
    // A Content-Security-Policy refusal shows only here (the navigation just stalls).
    t.on('console', (m) => { if (/Content Security Policy/.test(m.text())) console.error('console:', m.text()); });

    // The app sends the browser to /authorize; not signed in, it lands on the form.
    let res = await go(t, `${app.origin}/login`);
    assert.deepEqual(trail(res), [`${app.origin}/login`, `${site}/oauth/authorize`, `${site}/ui/sign-in`]);
    assert.equal(res.status(), 200);
    const authorizeUrl = new URL(res.request().redirectChain()[1].url());
    assert.equal(authorizeUrl.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(authorizeUrl.searchParams.get('redirect_uri'), app.redirectUri);
    const returnTo = new URL(t.url()).searchParams.get('return_to');
    assert.match(returnTo, /^\/oauth\/authorize\/resume\?request=[0-9a-f]{32}$/);
    assert.equal(await t.$eval('form[action="/ui/sign-in"] input[name=return_to]', (i) => i.value), returnTo);

    // A wrong password: the form again with its error, still on the way to the app.
    await t.type('form[action="/ui/sign-in"] #email', who.email);
    await t.type('form[action="/ui/sign-in"] #password', 'not the password');
    res = await click(t, 'form[action="/ui/sign-in"] button[type=submit]');
    assert.equal(res.status(), 401);
    assert.equal(await t.$eval('#password', (i) => i.getAttribute('aria-invalid')), 'true');
    assert.equal(await t.$eval('form[action="/ui/sign-in"] input[name=return_to]', (i) => i.value), returnTo);

    // The right one: back to the pending request, which asks for consent.
    await t.$eval('form[action="/ui/sign-in"] #email', (i) => { i.value = ''; });
    await t.type('form[action="/ui/sign-in"] #email', who.email);
    await t.type('form[action="/ui/sign-in"] #password', PASSWORD);
    res = await click(t, 'form[action="/ui/sign-in"] button[type=submit]');
    assert.deepEqual(trail(res), [`${site}/ui/sign-in`, `${site}/oauth/authorize/resume`]);
    assert.equal(res.status(), 200);
    const consent = await t.$eval('main', (m) => m.textContent);
    const clientName = library === 'openid-client' ? 'Notes (openid-client)' : 'Notes (oauth4webapi)';
    assert.ok(consent.includes(clientName), consent);
    assert.equal(await t.$$eval('ul.list li', (items) => items.length), 3, consent);

    // Allowed: to the app's callback, where the library does the rest.
    res = await click(t, 'form[action="/oauth/authorize/consent"] button[value=allow]');
    assert.deepEqual(trail(res), [`${site}/oauth/authorize/consent`, `${app.origin}/callback`]);
    const callback = new URL(res.url());
    assert.equal(callback.searchParams.get('iss'), site);
    assert.equal(callback.searchParams.get('state'), [...app.sessions.values()].at(-1).state);
    let body = await res.json();
    assert.equal(res.status(), 200, JSON.stringify(body));
    assert.deepEqual(body, {
      library, sub: who.id, email: who.email, sid: body.sid, aud: app.clientId,
      iss: site, nonce_matches: true, alg,
      userinfo: { sub: who.id, email: who.email },
      refresh_rotated: true,
    });
    assert.match(body.sid, /./);
    const session = [...app.sessions.values()].at(-1);
    assert.equal((await app.rp.introspect(session.accessToken)).active, true);
    // Gatehouse's own session cookie, on its host only (the app's is apart).
    const cookies = await context.cookies();
    assert.deepEqual(cookies.map((c) => `${c.name}@${c.domain}`).sort(),
      ['gatehouse-ui-nonce@localhost', 'gatehouse-ui@localhost', 'rp@127.0.0.1'], JSON.stringify(cookies));

    // prompt=none while signed in and consented: a code, without a page.
    res = await go(t, `${app.origin}/login?prompt=none`);
    assert.deepEqual(trail(res), [`${app.origin}/login`, `${site}/oauth/authorize`, `${app.origin}/callback`]);
    body = await res.json();
    assert.equal(res.status(), 200, JSON.stringify(body));
    assert.equal(body.sub, who.id);
    const silent = [...app.sessions.values()].at(-1);
    assert.notEqual(silent.accessToken, session.accessToken);

    // RP-initiated logout: through Gatehouse and back to the registered URI with the state.
    res = await go(t, `${app.origin}/logout`);
    assert.deepEqual(trail(res), [`${app.origin}/logout`, `${site}/oauth/logout`, app.postLogoutRedirectUri]);
    const logout = new URL(res.request().redirectChain()[1].url());
    assert.equal(logout.searchParams.get('id_token_hint'), silent.idToken);
    assert.equal(logout.searchParams.get('post_logout_redirect_uri'), app.postLogoutRedirectUri);
    const logoutState = logout.searchParams.get('state');
    assert.ok(logoutState);
    body = await res.json();
    assert.equal(res.status(), 200, JSON.stringify(body));
    assert.deepEqual(body, { signed_out: true, state: logoutState });
    assert.equal((await context.cookies()).find((c) => c.name === 'gatehouse-ui'), undefined, 'the browser session cookie is gone');

    // The session of the ID token is gone: refresh refused, introspection inactive,
    // UserInfo refused.
    await assert.rejects(app.rp.refresh(silent.refreshToken), (e) => {
      assert.equal(e.error, 'invalid_grant', String(e));
      assert.equal(e.status, 400);
      return true;
    });
    assert.deepEqual(await app.rp.introspect(silent.accessToken), { active: false });
    await assert.rejects(app.rp.userinfo(silent.accessToken, who.id), (e) => {
      assert.equal(e.status, 401, String(e));
      return true;
    });
    // The browser's Gatehouse session is over too: prompt=none answers login_required
    // to the app (never the sign-in page), with the app's state.
    res = await go(t, `${app.origin}/login?prompt=none`);
    assert.deepEqual(trail(res), [`${app.origin}/login`, `${site}/oauth/authorize`, `${app.origin}/callback`]);
    const refused = new URL(res.url());
    assert.equal(refused.searchParams.get('error'), 'login_required');
    assert.equal(refused.searchParams.get('iss'), site);
    assert.equal(refused.searchParams.get('state'), [...app.sessions.values()].at(-1).state);
    assert.equal(refused.searchParams.get('code'), null);
    body = await res.json();
    assert.equal(res.status(), 401, JSON.stringify(body));
    assert.equal(body.error, 'login_required');

    // A returning user: signed out, consent remembered. The sign-in form's answer goes
    // through the resume straight to the app's callback, which the page's form-action
    // must allow (Chromium stalled here while it allowed only the site).
    res = await go(t, `${app.origin}/login`);
    assert.deepEqual(trail(res), [`${app.origin}/login`, `${site}/oauth/authorize`, `${site}/ui/sign-in`]);
    assert.equal(res.status(), 200);
    await t.type('form[action="/ui/sign-in"] #email', who.email);
    await t.type('form[action="/ui/sign-in"] #password', PASSWORD);
    res = await click(t, 'form[action="/ui/sign-in"] button[type=submit]');
    assert.deepEqual(trail(res), [`${site}/ui/sign-in`, `${site}/oauth/authorize/resume`, `${app.origin}/callback`]);
    body = await res.json();
    assert.equal(res.status(), 200, JSON.stringify(body));
    assert.equal(body.sub, who.id);
    assert.equal(body.nonce_matches, true);
    await context.close();
  });
}
