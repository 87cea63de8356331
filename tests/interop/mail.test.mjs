// The real mail flow through maildev, a real SMTP server (scripts/interop.sh starts it
// and points the server at it): a reset mail arrives, its link opens our page, and the
// page's form sets the password; every older token is refused afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { base, post, uniqueEmail } from './lib.mjs';

const maildev = process.env.MAILDEV_URL;
const publicUrl = process.env.GATEHOUSE_PUBLIC_URL;

/** Waits for a mail to `to` whose subject matches, through maildev's REST API. */
async function mailTo(to, subject) {
  const deadline = Date.now() + 15000;
  for (;;) {
    const res = await fetch(`${maildev}/email`);
    assert.equal(res.status, 200);
    const found = (await res.json()).find(
      (m) => m.to.some((t) => t.address === to) && subject.test(m.subject),
    );
    if (found) return found;
    assert.ok(Date.now() < deadline, `no mail to ${to} matching ${subject}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('a reset mail through maildev opens a page whose form resets, and ends every session', { skip: !maildev }, async () => {
  const email = uniqueEmail();
  const reg = await post('/auth/register', { email, password: 'old-password-1' });
  assert.equal(reg.status, 200);
  const forgot = await post('/auth/password/forgot', { email }, { 'x-forwarded-host': 'evil.example' });
  assert.equal(forgot.status, 202);
  assert.deepEqual(forgot.body, {
    message: 'If an account with a password exists for this address, a link to reset it is on its way.',
  });

  const mail = await mailTo(email, /reset/i);
  assert.equal(mail.from[0].address, 'no-reply@example.test');
  const link = mail.text.match(/https?:\/\/\S+reset-password\?token=[A-Za-z0-9_-]+/)[0];
  assert.ok(link.startsWith(`${publicUrl}/ui/reset-password?token=`), link);
  const token = new URL(link).searchParams.get('token');
  assert.ok(mail.html.includes(token), 'the HTML part carries the same token');

  // A scanner's GETs change nothing; a person submits the form.
  for (let i = 0; i < 3; i++) {
    const page = await fetch(link);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
    assert.match(await page.text(), /action="\/ui\/reset-password"/);
  }
  // The older page's form (/auth/pages/, still served for links already mailed).
  const form = await fetch(`${base}/auth/pages/reset-password`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token, password: 'new-password-2' }),
  });
  assert.equal(form.status, 200);
  assert.match(await form.text(), /Your password has been changed/);

  const me = await fetch(`${base}/auth/me`, { headers: { authorization: `Bearer ${reg.body.token}` } });
  assert.equal(me.status, 401, 'the old session ended');
  const refresh = await post('/auth/refresh', { refresh_token: reg.body.refresh_token });
  assert.equal(refresh.status, 401);
  assert.equal((await post('/auth/login', { email, password: 'old-password-1' })).status, 401);
  assert.equal((await post('/auth/login', { email, password: 'new-password-2' })).status, 200);
  const notice = await mailTo(email, /password was changed/i);
  assert.match(notice.text, /was just changed/);
});

test('a verification mail through maildev verifies the address', { skip: !maildev }, async () => {
  const email = uniqueEmail();
  const reg = await post('/auth/register', { email, password: 'password-1234' });
  assert.equal(reg.status, 200);
  const mail = await mailTo(email, /confirm your email/i);
  const token = mail.text.match(/verify-email\?token=([A-Za-z0-9_-]+)/)[1];
  const verified = await post('/auth/verify-email', { token });
  assert.equal(verified.status, 200);
  assert.deepEqual(verified.body, { message: 'Your email address is verified.' });
  const me = await fetch(`${base}/auth/me`, { headers: { authorization: `Bearer ${reg.body.token}` } });
  assert.equal((await me.json()).email_verified, true);
});
