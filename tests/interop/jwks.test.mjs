// Asymmetric account tokens as an integrator verifies them: with jose's
// createRemoteJWKSet against /.well-known/jwks.json, caching the key set for exactly the
// max-age the server announces (and never refetching sooner, even for a kid it does
// not know), before, during and after `gatehouse keys rotate`: no verification fails.
// Each algorithm gets a server of its own (GATEHOUSE_BIN), started here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, jwtVerify, generateKeyPair, SignJWT, errors } from 'jose';
import { uniqueEmail } from './lib.mjs';

const bin = process.env.GATEHOUSE_BIN;
if (!bin) throw new Error('GATEHOUSE_BIN must be set (scripts/interop.sh sets it)');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The server's environment: only the settings given (none of the caller's GATEHOUSE_*). */
function environment(settings) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GATEHOUSE_')));
  return { ...env, ...settings };
}

/**
 * Starts the binary on port 0 and waits for its own "listening … address=…" line: the
 * port it bound, so a server already answering elsewhere is never taken for it.
 */
async function startServer(algorithm) {
  const data = mkdtempSync(join(tmpdir(), 'gatehouse-jwks-'));
  const env = environment({
    GATEHOUSE_JWT__ALGORITHM: algorithm,
    GATEHOUSE_JWT__JWKS_MAX_AGE_SECS: '2',
    GATEHOUSE_RATE_LIMIT__ENABLED: 'false',
    GATEHOUSE_ARGON2__MEMORY_KIB: '4096',
  });
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--data-dir', data], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (chunk) => { log += chunk; });
  let base;
  for (let i = 0; i < 100 && child.exitCode === null; i++) {
    const address = /listening.*address=(127\.0\.0\.1:\d+)/.exec(log)?.[1];
    if (address) {
      base = `http://${address}`;
      try {
        if ((await fetch(`${base}/health`)).ok) break;
      } catch { /* not up yet */ }
    }
    await sleep(100);
  }
  if (!base) throw new Error(`the server did not say where it listens:\n${log}`);
  const keys = (command) => execFileSync(bin, ['keys', command, '--data-dir', data], { env, encoding: 'utf8' });
  const stop = () => { child.kill('SIGTERM'); rmSync(data, { recursive: true, force: true }); };
  return { base, keys, stop, log: () => log };
}

async function post(base, path, body) {
  const res = await fetch(`${base}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

const kidOf = (token) => JSON.parse(Buffer.from(token.split('.')[0], 'base64url')).kid;

for (const algorithm of ['EdDSA', 'ES256']) {
  test(`${algorithm} tokens verify with jose's remote JWKS across a rotation`, async () => {
    const server = await startServer(algorithm);
    try {
      const { base } = server;
      const res = await fetch(`${base}/.well-known/jwks.json`);
      assert.equal(res.status, 200);
      const cacheControl = res.headers.get('cache-control');
      const maxAge = Number(/max-age=(\d+)/.exec(cacheControl)[1]);
      assert.equal(maxAge, 2, cacheControl);
      // A verifier that trusts its cached key set for the whole max-age: a token signed
      // with a key it has not cached would fail, rather than trigger a refetch.
      const jwks = createRemoteJWKSet(new URL('/.well-known/jwks.json', base), {
        cacheMaxAge: maxAge * 1000, cooldownDuration: maxAge * 1000,
      });
      const verify = async (token) => (await jwtVerify(token, jwks, { issuer: 'gatehouse', algorithms: [algorithm] })).payload;

      const email = uniqueEmail();
      const first = await post(base, '/auth/register', { email, password: 'password123' });
      assert.equal(first.status, 200);
      const claims = await verify(first.body.token);
      assert.equal(claims.email, email);
      assert.match(claims.sid, /^[0-9a-f]{32}$/);
      assert.equal(claims.exp - claims.iat, 900);
      const before = kidOf(first.body.token);

      const rotated = server.keys('rotate');
      assert.match(rotated, /^published [0-9a-f]{32} \(account, (EdDSA|ES256)\): signs from /, rotated);
      const next = rotated.split(' ')[1];
      assert.notEqual(next, before);
      assert.match(server.keys('list'), new RegExp(`${next}\\s+account\\s+${algorithm}\\s+next`));

      // Sign in and refresh for twice the max-age, verifying every token at once.
      const seen = new Set();
      let refresh = first.body.refresh_token;
      const tokens = [first.body.token];
      const until = Date.now() + 2 * maxAge * 1000 + 1000;
      while (Date.now() < until) {
        const login = await post(base, '/auth/login', { email, password: 'password123' });
        assert.equal(login.status, 200);
        const refreshed = await post(base, '/auth/refresh', { refresh_token: refresh });
        assert.equal(refreshed.status, 200);
        refresh = refreshed.body.refresh_token;
        for (const token of [login.body.token, refreshed.body.token]) {
          assert.equal((await verify(token)).sub, claims.sub);
          seen.add(kidOf(token));
          tokens.push(token);
        }
        await sleep(150);
      }
      assert.deepEqual([...seen].sort(), [before, next].sort(), 'both keys signed, in turn');
      assert.equal(kidOf(tokens.at(-1)), next, 'the new key signs by the end');
      // Every token, the old key's too, still verifies with jose and with the server.
      for (const token of [first.body.token, tokens.at(-1)]) {
        assert.equal((await verify(token)).sub, claims.sub);
        const me = await fetch(`${base}/auth/me`, { headers: { authorization: `Bearer ${token}` } });
        assert.equal(me.status, 200);
        assert.equal((await me.json()).id, claims.sub);
      }
      assert.match(server.keys('list'), new RegExp(`${before}\\s+account\\s+${algorithm}\\s+retiring`));

      // A token of a key nobody published: jose finds no key, the server refuses it.
      const { privateKey } = await generateKeyPair(algorithm);
      const forged = await new SignJWT({ sid: claims.sid, auth_time: claims.auth_time })
        .setProtectedHeader({ alg: algorithm, kid: '0123456789abcdef0123456789abcdef' })
        .setSubject(claims.sub).setIssuer('gatehouse').setIssuedAt().setExpirationTime('5m').setJti('x')
        .sign(privateKey);
      await assert.rejects(verify(forged), errors.JWKSNoMatchingKey);
      const me = await fetch(`${base}/auth/me`, { headers: { authorization: `Bearer ${forged}` } });
      assert.equal(me.status, 401);
      assert.deepEqual(await me.json(), { message: 'A valid bearer token is required.' });
    } finally {
      server.stop();
    }
  });
}
