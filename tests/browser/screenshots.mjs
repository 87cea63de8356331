// Screenshots of the hosted pages, light and dark, for the README: run by
// scripts/screenshots.sh against a fresh server; writes docs/screenshots/*.png.
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import puppeteer from 'puppeteer-core';

const site = process.env.UI_URL;
const out = process.env.SCREENSHOTS;
await mkdir(out, { recursive: true });
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage'],
});
try {
  for (const scheme of ['light', 'dark']) {
    const context = await browser.createBrowserContext();
    const t = await context.newPage();
    await t.setViewport({ width: 480, height: 760 });
    await t.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: scheme }]);
    const shot = (name) => t.screenshot({ path: `${out}/${name}-${scheme}.png`, fullPage: true });
    const email = `someone-${randomBytes(3).toString('hex')}@example.com`;
    await t.goto(`${site}/ui/sign-in`);
    await shot('sign-in');
    // A refused sign-in: the form again, the message next to its field.
    await t.type('form[action="/ui/sign-in"] #email', email);
    await t.type('form[action="/ui/sign-in"] #password', 'not the password');
    await Promise.all([t.waitForNavigation(), t.click('form[action="/ui/sign-in"] button[type=submit]')]);
    await shot('sign-in-error');
    await t.goto(`${site}/ui/forgot-password`);
    await shot('forgot-password');
    await t.goto(`${site}/ui/sign-up`);
    await shot('sign-up');
    await t.type('#email', email);
    await t.type('#password', 'correct horse battery');
    await Promise.all([t.waitForNavigation(), t.click('form[action="/ui/sign-up"] button')]);
    await shot('account');
    // The authenticator's enrolment: its QR code and the code field.
    await Promise.all([t.waitForNavigation(), t.click('form[action="/ui/account/second-factor/enroll"] button')]);
    await shot('second-factor-enrolment');
    await context.close();
  }
} finally {
  await browser.close();
}
