// OwnID's cloud calling Gatehouse: requests signed with node's crypto exactly as the
// protocol describes (HMAC-SHA256 under the base64-decoded shared secret, over the raw
// body, ".", and the millisecond timestamp), and the session token checked with
// jwt-simple as an integrator would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import jwt from 'jwt-simple';
import { base, secret, post, uniqueEmail } from './lib.mjs';

const ownidSecret = process.env.GATEHOUSE_OWNID_SECRET;
if (!ownidSecret) {
  throw new Error('GATEHOUSE_OWNID_SECRET must be set (scripts/interop.sh sets it)');
}

let lastTimestamp = 0;

/** Signs and POSTs `raw` (a string, sent byte for byte) to an OwnID call. */
async function ownid(name, raw, key = ownidSecret) {
  // Strictly increasing, so two calls in one millisecond are not an exact replay.
  lastTimestamp = Math.max(Date.now(), lastTimestamp + 1);
  const timestamp = String(lastTimestamp);
  const signature = createHmac('sha256', Buffer.from(key, 'base64'))
    .update(Buffer.concat([Buffer.from(raw, 'utf8'), Buffer.from(`.${timestamp}`)]))
    .digest('base64');
  const request = {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'ownid-signature': signature,
      'ownid-timestamp': timestamp,
    },
    body: raw,
  };
  const send = async () => {
    const res = await fetch(`${base}/ownid/${name}`, request);
    return { status: res.status, headers: res.headers, text: await res.text() };
  };
  return { ...(await send()), replay: send };
}

test('a passwordless account: ownIdData set and read, and a session jwt-simple verifies', async () => {
  const email = uniqueEmail();
  const reg = await post('/auth/register', { email, ownIdData: 'registration-credential' });
  assert.equal(reg.status, 200);
  const registered = jwt.decode(reg.body.token, secret, false, 'HS512');

  const refused = await post('/auth/login', { email, password: 'password123' });
  assert.equal(refused.status, 401);
  assert.deepEqual(refused.body, { message: 'Invalid credentials' });

  let got = await ownid('getOwnIDDataByLoginId', JSON.stringify({ loginId: email }));
  assert.equal(got.status, 200);
  assert.deepEqual(JSON.parse(got.text), { ownIdData: 'registration-credential' });

  // Non-ASCII data, keys in another order, spacing: the signature is over these bytes.
  const data = 'clé 🔑 данные';
  const set = await ownid('setOwnIDDataByLoginId', `{ "ownIdData": ${JSON.stringify(data)},\n "loginId": "${email.toUpperCase()}" }`);
  assert.equal(set.status, 204);
  assert.equal(set.text, '');

  got = await ownid('getownIDdatabyloginid', JSON.stringify({ loginId: email }));
  assert.equal(got.status, 200);
  assert.deepEqual(JSON.parse(got.text), { ownIdData: data });

  const session = await ownid('getSessionByLoginId', JSON.stringify({ loginId: email, sessionType: 'browser' }));
  assert.equal(session.status, 200);
  assert.equal(session.headers.get('cache-control'), 'no-store');
  const { token } = JSON.parse(session.text);
  const claims = jwt.decode(token, secret, false, 'HS512');
  assert.equal(claims.sub, registered.sub);
  assert.equal(claims.email, email);
  assert.equal(claims.iss, 'gatehouse');

  const me = await fetch(`${base}/auth/me`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(me.status, 200);
  const account = await me.json();
  assert.equal(account.id, claims.sub);
  assert.deepEqual(account.sign_in_methods, [{ method: 'ownid' }]);

  // The exact same request again: refused, with an empty body.
  const replayed = await session.replay();
  assert.equal(replayed.status, 401);
  assert.equal(replayed.text, '');
});

test('unknown accounts, wrong secrets and tampered bodies', async () => {
  const unknown = await ownid('getSessionByLoginId', JSON.stringify({ loginId: uniqueEmail() }));
  assert.equal(unknown.status, 404);
  assert.equal(unknown.text, '');

  const email = uniqueEmail();
  await post('/auth/register', { email, password: 'password123' });
  const none = await ownid('getOwnIDDataByLoginId', JSON.stringify({ loginId: email }));
  assert.equal(none.status, 204);
  assert.equal(none.text, '');

  const wrongKey = Buffer.alloc(32, 7).toString('base64');
  const wrong = await ownid('getSessionByLoginId', JSON.stringify({ loginId: email }), wrongKey);
  assert.equal(wrong.status, 401);
  assert.equal(wrong.text, '');

  const body = JSON.stringify({ loginId: email, ownIdData: 'mine' });
  const timestamp = String(Date.now());
  const signature = createHmac('sha256', Buffer.from(ownidSecret, 'base64')).update(`${body}.${timestamp}`).digest('base64');
  const tampered = await fetch(`${base}/ownid/setOwnIDDataByLoginId`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'ownid-signature': signature, 'ownid-timestamp': timestamp },
    body: body.replace('mine', 'yours'),
  });
  assert.equal(tampered.status, 401);
  assert.equal(await tampered.text(), '');
  const still = await ownid('getOwnIDDataByLoginId', JSON.stringify({ loginId: email }));
  assert.equal(still.status, 204);
});
