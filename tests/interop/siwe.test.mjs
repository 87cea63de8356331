// Sign-In with Ethereum against the real server, as a dapp does it: the page gets a
// nonce, the JS `siwe` package builds the EIP-4361 message, an ethers v6 wallet signs
// it (`Wallet.signMessage`, EIP-191), and the page posts both. The account token is
// checked with jwt-simple, as integrators check it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import jwt from 'jwt-simple';
import { Wallet } from 'ethers';
import { SiweMessage } from 'siwe';
import { base, secret, post } from './lib.mjs';

// The server's siwe.domains (scripts/interop.sh sets it): http://localhost:8080.
const site = { scheme: 'http', domain: 'localhost:8080', uri: 'http://localhost:8080/login' };

async function nonce() {
  const res = await fetch(`${base}/auth/siwe/nonce`);
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.match(body.nonce, /^[0-9a-f]{32}$/);
  return body.nonce;
}

/** The message the `siwe` package writes for `wallet`, with `fields` changed. */
async function signedMessage(wallet, fields = {}) {
  const message = new SiweMessage({
    ...site,
    address: wallet.address,
    statement: 'Sign in to Gatehouse',
    version: '1',
    chainId: 1,
    nonce: await nonce(),
    issuedAt: new Date().toISOString(),
    ...fields,
  });
  const text = message.prepareMessage();
  return { message: text, signature: await wallet.signMessage(text) };
}

test('an ethers wallet signs a siwe message in, and the token verifies with jwt-simple', async () => {
  const wallet = Wallet.createRandom();
  const signed = await signedMessage(wallet, {
    expirationTime: new Date(Date.now() + 600_000).toISOString(),
    resources: ['https://example.com/terms'],
  });
  // The JS library accepts its own message and signature, and so does the server.
  const parsed = new SiweMessage(signed.message);
  const verified = await parsed.verify({ signature: signed.signature, domain: site.domain, nonce: parsed.nonce });
  assert.equal(verified.success, true);
  const { status, body } = await post('/auth/siwe', signed);
  assert.equal(status, 200, JSON.stringify(body));
  const claims = jwt.decode(body.token, secret, false, 'HS512');
  assert.equal(typeof claims.sub, 'string');
  assert.ok(claims.exp > Date.now() / 1000);

  // The same wallet again: the same account.
  const again = await post('/auth/siwe', await signedMessage(wallet));
  assert.equal(again.status, 200, JSON.stringify(again.body));
  assert.equal(jwt.decode(again.body.token, secret, false, 'HS512').sub, claims.sub);
  const me = await fetch(`${base}/auth/me`, { headers: { authorization: `Bearer ${again.body.token}` } });
  const account = await me.json();
  assert.equal(account.sign_in_methods[0].address, wallet.address.toLowerCase());
});

test('a message for another domain, another chain, an expired one and a reused nonce are refused', async () => {
  const wallet = Wallet.createRandom();
  const cases = [
    ['domain_mismatch', { domain: 'evil.example', uri: 'http://evil.example/login', scheme: undefined }],
    ['scheme_mismatch', { scheme: 'https' }],
    ['uri_mismatch', { uri: 'http://evil.example/login' }],
    ['chain_not_allowed', { chainId: 137 }],
    ['expired', { expirationTime: new Date(Date.now() - 1000).toISOString() }],
    ['not_yet_valid', { notBefore: new Date(Date.now() + 600_000).toISOString() }],
  ];
  for (const [code, fields] of cases) {
    const { status, body } = await post('/auth/siwe', await signedMessage(wallet, fields));
    assert.deepEqual([status, body.code], [401, code], JSON.stringify(body));
    assert.ok(body.message.length > 0);
  }
  const signed = await signedMessage(wallet);
  const first = await post('/auth/siwe', signed);
  assert.equal(first.status, 200, JSON.stringify(first.body));
  const reused = await post('/auth/siwe', signed);
  assert.deepEqual([reused.status, reused.body.code], [401, 'invalid_nonce']);
  // Another wallet's signature of the message.
  const other = await signedMessage(wallet);
  other.signature = await Wallet.createRandom().signMessage(other.message);
  const mismatch = await post('/auth/siwe', other);
  assert.deepEqual([mismatch.status, mismatch.body.code], [401, 'signature_mismatch']);
});

test('50 concurrent submissions of one signed message make exactly one session', async () => {
  const signed = await signedMessage(Wallet.createRandom());
  const results = await Promise.all(Array.from({ length: 50 }, () => post('/auth/siwe', signed)));
  const ok = results.filter((r) => r.status === 200);
  assert.equal(ok.length, 1, JSON.stringify(results.map((r) => r.status)));
  for (const r of results.filter((r) => r.status !== 200)) {
    assert.deepEqual([r.status, r.body.code], [401, 'invalid_nonce']);
  }
  jwt.decode(ok[0].body.token, secret, false, 'HS512');
});
