// The second factor with codes from otplib, the TOTP library most Node servers and
// clients use: an authenticator set up from Gatehouse's otpauth URI produces codes
// Gatehouse accepts, once each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import jwt from 'jwt-simple';
import { authenticator } from 'otplib';
import { base, secret, post, uniqueEmail } from './lib.mjs';

/** otplib's code for the secret (base32) at `at` (milliseconds since the epoch). */
function codeAt(totpSecret, at) {
  const generator = authenticator.clone({ epoch: at });
  return generator.generate(totpSecret);
}

/** Now, a few seconds clear of a step's end, so that the previous and the current
 * step's codes both stay within the server's drift while the test runs. */
async function clearOfAStepEnd() {
  const left = 30 - (Math.floor(Date.now() / 1000) % 30);
  if (left < 5) await new Promise((r) => setTimeout(r, (left + 1) * 1000));
  return Date.now();
}

test('an authenticator set up from the otpauth URI signs in with otplib codes, each once', async () => {
  const email = uniqueEmail();
  const reg = await post('/auth/register', { email, password: 'password123' });
  assert.equal(reg.status, 200);
  const bearer = { authorization: `Bearer ${reg.body.token}` };

  const enrol = await post('/auth/mfa/totp', {}, bearer);
  assert.equal(enrol.status, 200);
  const uri = new URL(enrol.body.otpauth_uri);
  assert.equal(uri.protocol, 'otpauth:');
  const totpSecret = uri.searchParams.get('secret');
  assert.equal(totpSecret, enrol.body.secret);
  assert.match(enrol.body.qr_svg, /<svg/);

  const now = await clearOfAStepEnd();
  const confirm = await post('/auth/mfa/totp/confirm', { code: codeAt(totpSecret, now - 30_000) }, bearer);
  assert.equal(confirm.status, 200);
  assert.equal(confirm.body.recovery_codes.length, 10);

  const login = await post('/auth/login', { email, password: 'password123' });
  assert.equal(login.status, 200);
  assert.equal(login.body.mfa_required, true);
  assert.deepEqual(login.body.methods, ['totp', 'recovery_code']);
  assert.equal(login.body.token, undefined);

  const code = codeAt(totpSecret, now);
  const verified = await post('/auth/mfa/verify', { mfa_token: login.body.mfa_token, code });
  assert.equal(verified.status, 200);
  const claims = jwt.decode(verified.body.token, secret, false, 'HS512');
  assert.deepEqual(claims.amr, ['pwd', 'otp', 'mfa']);
  assert.equal(claims.acr, 'aal2');

  const again = await post('/auth/login', { email, password: 'password123' });
  const replay = await post('/auth/mfa/verify', { mfa_token: again.body.mfa_token, code });
  assert.equal(replay.status, 401);
  assert.equal(replay.body.error, 'invalid_code');

  const me = await fetch(`${base}/auth/me`, { headers: { authorization: `Bearer ${verified.body.token}` } });
  assert.equal(me.status, 200);
  assert.deepEqual((await me.json()).second_factors, { totp: true, recovery_codes_left: 10 });
});
