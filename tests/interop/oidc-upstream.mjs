// A real OpenID provider on loopback for the social sign-in tests: panva's
// oidc-provider (certified), with its own signing keys (RS256 and ES256), one client per
// Gatehouse provider, and an interaction that signs in at once whoever the test names
// next (no consent screen: the grant is made for the client's scopes). Also starts
// Gatehouse (GATEHOUSE_BIN) configured with `[[social.providers]]` that point at it.
// Shared by tests/interop/social.test.mjs (the API flow) and tests/browser/social.test.mjs
// (the hosted pages in chromium), which imports it from here (oidc-provider is a
// package of tests/interop).
import { createServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Provider from 'oidc-provider';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A port free on loopback now (for a server whose settings must name its own port). */
export async function freePort() {
  const server = createNetServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function signingKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: 'up-rsa', use: 'sig', alg: 'RS256' },
    { ...ec, kid: 'up-ec', use: 'sig', alg: 'ES256' },
  ];
}

/**
 * Starts oidc-provider on 127.0.0.1. `clients`: [{ client_id, client_secret,
 * redirect_uri, alg }] (alg signs that client's ID tokens). Returns its issuer,
 * `signInAs({ sub, email, email_verified, name })` (who the next authorization signs
 * in), what it has seen, and `stop()`.
 */
export async function startUpstream(clients) {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  let next = null;
  const people = new Map();
  const seen = { authorizations: 0, tokens: 0, userinfo: 0 };
  const provider = new Provider(issuer, {
    clients: clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      redirect_uris: [c.redirect_uri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
      id_token_signed_response_alg: c.alg,
    })),
    jwks: { keys: signingKeys() },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    // conformIdTokenClaims is left on (oidc-provider's default, OpenID Connect Core
    // §5.4): with an access token issued, the scopes' claims (email, name) are only at
    // the userinfo endpoint, not in the ID token, and Gatehouse reads them there.
    features: { devInteractions: { enabled: false } },
    pkce: { required: () => true },
    ttl: { Interaction: 600, Session: 600, Grant: 600, AccessToken: 600, IdToken: 600 },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, sub) {
      const person = people.get(sub);
      if (!person) return undefined;
      return { accountId: sub, claims: async () => ({ ...person }) };
    },
    // A first-party client: its scopes are granted without a consent screen.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope('openid email profile');
      await grant.save();
      return grant;
    },
  });
  provider.on('authorization.success', () => { seen.authorizations += 1; });
  provider.on('grant.success', () => { seen.tokens += 1; });
  const callback = provider.callback();
  const server = createServer(async (req, res) => {
    if (req.url === '/me' || req.url.startsWith('/me?')) seen.userinfo += 1;
    if (!req.url.startsWith('/interaction/')) return callback(req, res);
    try {
      await provider.interactionDetails(req, res);
      if (!next) throw new Error('the test named no one to sign in');
      people.set(next.sub, next);
      await provider.interactionFinished(req, res, { login: { accountId: next.sub } }, { mergeWithLastSubmission: false });
    } catch (e) {
      res.statusCode = 500;
      res.end(String(e));
    }
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    issuer,
    seen,
    signInAs(person) { next = person; },
    stop: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

/** The server's environment: only the settings given (none of the caller's GATEHOUSE_*). */
function environment(settings) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GATEHOUSE_')));
  return { ...env, ...settings };
}

/** A TOML inline table of `[[social.providers]]` settings, for GATEHOUSE_SOCIAL__PROVIDERS. */
const inlineTable = (o) => `{${Object.entries(o).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`;

/**
 * Starts Gatehouse (`bin`) on `port` with http.public_url `publicUrl`, a fresh data
 * directory, `providers` as its `[[social.providers]]` and `settings`; waits until it
 * answers on its own "listening" line's address.
 */
export async function startGatehouse(bin, { port, publicUrl, providers, settings = {} }) {
  const data = mkdtempSync(join(tmpdir(), 'gatehouse-social-'));
  const env = environment({
    GATEHOUSE_HTTP__PUBLIC_URL: publicUrl,
    GATEHOUSE_SOCIAL__PROVIDERS: `[${providers.map(inlineTable).join(',')}]`,
    GATEHOUSE_RATE_LIMIT__ENABLED: 'false',
    GATEHOUSE_ARGON2__MEMORY_KIB: '4096',
    ...settings,
  });
  const child = spawn(bin, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', data], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (chunk) => { log += chunk; });
  const base = `http://127.0.0.1:${port}`;
  let up = false;
  for (let i = 0; i < 100 && child.exitCode === null && !up; i++) {
    if (new RegExp(`listening.*address=127\\.0\\.0\\.1:${port}`).test(log)) {
      try { up = (await fetch(`${base}/health`)).ok; } catch { /* not yet */ }
    }
    if (!up) await sleep(100);
  }
  if (!up) throw new Error(`gatehouse did not start:\n${log}`);
  const stop = () => { child.kill('SIGTERM'); rmSync(data, { recursive: true, force: true }); };
  return { base, data, stop, log: () => log };
}
