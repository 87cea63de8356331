// Answers given before the request body was read are read by Node's own fetch
// (undici), as a wallet or a page would send them: no EPIPE, no reset, every try a
// status and a JSON body. (Closing with the body unread makes the kernel reset the
// connection; the server closes them lingering, so the client reads the answer.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { base } from './lib.mjs';

const TRIES = Number(process.env.EARLY_ANSWER_TRIES || 200);
const root = `${base}/api/v1/selfkey`;
const emailSchema = 'http://platform.selfkey.org/schema/attribute/email.json';

/** Sends `tries` requests one after another; returns the failures, counted by kind. */
async function everyTry(tries, send, check) {
  const failures = {};
  for (let i = 0; i < tries; i += 1) {
    try {
      const res = await send();
      const text = await res.text();
      check(res.status, JSON.parse(text));
    } catch (e) {
      const kind = e.cause?.code || e.code || e.name;
      failures[kind] = (failures[kind] || 0) + 1;
      if (failures[kind] === 1) console.log(`try ${i}:`, e.cause || e);
    }
  }
  return failures;
}

test(`a multipart sign-up with a challenge token instead of a wallet token: ${TRIES} tries, each a 400 invalid_token`, async () => {
  const res = await fetch(`${root}/auth/challenge`, { headers: { origin: 'IDW' } });
  assert.equal(res.status, 200);
  const challengeToken = (await res.json()).jwt;
  const attributes = [{ id: emailSchema, schemaId: emailSchema, data: { value: 'ada@example.com' }, documents: [1] }];
  const scan = Buffer.alloc(256 * 1024, 7);
  const failures = await everyTry(TRIES, () => {
    const form = new FormData();
    form.append('attributes', new Blob([JSON.stringify(attributes)], { type: 'application/json' }));
    form.append('$document-1', new Blob([scan], { type: 'application/pdf' }), 'scan.pdf');
    return fetch(`${root}/users`, {
      method: 'POST',
      headers: { origin: 'IDW', authorization: `Bearer ${challengeToken}` },
      body: form,
    });
  }, (status, body) => {
    assert.equal(status, 400);
    assert.equal(body.code, 'invalid_token');
    assert.equal(typeof body.message, 'string');
  });
  assert.deepEqual(failures, {});
});

test(`a 3 MiB login body: ${TRIES} tries, each a 400 "too large" in JSON`, async () => {
  const body = JSON.stringify({ email: 'ada@example.com', password: 'x'.repeat(3 * 1024 * 1024) });
  const failures = await everyTry(TRIES, () => fetch(`${base}/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body,
  }), (status, json) => {
    assert.equal(status, 400);
    assert.deepEqual(json, { message: 'The request body is too large.', error: 'Unable to parse JSON request' });
  });
  assert.deepEqual(failures, {});
});
