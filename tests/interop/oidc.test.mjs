// The OpenID Connect provider as relying parties nobody here wrote see it: panva's
// openid-client (v6, an OpenID-certified relying party) and oauth4webapi. Discovery,
// client_credentials, introspection, revocation, private_key_jwt client
// authentication, a code exchange with PKCE whose ID token the library checks itself
// (issuer, audience, signature against the JWKS, nonce), UserInfo and refresh.
//
// Until /oauth/authorize is in, the code a browser would bring back is written
// straight into the server's SQLite database (as a code /authorize issues: its
// SHA-256, bound to the client, the redirect URI, the nonce and the PKCE challenge),
// with Debian's sqlite3; everything after it is the libraries' own requests.
// A server of its own (GATEHOUSE_BIN) with the provider on, started here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as client from 'openid-client';
import * as oauth from 'oauth4webapi';
import { exportJWK, generateKeyPair } from 'jose';
import { uniqueEmail } from './lib.mjs';

const bin = process.env.GATEHOUSE_BIN;
if (!bin) throw new Error('GATEHOUSE_BIN must be set (scripts/interop.sh sets it)');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** The server's environment: only the settings given (none of the caller's GATEHOUSE_*). */
function environment(settings) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GATEHOUSE_')));
  return { ...env, ...settings };
}

let server;

before(async () => {
  const data = mkdtempSync(join(tmpdir(), 'gatehouse-oidc-'));
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const env = environment({
    GATEHOUSE_HTTP__PUBLIC_URL: issuer,
    GATEHOUSE_OIDC__ENABLED: 'true',
    GATEHOUSE_RATE_LIMIT__ENABLED: 'false',
    GATEHOUSE_ARGON2__MEMORY_KIB: '4096',
  });
  const child = spawn(bin, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', data], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (chunk) => { log += chunk; });
  let up = false;
  for (let i = 0; i < 150 && child.exitCode === null && !up; i++) {
    try {
      up = (await fetch(`${issuer}/health`)).ok;
    } catch { /* not up yet */ }
    if (!up) await sleep(100);
  }
  if (!up) throw new Error(`the server did not start:\n${log}`);
  const database = join(data, readdirSync(data).find((f) => f.endsWith('.db')));
  const cli = (...args) => JSON.parse(execFileSync(bin, [...args, '--json', '--data-dir', data], { env, encoding: 'utf8' }));
  server = { issuer, data, database, cli, child, log: () => log };
});

after(() => {
  server?.child.kill('SIGTERM');
  if (server) rmSync(server.data, { recursive: true, force: true });
});

// enableNonRepudiationChecks: openid-client then checks every ID token's signature
// against the provider's JWKS (without it, v6 relies on TLS and checks the claims only).
const discover = (id, secretOrMetadata, auth) =>
  client.discovery(new URL(server.issuer), id, secretOrMetadata, auth,
    { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] });

/** An account, signed up with a password; its id. */
async function account() {
  const email = uniqueEmail();
  const res = await fetch(`${server.issuer}/auth/register`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password: 'correct horse battery staple' }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  const id = JSON.parse(Buffer.from(body.token.split('.')[1], 'base64url')).sub;
  return { id, email };
}

const sql = (text) => `'${String(text).replaceAll("'", "''")}'`;

/**
 * The code /oauth/authorize would send the browser back with, for `accountId` and
 * the client, bound to the redirect URI, the scopes, the nonce and the challenge.
 */
function authorizationCode({ clientId, accountId, redirectUri, scope, nonce, challenge }) {
  const code = randomBytes(32).toString('base64url');
  const hash = createHash('sha256').update(code).digest('hex');
  const now = Math.floor(Date.now() / 1000);
  execFileSync('sqlite3', [server.database, `INSERT INTO oidc_codes (code_hash, client_id,
    account_id, session_id, redirect_uri, scopes, nonce, code_challenge, auth_time, expires_at, amr)
    VALUES (${sql(hash)}, ${sql(clientId)}, ${sql(accountId)}, ${sql(randomBytes(16).toString('hex'))},
    ${sql(redirectUri)}, ${sql(scope)}, ${sql(nonce)}, ${sql(challenge)}, ${now}, ${now + 60}, 'pwd')`]);
  return code;
}

test('discovery: openid-client and oauth4webapi read the same issuer and endpoints', async () => {
  const { client_id: id, client_secret: secret } = server.cli('clients', 'add', '--name', 'discovery', '--grant', 'client_credentials');
  const config = await discover(id, secret, client.ClientSecretBasic(secret));
  const meta = config.serverMetadata();
  assert.equal(meta.issuer, server.issuer);
  assert.equal(meta.token_endpoint, `${server.issuer}/oauth/token`);
  assert.equal(meta.jwks_uri, `${server.issuer}/.well-known/jwks.json`);
  assert.deepEqual(meta.code_challenge_methods_supported, ['S256']);
  assert.ok(meta.id_token_signing_alg_values_supported.includes('RS256'));
  // oauth4webapi checks that the document's issuer is the one asked for.
  const issuer = new URL(server.issuer);
  const res = await oauth.discoveryRequest(issuer, { algorithm: 'oidc', [oauth.allowInsecureRequests]: true });
  const as = await oauth.processDiscoveryResponse(issuer, res);
  assert.equal(as.issuer, server.issuer);
  assert.equal(as.introspection_endpoint, `${server.issuer}/oauth/introspect`);
  // RFC 8414's document is the same.
  const rfc8414 = await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', [oauth.allowInsecureRequests]: true });
  assert.equal((await oauth.processDiscoveryResponse(issuer, rfc8414)).issuer, server.issuer);
});

test('client_credentials, introspection and revocation through openid-client (client_secret_basic)', async () => {
  const { client_id: id, client_secret: secret } = server.cli('clients', 'add', '--name', 'machine', '--grant', 'client_credentials');
  const config = await discover(id, secret, client.ClientSecretBasic(secret));
  const tokens = await client.clientCredentialsGrant(config);
  assert.equal(tokens.token_type.toLowerCase(), 'bearer');
  assert.ok(tokens.expires_in > 0);
  const active = await client.tokenIntrospection(config, tokens.access_token);
  assert.equal(active.active, true);
  assert.equal(active.client_id, id);
  assert.equal(active.sub, id);
  assert.equal(active.iss, server.issuer);
  const garbage = await client.tokenIntrospection(config, 'not-a-token');
  assert.deepEqual(garbage, { active: false });
  // Revoking a machine token has no session to end: the answer is 200 all the same.
  await client.tokenRevocation(config, tokens.access_token);
  // A wrong secret: 401 with RFC 6749's Basic challenge, which the library surfaces.
  const wrong = await discover(id, 'x'.repeat(43), client.ClientSecretBasic('x'.repeat(43)));
  await assert.rejects(client.clientCredentialsGrant(wrong), (e) => {
    assert.equal(e.status, 401);
    assert.equal(e.code, 'OAUTH_WWW_AUTHENTICATE_CHALLENGE');
    assert.equal(e.cause[0].scheme, 'basic');
    return true;
  });
});

test('client_credentials with oauth4webapi (client_secret_post)', async () => {
  const { client_id: id, client_secret: secret } = server.cli('clients', 'add', '--name', 'post',
    '--grant', 'client_credentials', '--token-endpoint-auth-method', 'client_secret_post');
  const issuer = new URL(server.issuer);
  const as = await oauth.processDiscoveryResponse(issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oidc', [oauth.allowInsecureRequests]: true }));
  const c = { client_id: id };
  const auth = oauth.ClientSecretPost(secret);
  const res = await oauth.clientCredentialsGrantRequest(as, c, auth, new URLSearchParams(), { [oauth.allowInsecureRequests]: true });
  const tokens = await oauth.processClientCredentialsResponse(as, c, res);
  assert.equal(tokens.token_type, 'bearer');
  const intro = await oauth.introspectionRequest(as, c, auth, tokens.access_token, { [oauth.allowInsecureRequests]: true });
  const answer = await oauth.processIntrospectionResponse(as, c, intro);
  assert.equal(answer.active, true);
  assert.equal(answer.client_id, id);
});

test('private_key_jwt: openid-client signs the client assertion, once per request', async () => {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'interop-1', alg: 'ES256', use: 'sig' };
  const { client_id: id } = server.cli('clients', 'add', '--name', 'pkjwt', '--grant', 'client_credentials',
    '--token-endpoint-auth-method', 'private_key_jwt', '--jwks', JSON.stringify({ keys: [jwk] }));
  const config = await discover(id, undefined, client.PrivateKeyJwt({ key: privateKey, kid: 'interop-1' }));
  const first = await client.clientCredentialsGrant(config);
  const second = await client.clientCredentialsGrant(config);
  assert.notEqual(first.access_token, second.access_token);
  const intro = await client.tokenIntrospection(config, first.access_token);
  assert.equal(intro.active, true);
  assert.equal(intro.client_id, id);
  // Another key is refused.
  const other = await generateKeyPair('ES256');
  const impostor = await discover(id, undefined, client.PrivateKeyJwt({ key: other.privateKey, kid: 'interop-1' }));
  await assert.rejects(client.clientCredentialsGrant(impostor), (e) => e.status === 401);
});

for (const alg of ['RS256', 'ES256']) {
  test(`code exchange with PKCE (${alg} ID token checked by openid-client), UserInfo, refresh, revocation`, async () => {
    const redirectUri = 'http://127.0.0.1:9/callback';
    const { client_id: id, client_secret: secret } = server.cli('clients', 'add', '--name', `web-${alg}`,
      '--redirect-uri', redirectUri, '--id-token-signed-response-alg', alg);
    const config = await discover(id, { client_secret: secret, id_token_signed_response_alg: alg },
      client.ClientSecretBasic(secret));
    const person = await account();
    const verifier = client.randomPKCECodeVerifier();
    const nonce = client.randomNonce();
    const state = client.randomState();
    const scope = 'openid email offline_access';
    const code = authorizationCode({
      clientId: id, accountId: person.id, redirectUri, scope, nonce,
      challenge: await client.calculatePKCECodeChallenge(verifier),
    });
    // The browser's return, as /authorize answers (RFC 9207's iss included).
    const callback = new URL(`${redirectUri}?code=${code}&state=${state}&iss=${encodeURIComponent(server.issuer)}`);
    const tokens = await client.authorizationCodeGrant(config, callback,
      { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true });
    const claims = tokens.claims();
    assert.equal(claims.iss, server.issuer);
    assert.equal(claims.sub, person.id);
    assert.equal(claims.aud, id);
    assert.equal(claims.nonce, nonce);
    assert.equal(claims.email, person.email);
    assert.ok(claims.sid);
    assert.equal(JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url')).alg, alg);
    assert.ok(tokens.refresh_token);
    const info = await client.fetchUserInfo(config, tokens.access_token, person.id);
    assert.equal(info.sub, person.id);
    assert.equal(info.email, person.email);
    // The code is single use: the library gets the spec's error.
    await assert.rejects(client.authorizationCodeGrant(config, callback,
      { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state }), (e) => e.error === 'invalid_grant');
    // The replay ended the session its tokens belong to: the refresh token is refused.
    await assert.rejects(client.refreshTokenGrant(config, tokens.refresh_token), (e) => e.error === 'invalid_grant');

    // A second sign-in: refresh, then revocation ends the session.
    const verifier2 = client.randomPKCECodeVerifier();
    const code2 = authorizationCode({
      clientId: id, accountId: person.id, redirectUri, scope, nonce,
      challenge: await client.calculatePKCECodeChallenge(verifier2),
    });
    const tokens2 = await client.authorizationCodeGrant(config,
      new URL(`${redirectUri}?code=${code2}&iss=${encodeURIComponent(server.issuer)}`),
      { pkceCodeVerifier: verifier2, expectedNonce: nonce });
    const refreshed = await client.refreshTokenGrant(config, tokens2.refresh_token);
    assert.notEqual(refreshed.refresh_token, tokens2.refresh_token);
    assert.equal((await client.tokenIntrospection(config, refreshed.access_token)).active, true);
    await client.tokenRevocation(config, refreshed.refresh_token);
    assert.deepEqual(await client.tokenIntrospection(config, refreshed.access_token), { active: false });
    await assert.rejects(client.fetchUserInfo(config, refreshed.access_token, person.id));
  });
}

test('a code exchange without the PKCE verifier is refused with invalid_grant (oauth4webapi)', async () => {
  const redirectUri = 'http://127.0.0.1:9/callback';
  const { client_id: id, client_secret: secret } = server.cli('clients', 'add', '--name', 'pkce', '--redirect-uri', redirectUri);
  const person = await account();
  const verifier = oauth.generateRandomCodeVerifier();
  const code = authorizationCode({
    clientId: id, accountId: person.id, redirectUri, scope: 'openid', nonce: 'n-1',
    challenge: await oauth.calculatePKCECodeChallenge(verifier),
  });
  const issuer = new URL(server.issuer);
  const as = await oauth.processDiscoveryResponse(issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oidc', [oauth.allowInsecureRequests]: true }));
  const c = { client_id: id };
  const params = oauth.validateAuthResponse(as, c, new URL(`${redirectUri}?code=${code}&iss=${encodeURIComponent(server.issuer)}`));
  const wrongVerifier = oauth.generateRandomCodeVerifier();
  const res = await oauth.authorizationCodeGrantRequest(as, c, oauth.ClientSecretBasic(secret), params, redirectUri, wrongVerifier,
    { [oauth.allowInsecureRequests]: true });
  await assert.rejects(oauth.processAuthorizationCodeResponse(as, c, res, { expectedNonce: 'n-1' }), (e) => {
    assert.equal(e.error, 'invalid_grant');
    assert.equal(e.status, 400);
    return true;
  });
});
