// Headless Chromium through the archive UI, driven by tests/archive_browser.rs: an archive page
// without a session redirects to the identity module's browser login (/login), which redirects to
// the development oneID; the archivist picks their test user there and comes back to /archive,
// searches by the patient's PINFL, opens the document and sees its signature panel, then logs out.
// Screenshots of every step go to $ARTIFACTS. The last line printed is a JSON summary.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const HUJJAT = process.env.HUJJAT_URL;
const OUT = process.env.ARTIFACTS;
const ARCHIVIST = process.env.ARCHIVIST_KEY; // the development oneID's test user
const ARCHIVIST_NAME = process.env.ARCHIVIST_NAME;
const PATIENT = process.env.PATIENT_PINFL;
const DOC = process.env.DOCUMENT_ID;
const SIGNER = process.env.SIGNER_NAME;
fs.mkdirSync(OUT, { recursive: true });

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hujjat-archive-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 1000 },
});
context.setDefaultTimeout(20000);
const summary = { checks: [], screenshots: [] };
let step = 0;
async function shot(page, name) {
  step += 1;
  const file = path.join(OUT, `${String(step).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  summary.screenshots.push(file);
}
function check(ok, what) {
  summary.checks.push(what);
  if (!ok) throw new Error('check failed: ' + what);
}
const consoleErrors = [];
context.on('page', (p) => p.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`${p.url()}: ${m.text()}`); }));

try {
  const page = context.pages()[0] || await context.newPage();
  // an archive page without a session: /login → the development oneID (a plain redirect, no popup)
  await page.goto(`${HUJJAT}/archive?lang=en`);
  check(page.url().startsWith(`${HUJJAT}/dev/oneid/sso/oauth/Authorization.do?`), `at the development oneID (${page.url()})`);
  const pick = page.locator(`button[data-user=${ARCHIVIST}]`);
  await pick.waitFor();
  await shot(page, 'dev-oneid');
  // the test user's choice goes through the callback back to where the archivist was going
  await Promise.all([page.waitForURL(new RegExp(`^${HUJJAT}/archive\\?lang=en$`)), pick.click()]);
  check((await page.locator('#user').textContent()).includes(ARCHIVIST_NAME), 'logged in as the archivist');
  const cookies = await context.cookies(HUJJAT);
  const sc = cookies.find((c) => c.name === '__Host-hujjat-session');
  check(sc && sc.httpOnly && sc.secure, 'a first-party HttpOnly, Secure session cookie');
  await shot(page, 'search-form');

  // search by the patient's PINFL
  await page.fill('#pinfl', PATIENT);
  await Promise.all([page.waitForURL(/pinfl=/), page.click('#search')]);
  const total = (await page.locator('#total strong').textContent()).trim();
  check(total === '1', `one document found (got ${total})`);
  check(await page.locator(`a.open[href="/archive/documents/${DOC}"]`).count() === 1, 'the document is listed');
  await shot(page, 'results');

  // open it: the signature panel
  await Promise.all([page.waitForURL(new RegExp(`/archive/documents/${DOC}`)), page.click(`a.open[href="/archive/documents/${DOC}"]`)]);
  const panel = page.locator('#signatures');
  await panel.waitFor();
  const valid = await panel.locator('.signature.valid').count();
  check(valid === 1, `one valid signature in the panel (got ${valid})`);
  const text = await panel.textContent();
  check(text.includes('The signature is valid'), 'the verification result in plain words');
  check(text.includes(SIGNER), 'the signer is named');
  await panel.scrollIntoViewIfNeeded();
  await shot(page, 'document-signature-panel');
  await page.locator('#signatures').screenshot({ path: path.join(OUT, 'signature-panel.png') });
  summary.screenshots.push(path.join(OUT, 'signature-panel.png'));

  // the same page in Russian and Uzbek
  await page.click('a[lang=ru]');
  await page.waitForURL(/lang=ru/);
  check((await page.locator('#signatures').textContent()).includes('Подпись действительна'), 'Russian');
  await shot(page, 'document-ru');
  await page.click('a[lang=uz]');
  await page.waitForURL(/lang=uz/);
  check((await page.locator('#signatures').textContent()).includes('Imzo haqiqiy'), 'Uzbek');
  // log out (POST with the session's CSRF token): the archive asks for a login again
  await Promise.all([page.waitForURL(`${HUJJAT}/logout`), page.click('form.who button[type=submit]')]);
  check((await page.locator('#logged-out h1').textContent()).includes('tizimdan chiqdingiz'), 'logged out');
  await shot(page, 'logged-out');
  await page.goto(`${HUJJAT}/archive`);
  check(page.url().startsWith(`${HUJJAT}/dev/oneid/`), 'after logout the archive asks for a login again');
  check(consoleErrors.length === 0, 'no console errors (CSP): ' + consoleErrors.join('; '));
  summary.ok = true;
} catch (e) {
  summary.ok = false;
  summary.error = String(e && e.stack || e);
  try { await shot(context.pages()[0], 'failure'); } catch { /* ignore */ }
} finally {
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(summary));
process.exit(summary.ok ? 0 : 1);
