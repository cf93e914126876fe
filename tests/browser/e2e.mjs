// Headless Chromium through the signing iframe, driven by tests/iframe_browser.rs.
//
// Origin A = the demo MIS (http://localhost:<port>), origin B = hujjat (http://127.0.0.1:<port>).
// Phase `flow`: demo page → iframe from B → "Sign in with oneID" popup (dev oneID or the loopback
// OpenID Provider) → Sign → the parent receives hujjat:signed → the MIS backend fetches the signed
// Bundle (saved for jws-verify). Phase `refusals`: an unregistered embedding origin is blocked by
// the CSP; a reused launch URL, an expired session, another practitioner's PINFL and a cross-site
// POST without the CSRF token each get a clear page. Screenshots of every step go to $ARTIFACTS.
// The last line printed is a JSON summary.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const HUJJAT = process.env.HUJJAT_URL;
const DEMO = process.env.DEMO_URL;
const MODE = process.env.IDP_MODE || 'dev';
const OUT = process.env.ARTIFACTS;
const PHASES = (process.env.PHASES || 'flow,refusals').split(',');
const AUTH = 'Basic ' + Buffer.from('demo-mis:demo-secret').toString('base64');
const ATTENDING = '31211831270024';
fs.mkdirSync(OUT, { recursive: true });

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hujjat-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 1000 },
});
context.setDefaultTimeout(20000);
const summary = { mode: MODE, checks: [] };
let step = 0;
async function shot(page, name) {
  step += 1;
  const file = path.join(OUT, `${String(step).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
}
function check(ok, what) {
  summary.checks.push(what);
  if (!ok) throw new Error('check failed: ' + what);
}
const consoleErrors = [];
context.on('page', (p) => p.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`${p.url()}: ${m.text()}`); }));

async function api(method, p, body) {
  const r = await fetch(HUJJAT + p, { method, headers: { Authorization: AUTH, 'Content-Type': 'application/json' }, body: body && JSON.stringify(body) });
  return { status: r.status, json: await r.json().catch(() => null), location: r.headers.get('location') };
}
async function newDocument() {
  const form = JSON.parse(fs.readFileSync(process.env.FORM_EXAMPLE, 'utf8'));
  delete form.documentId;
  const r = await api('POST', '/forms/003/documents', form);
  if (r.status !== 201) throw new Error('compose: ' + r.status);
  return r.location.replace('/documents/', '');
}
async function newSession(doc, extra) {
  const r = await api('POST', `/documents/${doc}/signing-sessions`,
    Object.assign({ expectedSigner: { pinfl: ATTENDING }, role: 'Shifokor-jarroh', embedOrigin: DEMO, locale: 'en' }, extra || {}));
  if (r.status !== 201) throw new Error('session: ' + r.status + JSON.stringify(r.json));
  return r.json;
}
const events = (page) => page.locator('#events li').allTextContents();
async function waitEvent(page, type) {
  await page.waitForFunction((t) => [...document.querySelectorAll('#events li')].some((li) => li.textContent.startsWith(t + ' ')), type);
}
const signingFrame = (page) => page.frames().find((f) => f.url().startsWith(HUJJAT + '/s/'));

async function loginInPopup(page, frame, who) {
  await frame.locator('#login').waitFor({ state: 'visible' });
  await page.waitForTimeout(300); // let the parent finish resizing the frame (hujjat:resize)
  // A click while the parent still resizes the frame can miss the button (Playwright aims where it
  // was; seen once on a slow host): click again until the popup opens. The popup has a window
  // name, so a late first popup and a second click share one window.
  let popup = null;
  for (let i = 0; i < 3 && !popup; i++) {
    const popupP = context.waitForEvent('page', { timeout: 10000 }).catch(() => null);
    await frame.locator('#login').click();
    popup = await popupP;
  }
  if (!popup) throw new Error('no login popup after three clicks on #login');
  await popup.waitForLoadState();
  if (MODE === 'oidc') {
    await popup.locator('input[name=login]').waitFor();
    await shot(popup, 'popup-oidc-login');
    await popup.fill('input[name=login]', who.pinfl);
    await popup.fill('input[name=password]', 'x');
    await popup.locator('button[type=submit]').click();
    await popup.waitForLoadState();
    if (await popup.locator('button[type=submit]').count()) {
      await shot(popup, 'popup-oidc-consent');
      await popup.locator('button[type=submit]').click();
    }
  } else {
    await popup.locator(`button[data-user=${who.key}]`).waitFor();
    await shot(popup, 'popup-dev-oneid');
    await popup.locator(`button[data-user=${who.key}]`).click();
  }
  return popup;
}

async function flow(page) {
  await page.goto(DEMO + '/');
  await shot(page, 'demo-mis');
  await page.selectOption('#locale', 'en');
  await page.click('#start');
  await waitEvent(page, 'hujjat:ready');
  const frame = signingFrame(page);
  check(!!frame, 'the iframe from hujjat loaded inside the demo MIS');
  await frame.locator('#login').waitFor({ state: 'visible' });
  check((await frame.locator('#doc-hash').getAttribute('title')).length === 64, 'the iframe shows the SHA-256 of the version');
  await shot(page, 'iframe-ready');
  // the browser kept hujjat's partitioned session cookie (Secure works on 127.0.0.1)
  const cookies = await context.cookies(HUJJAT);
  const c = cookies.find((x) => x.name === '__Host-hujjat-session');
  check(!!c && c.secure && c.httpOnly && c.sameSite === 'None', 'the __Host- session cookie is Secure, HttpOnly, SameSite=None');
  summary.cookie = { secure: c.secure, httpOnly: c.httpOnly, sameSite: c.sameSite, partitionKey: c.partitionKey || null };

  const popup = await loginInPopup(page, frame, { key: 'rasulov', pinfl: ATTENDING });
  await popup.waitForEvent('close', { timeout: 20000 }).catch(() => {});
  await waitEvent(page, 'hujjat:authenticated');
  await frame.locator('#signer-pinfl').waitFor({ state: 'visible' });
  check((await frame.locator('#signer-pinfl').textContent()) === ATTENDING, 'the iframe shows the PINFL of who logged in');
  check((await frame.locator('#signer-name').textContent()).includes('RASULOV'), 'the iframe shows the name');
  await shot(page, 'iframe-authenticated');
  // the parent resizes the frame when the panel changes: let the layout settle before clicking
  await page.waitForTimeout(400);
  for (let i = 0; i < 3 && !(await frame.locator('#consent').isChecked()); i++) {
    await frame.locator('#consent').click();
  }
  check(await frame.locator('#consent').isChecked(), 'the consent box is ticked');
  await frame.locator('#sign').click();
  await waitEvent(page, 'hujjat:signed');
  await frame.locator('#st-signed').waitFor({ state: 'visible' });
  const ev = (await events(page)).find((e) => e.startsWith('hujjat:signed '));
  const msg = JSON.parse(ev.slice('hujjat:signed '.length));
  const info = await page.locator('#info').evaluate((el) => ({ ...el.dataset }));
  check(msg.sessionId === info.sessionId && msg.documentId === info.documentId && msg.version === 2, 'hujjat:signed carries {sessionId, documentId, version}');
  await page.locator('#verdict[data-ok="1"]').waitFor();
  await shot(page, 'demo-signed-verified');
  // what the MIS backend fetched (status API → signed Bundle)
  const res = await (await fetch(`${DEMO}/api/sessions/${info.sessionId}/result`)).json();
  check(res.session.status === 'signed' && res.verification.ok === true, 'the MIS backend got the signed, verified Bundle');
  fs.writeFileSync(path.join(OUT, 'signed-bundle.json'), JSON.stringify(res.bundle));
  summary.sessionId = info.sessionId;
  summary.documentId = info.documentId;
  summary.bundle = path.join(OUT, 'signed-bundle.json');
  // the webhook reached the MIS backend, with a valid signature
  await page.waitForFunction(() => [...document.querySelectorAll('#webhooks li')].some((li) => li.textContent.startsWith('signing_session.signed')), null, { timeout: 15000 });
  // a message from another origin is ignored by the iframe
  await frame.evaluate(() => window.dispatchEvent(new MessageEvent('message', { origin: 'http://evil.example', data: { type: 'hujjat:cancel' } })));
  check((await api('GET', `/signing-sessions/${info.sessionId}`)).json.status === 'signed', 'foreign messages change nothing');
}

async function refusals(page) {
  const doc = await newDocument();
  // 1. embedding from an origin the client did not register: the CSP blocks the frame
  const s1 = await newSession(doc);
  const foreign = DEMO.replace('localhost', '127.0.0.1');
  await page.goto(foreign + '/');
  const blocked = [];
  page.on('console', (m) => { if (/frame-ancestors|Refused to frame/i.test(m.text())) blocked.push(m.text()); });
  await page.evaluate((u) => window.demoEmbed(u), s1.launchUrl);
  await page.waitForTimeout(1500);
  const inner = page.frames().find((f) => f !== page.mainFrame());
  const readyEvents = (await events(page)).filter((e) => e.startsWith('hujjat:ready'));
  const hasContent = inner ? await inner.evaluate(() => !!document.getElementById('hujjat')).catch(() => false) : false;
  check(!hasContent && readyEvents.length === 0, 'an unregistered embedding origin is blocked by frame-ancestors');
  summary.cspConsole = blocked.slice(0, 1);
  await shot(page, 'refused-unregistered-origin');

  // 2. a reused launch URL (already consumed above)
  await page.goto(DEMO + '/');
  await page.evaluate((u) => window.demoEmbed(u), s1.launchUrl);
  await waitEvent(page, 'hujjat:error');
  let f = page.frames().find((x) => x.url().startsWith(HUJJAT));
  check((await f.locator('#code').textContent()) === 'launch_used', 'a reused launch URL is refused with a clear page');
  await shot(page, 'refused-reused-launch-url');

  // 3. an expired session
  const s3 = await newSession(doc, { launchTtlSeconds: 1 });
  await page.waitForTimeout(2100);
  await page.goto(DEMO + '/');
  await page.evaluate((u) => window.demoEmbed(u), s3.launchUrl);
  await waitEvent(page, 'hujjat:expired');
  f = page.frames().find((x) => x.url().startsWith(HUJJAT));
  check((await f.locator('#code').textContent()) === 'launch_expired', 'an expired session is refused with a clear page');
  await shot(page, 'refused-expired');

  // 4. another practitioner's PINFL (Russian page)
  const s4 = await newSession(doc, { locale: 'ru' });
  await page.goto(DEMO + '/');
  await page.evaluate((u) => window.demoEmbed(u), s4.launchUrl);
  await waitEvent(page, 'hujjat:ready');
  f = signingFrame(page);
  const popup = await loginInPopup(page, f, { key: 'stranger', pinfl: '12345678901234' });
  await popup.locator('#code').waitFor();
  check((await popup.locator('#code').textContent()) === 'signer_mismatch', 'another practitioner is refused in the popup');
  await shot(popup, 'refused-other-practitioner-popup');
  await popup.close();
  await waitEvent(page, 'hujjat:error');
  await f.locator('#st-failed').waitFor({ state: 'visible' });
  await shot(page, 'refused-other-practitioner-iframe');

  // 5. a cross-site POST without the CSRF token (a page on origin A posting to B)
  const s5 = await newSession(doc);
  await page.goto(DEMO + '/');
  await page.evaluate((u) => window.demoEmbed(u), s5.launchUrl);
  await waitEvent(page, 'hujjat:ready');
  const handle = new URL(signingFrame(page).url()).pathname.split('/')[2];
  await page.evaluate(([h, handle]) => {
    const form = document.createElement('form');
    form.method = 'POST';
    form.action = `${h}/s/${handle}/sign`;
    const i = document.createElement('input');
    i.name = 'consent'; i.value = 'on';
    form.appendChild(i);
    document.body.appendChild(form);
    form.submit();
  }, [HUJJAT, handle]);
  await page.waitForURL(`${HUJJAT}/s/${handle}/sign`);
  check((await page.locator('#code').textContent()) === 'csrf', 'a cross-site POST without the CSRF token is refused with a clear page');
  await shot(page, 'refused-cross-site-post');
  const st = await api('GET', `/signing-sessions/${s5.id}`);
  check(st.json.status === 'opened', 'the refused POST changed nothing');
}

let code = 0;
try {
  const page = await context.newPage();
  if (PHASES.includes('flow')) await flow(page);
  if (PHASES.includes('refusals')) await refusals(await context.newPage());
} catch (e) {
  code = 1;
  summary.error = String(e && e.stack || e);
  for (const p of context.pages()) {
    try { await p.screenshot({ path: path.join(OUT, `failure-${context.pages().indexOf(p)}.png`), fullPage: true }); } catch (_) {}
  }
}
summary.consoleErrors = consoleErrors.filter((e) => !/Refused to frame|frame-ancestors|Failed to load resource/i.test(e));
await context.close();
fs.rmSync(userDataDir, { recursive: true, force: true });
console.log(JSON.stringify(summary));
process.exit(code);
