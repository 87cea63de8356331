// Gatehouse's account tokens, as an integrator verifies them: with jwt-simple,
// exactly as the seed's "JWT Validation" section says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import jwt from 'jwt-simple';
import { base, secret, post, uniqueEmail } from './lib.mjs';

test('register and login tokens verify with jwt-simple HS512', async () => {
  const email = uniqueEmail();
  const reg = await post('/auth/register', { email, password: 'password123' });
  assert.equal(reg.status, 200);
  assert.deepEqual(Object.keys(reg.body).sort(), ['expires_in', 'refresh_token', 'token', 'token_type']);
  assert.equal(reg.body.token_type, 'Bearer');
  assert.equal(reg.body.expires_in, 900);
  assert.equal(reg.headers.get('cache-control'), 'no-store');

  const claims = jwt.decode(reg.body.token, secret, false, 'HS512');
  assert.equal(claims.email, email);
  assert.equal(claims.email_verified, false);
  assert.equal(claims.iss, 'gatehouse');
  assert.equal(claims.exp - claims.iat, 900);
  assert.match(claims.sub, /^[0-9a-f-]{36}$/);
  assert.match(claims.jti, /^[0-9a-f]{32}$/);
  assert.match(claims.sid, /^[0-9a-f]{32}$/);
  assert.equal(claims.auth_time, claims.iat);

  const login = await post('/auth/login', { email, password: 'password123' });
  assert.equal(login.status, 200);
  const again = jwt.decode(login.body.token, secret, false, 'HS512');
  assert.equal(again.sub, claims.sub);

  const me = await fetch(`${base}/auth/me`, { headers: { authorization: `Bearer ${login.body.token}` } });
  assert.equal(me.status, 200);
  const account = await me.json();
  assert.equal(account.id, claims.sub);
  assert.equal(account.email_verified, false);
  assert.deepEqual(account.sign_in_methods, [{ method: 'password' }]);
});

test('a refreshed token verifies with jwt-simple, keeps its session and sign-in time', async () => {
  const email = uniqueEmail();
  const reg = await post('/auth/register', { email, password: 'password123' });
  const first = jwt.decode(reg.body.token, secret, false, 'HS512');
  const next = await post('/auth/refresh', { refresh_token: reg.body.refresh_token });
  assert.equal(next.status, 200);
  assert.notEqual(next.body.refresh_token, reg.body.refresh_token);
  const claims = jwt.decode(next.body.token, secret, false, 'HS512');
  assert.equal(claims.sub, first.sub);
  assert.equal(claims.sid, first.sid);
  assert.equal(claims.auth_time, first.auth_time);

  const out = await fetch(`${base}/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${next.body.token}` } });
  assert.equal(out.status, 204);
  const me = await fetch(`${base}/auth/me`, { headers: { authorization: `Bearer ${next.body.token}` } });
  assert.equal(me.status, 401);
  assert.deepEqual(await me.json(), { message: 'A valid bearer token is required.' });
  // Still a well-signed, unexpired token: integrators verifying on their own accept it
  // until it expires, which is why it lives 15 minutes.
  assert.equal(jwt.decode(next.body.token, secret, false, 'HS512').sid, first.sid);
});

test('jwt-simple rejects a tampered token, a wrong secret and another algorithm', async () => {
  const email = uniqueEmail();
  const { body } = await post('/auth/register', { email, password: 'password123' });
  const [h, p, s] = body.token.split('.');
  const payload = JSON.parse(Buffer.from(p, 'base64url'));
  payload.sub = 'someone-else';
  const tampered = [h, Buffer.from(JSON.stringify(payload)).toString('base64url'), s].join('.');
  assert.throws(() => jwt.decode(tampered, secret, false, 'HS512'), /Signature verification failed/);
  const flipped = `${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`;
  assert.throws(() => jwt.decode(flipped, secret, false, 'HS512'), /Signature verification failed/);
  assert.throws(() => jwt.decode(body.token, `${secret}x`, false, 'HS512'), /Signature verification failed/);
  // Our own token verified as HS256 fails: the algorithm is part of the check.
  assert.throws(() => jwt.decode(body.token, secret, false, 'HS256'), /Signature verification failed/);
});

test('a token jwt-simple signs with the secret but HS256 is refused by the server', async () => {
  const email = uniqueEmail();
  const { body } = await post('/auth/register', { email, password: 'password123' });
  const claims = jwt.decode(body.token, secret, false, 'HS512');
  for (const alg of ['HS256', 'HS384']) {
    const forged = jwt.encode(claims, secret, alg);
    const res = await fetch(`${base}/auth/me`, { headers: { authorization: `Bearer ${forged}` } });
    assert.equal(res.status, 401);
    // RFC 6750: a token was given and refused, so the challenge says why.
    assert.equal(
      res.headers.get('www-authenticate'),
      'Bearer error="invalid_token", error_description="The access token is invalid"',
    );
    assert.deepEqual(await res.json(), { message: 'A valid bearer token is required.' });
  }
  const same = jwt.encode(claims, secret, 'HS512');
  const ok = await fetch(`${base}/auth/me`, { headers: { authorization: `Bearer ${same}` } });
  assert.equal(ok.status, 200);
});
