// Social sign-in against a real OpenID provider: panva's oidc-provider (certified) on
// loopback as the upstream of a generic `oidc` provider (ES256 ID tokens) and of the
// `google` preset aimed at it with `base_url` (RS256). A single-page app's flow
// (mode=api): begin, the redirects through oidc-provider with a cookie jar, the
// callback, POST /auth/social/exchange, then /auth/me. Gatehouse is started here
// (GATEHOUSE_BIN) with its providers pointing at the upstream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { freePort, startUpstream, startGatehouse } from './oidc-upstream.mjs';

const bin = process.env.GATEHOUSE_BIN;
if (!bin) throw new Error('GATEHOUSE_BIN must be set (scripts/interop.sh sets it)');
const APP = 'https://app.example.com';

let upstream;
let gatehouse;
before(async () => {
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const client = (id, alg) => ({
    client_id: `gatehouse-${id}`, client_secret: randomBytes(24).toString('hex'),
    redirect_uri: `${publicUrl}/auth/social/${id}/callback`, alg,
  });
  const clients = { panva: client('panva', 'ES256'), google: client('google', 'RS256') };
  upstream = await startUpstream(Object.values(clients));
  gatehouse = await startGatehouse(bin, {
    port, publicUrl,
    providers: [
      { id: 'panva', kind: 'oidc', name: 'Panva', issuer: upstream.issuer,
        client_id: clients.panva.client_id, client_secret: clients.panva.client_secret },
      { id: 'google', kind: 'google', base_url: upstream.issuer,
        client_id: clients.google.client_id, client_secret: clients.google.client_secret },
    ],
    settings: { GATEHOUSE_UI__RETURN_ORIGINS: `["${APP}"]` },
  });
});
after(async () => {
  gatehouse?.stop();
  await upstream?.stop();
});

/** Cookies by name, as a browser keeps them for 127.0.0.1 (both servers; ports share cookies). */
class Jar {
  cookies = new Map();
  take(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const at = pair.indexOf('=');
      const name = pair.slice(0, at).trim();
      const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=Thu, 01 Jan 1970/i.test(a));
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, pair.slice(at + 1).trim());
    }
  }
  header() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  async get(url) {
    const res = await fetch(url, { redirect: 'manual', headers: { cookie: this.header() } });
    this.take(res);
    return res;
  }
}

/**
 * Begins a sign-in at `provider` in API mode and follows every redirect, through
 * oidc-provider and back to Gatehouse's callback, until the app's return_to. Returns
 * the authorization request and the code return_to receives.
 */
async function signIn(provider) {
  const jar = new Jar();
  const returnTo = `${APP}/done`;
  const begin = await jar.get(`${gatehouse.base}/auth/social/${provider}?mode=api&return_to=${encodeURIComponent(returnTo)}`);
  assert.equal(begin.status, 302, await begin.text());
  assert.ok(jar.cookies.has('gatehouse-social'), 'the binding cookie');
  const authorize = new URL(begin.headers.get('location'));
  let url = authorize;
  const hops = [];
  for (let i = 0; i < 20 && !url.href.startsWith(APP); i++) {
    const res = await jar.get(url);
    hops.push(`${res.status} ${url.origin}${url.pathname}`);
    assert.ok([302, 303].includes(res.status), `${hops.join(' → ')}: ${await res.text()}`);
    url = new URL(res.headers.get('location'), url);
  }
  assert.ok(url.href.startsWith(`${returnTo}?code=`), `${hops.join(' → ')} → ${url}`);
  assert.ok(!jar.cookies.has('gatehouse-social'), 'the binding cookie is cleared after use');
  return { authorize, hops, code: url.searchParams.get('code') };
}

async function exchange(code) {
  const res = await fetch(`${gatehouse.base}/auth/social/exchange`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code }),
  });
  return { status: res.status, body: await res.json() };
}

async function me(token) {
  const res = await fetch(`${gatehouse.base}/auth/me`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json() };
}

const claimsOf = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));

for (const [provider, trusted] of [['panva', false], ['google', true]]) {
  test(`API sign-in through oidc-provider as provider ${provider} (${provider === 'google' ? 'the google preset at base_url' : 'kind oidc'})`, async () => {
    const email = `social-${randomBytes(6).toString('hex')}@example.com`;
    const sub = `person-${randomBytes(6).toString('hex')}`;
    upstream.signInAs({ sub, email, email_verified: true, name: 'Ada Lovelace' });
    const before = { ...upstream.seen };
    const { authorize, hops, code } = await signIn(provider);

    assert.equal(`${authorize.origin}${authorize.pathname}`, `${upstream.issuer}/auth`, 'discovery named the endpoint');
    assert.equal(authorize.searchParams.get('client_id'), `gatehouse-${provider}`);
    assert.equal(authorize.searchParams.get('response_type'), 'code');
    assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(authorize.searchParams.get('scope'), 'openid email profile');
    assert.ok(authorize.searchParams.get('state').length >= 32 && authorize.searchParams.get('nonce').length >= 32);
    assert.equal(hops.at(-1), `303 ${gatehouse.base}/auth/social/${provider}/callback`, hops.join(' → '));
    // oidc-provider conforms to OpenID Connect Core §5.4 (its default): the ID token
    // carries no email, so Gatehouse asks the userinfo endpoint, once.
    assert.deepEqual(upstream.seen, { authorizations: before.authorizations + 1, tokens: before.tokens + 1, userinfo: before.userinfo + 1 }, 'one authorization, one code redeemed, one userinfo');

    const first = await exchange(code);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(typeof first.body.token, 'string');
    assert.equal(typeof first.body.refresh_token, 'string');
    assert.deepEqual(claimsOf(first.body.token).amr, ['fed']);
    const again = await exchange(code);
    assert.equal(again.status, 400, JSON.stringify(again.body));
    assert.equal(again.body.error, 'invalid_code', 'a code is single use');

    const mine = await me(first.body.token);
    assert.equal(mine.status, 200, JSON.stringify(mine.body));
    assert.equal(mine.body.email, email);
    // google trusts the upstream's email_verified; a generic oidc provider does not
    // unless told to (trust_email_verified).
    assert.equal(mine.body.email_verified, trusted);
    assert.equal(mine.body.sign_in_methods.length, 1, JSON.stringify(mine.body));
    const [method] = mine.body.sign_in_methods;
    assert.equal(method.method, 'social');
    assert.equal(method.provider, provider);
    assert.equal(method.email, email);
    assert.ok(Number.isInteger(method.linked_at) && method.linked_at > 0, JSON.stringify(method));

    // The same upstream subject signs in to the same account again.
    const second = await exchange((await signIn(provider)).code);
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.equal(claimsOf(second.body.token).sub, claimsOf(first.body.token).sub);
  });
}
