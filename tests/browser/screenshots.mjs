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
    await t.goto(`${site}/ui/sign-in`);
    await shot('sign-in');
    await t.goto(`${site}/ui/sign-up`);
    await shot('sign-up');
    await t.type('#email', `someone-${randomBytes(3).toString('hex')}@example.com`);
    await t.type('#password', 'correct horse battery');
    await Promise.all([t.waitForNavigation(), t.click('form[action="/ui/sign-up"] button')]);
    await shot('account');
    await context.close();
  }
} finally {
  await browser.close();
}
