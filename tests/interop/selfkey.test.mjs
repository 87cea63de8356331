// Login with SelfKey against the real server, played the way the real clients do
// it: the wallet signs with ethers v6 (`Wallet.signMessage`, EIP-191), reads the
// challenge from the challenge JWT without verifying it, sends `Origin: IDW` and its
// User-Agent, and posts its sign-up as multipart (the January 2019 wallet) or JSON
// (later wallets, DID form); the page fetches its lws.init config and calls /login.
// The resulting account token is checked with jwt-simple, as integrators check it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import jwt from 'jwt-simple';
import { Wallet } from 'ethers';
import { base, secret, post, uniqueEmail } from './lib.mjs';

const page = { origin: 'http://site.example' };
const wallet = { origin: 'IDW', 'user-agent': 'SelfKeyIDW/1.4.0' };
const emailSchema = 'http://platform.selfkey.org/schema/attribute/email.json';
const passportSchema = 'http://platform.selfkey.org/schema/attribute/passport.json';

/** Any request; the status, headers and parsed body (null when empty). */
async function call(url, { method = 'GET', headers = {}, token, json, form } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  let body;
  if (json !== undefined) {
    h['content-type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  const res = await fetch(url, { method, headers: h, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

/** A JWT's claims, read without verifying it, as the wallet reads its challenge. */
function claimsOf(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));
}

/** The page's lws.init object, as the site would embed it. */
async function lwsConfig() {
  const res = await call(`${base}/api/v1/selfkey/config`, { headers: page });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('access-control-allow-origin'), page.origin);
  return res.body;
}

/** Steps 1-2 of the protocol: a challenge for this key (or DID), signed, answered. */
async function walletSession(root, signer, { did = false } = {}) {
  const id = did
    ? `did:eth:${signer.address.toLowerCase()}`
    // ethers gives 0x04 + x + y; the wallet sends 0x + x + y.
    : `0x${signer.signingKey.publicKey.slice(4)}`;
  const challenge = await call(`${root}/auth/challenge/${id}`, { headers: wallet });
  assert.equal(challenge.status, 200);
  const claims = claimsOf(challenge.body.jwt);
  assert.match(claims.challenge, /^[0-9a-f]{96}$/);
  const signature = await signer.signMessage(claims.challenge);
  const body = did
    ? { signature: { value: signature, keyId: `${id}#keys-1` } }
    : { signature };
  const answered = await call(`${root}/auth/challenge`, {
    method: 'POST', headers: wallet, token: challenge.body.jwt, json: body,
  });
  assert.equal(answered.status, 201, JSON.stringify(answered.body));
  const session = claimsOf(answered.body.jwt);
  assert.equal(session.sub, signer.address.toLowerCase());
  assert.equal(session.publicKey, signer.signingKey.publicKey.slice(4));
  // The same answer again is a replay.
  const replay = await call(`${root}/auth/challenge`, {
    method: 'POST', headers: wallet, token: challenge.body.jwt, json: body,
  });
  assert.equal(replay.status, 401);
  assert.equal(replay.body.code, 'invalid_auth_token');
  return answered.body.jwt;
}

/** Steps 3-4: the wallet gets a login token; the page exchanges it at /login. */
async function signIn(root, walletJwt, meta) {
  const query = meta ? `?meta=${encodeURIComponent(JSON.stringify(meta))}` : '';
  const token = await call(`${root}/users/token${query}`, { headers: wallet, token: walletJwt });
  assert.equal(token.status, 200, JSON.stringify(token.body));
  assert.equal(token.body.user, token.body.token);
  const login = await call(`${root}/login`, {
    method: 'POST', headers: page, json: { token: token.body.token },
  });
  assert.equal(login.status, 201, JSON.stringify(login.body));
  assert.equal(login.headers.get('access-control-allow-origin'), page.origin);
  assert.equal(login.body.redirectTo, '/');
  assert.equal(login.body.redirectUrl, '/');
  assert.match(login.headers.get('set-cookie'), /^gatehouse_session=[\w-]+\.[\w-]+\.[\w-]+; HttpOnly; SameSite=Lax; Path=\/; Max-Age=900$/);
  // The login token was for one use.
  const again = await call(`${root}/login`, {
    method: 'POST', headers: page, json: { token: token.body.token },
  });
  assert.equal(again.status, 401);
  assert.equal(again.body.redirectTo, '/login');
  return login.body.token;
}

async function me(token) {
  return call(`${base}/auth/me`, { token });
}

test('a new wallet signs up with a multipart body and a document, then signs in', async () => {
  const config = await lwsConfig();
  const root = config.rootEndpoint;
  assert.deepEqual(config.attributes.map((a) => a.key), ['email', 'passport']);
  assert.equal(config.endpoints['/users/file'], false);

  const signer = Wallet.createRandom();
  const walletJwt = await walletSession(root, signer);
  const unknown = await call(`${root}/auth/token`, { headers: wallet, token: walletJwt });
  assert.equal(unknown.status, 404);
  assert.deepEqual(unknown.body, {
    code: 'user_does_not_exist', message: 'User with provided public key does not exist',
  });

  // As the wallet builds it: attributes and meta as JSON parts, each document as a
  // file part named after the reference in the attribute data.
  const email = uniqueEmail();
  const scan = Buffer.from('%PDF-1.4 passport scan');
  const attributes = [
    { id: emailSchema, schemaId: emailSchema, data: { value: email }, documents: [] },
    { id: passportSchema, schemaId: passportSchema, data: { value: { number: 'P123', image: '$document-1' } }, documents: [1] },
  ];
  const form = new FormData();
  form.append('$document-1', new Blob([scan], { type: 'application/pdf' }), 'passport.pdf');
  form.append('attributes', new Blob([JSON.stringify(attributes)], { type: 'application/json' }));
  form.append('meta', new Blob([JSON.stringify({})], { type: 'application/json' }));
  const signup = await call(`${root}/users`, { method: 'POST', headers: wallet, token: walletJwt, form });
  assert.equal(signup.status, 201, JSON.stringify(signup.body));
  assert.deepEqual(signup.body, { address: signer.address.toLowerCase(), result: 'created' });

  const account = await signIn(root, await walletSession(root, signer));
  const claims = jwt.decode(account, secret, false, 'HS512');
  // The email the wallet typed in is not the account's: no email claim at all.
  assert.equal(claims.email, undefined);
  assert.equal(claims.email_verified, undefined);
  assert.equal(claims.exp - claims.iat, 900);
  const profile = await me(account);
  assert.equal(profile.status, 200);
  assert.equal(profile.body.id, claims.sub);
  assert.equal(profile.body.email, null);
  assert.equal(profile.body.email_verified, false);
  assert.equal(profile.body.sign_in_methods.length, 1);
  assert.equal(profile.body.sign_in_methods[0].method, 'wallet');
  assert.equal(profile.body.sign_in_methods[0].address, signer.address.toLowerCase());

  // The site reads what the wallet shared, the document resolved.
  const details = await call(`${root}/wallets/${signer.address}`, { token: account });
  assert.equal(details.status, 200);
  assert.deepEqual(details.body.attributes[1].data, {
    number: 'P123',
    image: { mimeType: 'application/pdf', size: scan.length, content: scan.toString('base64') },
  });

  // A wallet token is no account token.
  const refused = await me(walletJwt);
  assert.equal(refused.status, 401);
});

test('a password account links a wallet through the page meta, and the wallet signs in to it', async () => {
  const config = await lwsConfig();
  const root = config.rootEndpoint;
  const email = uniqueEmail();
  const registered = await post('/auth/register', { email, password: 'password123' });
  assert.equal(registered.status, 200);
  const accountId = jwt.decode(registered.body.token, secret, false, 'HS512').sub;

  // A later wallet (DID form, JSON body) that merely claims the email is refused.
  const signer = Wallet.createRandom();
  const attributes = [{ id: emailSchema, schemaId: emailSchema, data: { value: email } }];
  const claimed = await call(`${root}/users`, {
    method: 'POST', headers: wallet, token: await walletSession(root, signer, { did: true }),
    json: { attributes, meta: {} },
  });
  assert.equal(claimed.status, 409);
  assert.deepEqual(claimed.body, {
    code: 'account_exists',
    message: 'An account with this email exists: sign in and link your wallet from your account.',
  });

  // Signed in, the page gets a link token and passes it through lws.init's meta.
  const link = await call(`${root}/link-token`, { method: 'POST', token: registered.body.token });
  assert.equal(link.status, 201);
  const meta = { linkToken: link.body.linkToken };
  const walletJwt = await walletSession(root, signer, { did: true });
  const linked = await call(`${root}/users`, {
    method: 'POST', headers: wallet, token: walletJwt, json: { attributes, meta },
  });
  assert.equal(linked.status, 201, JSON.stringify(linked.body));
  assert.equal(linked.body.result, 'linked');

  // The wallet now signs in to the password account (the page still holds the meta).
  const account = await signIn(root, walletJwt, meta);
  const claims = jwt.decode(account, secret, false, 'HS512');
  assert.equal(claims.sub, accountId);
  const profile = await me(account);
  assert.deepEqual(profile.body.sign_in_methods.map((m) => m.method), ['password', 'wallet']);
  const wallets = await call(`${root}/wallets`, { token: registered.body.token });
  assert.deepEqual(wallets.body.wallets.map((w) => w.address), [signer.address.toLowerCase()]);
});
