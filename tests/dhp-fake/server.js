// A fake DHP for hujjat's submission tests (see README.md here).
//
// - OAuth2 token endpoint: the real `oidc-provider` with one `client_credentials` client
//   (client_secret_post, as the DHP SSO documents), opaque access tokens with a configurable TTL.
// - FHIR endpoint: conditional create of document Bundles (`POST /fhir/Bundle` with If-None-Exist,
//   `POST /fhir` transaction), Patient search by identifier, reads; Bearer tokens checked against
//   the OAuth server; Content-Type / Accept checked.
// - Fault injection (admin API): a queue of faults for the next requests and/or a random fault rate:
//   500/502/503, 429 with Retry-After, a timeout (the answer never comes in time), a connection
//   dropped after the body was received, 400/422 with an OperationOutcome, 401 (token revoked).
// - Every created Bundle is kept byte for byte and validated with ../shared/tools/fhir-validate
//   (in batches in the background, or synchronously before answering: VALIDATE=sync).
// - Bookkeeping for the tests: every create per identifier, raw request counts, sends for an
//   identifier after a success was delivered, concurrent requests for the same identifier.
//
// Prints one JSON line on stdout when ready: {"fhir": "...", "token": "...", "admin": "..."}.

import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import Provider from 'oidc-provider';

const here = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;
const CLIENT_ID = env.CLIENT_ID || 'hujjat';
const CLIENT_SECRET = env.CLIENT_SECRET || 'hujjat-secret';
const TOKEN_TTL = Number(env.TOKEN_TTL || 600);
const SHARED = env.HUJJAT_SHARED || path.resolve(here, '../../../shared');
const VALIDATOR = env.FHIR_VALIDATE || path.join(SHARED, 'tools/fhir-validate');
const DATA = env.DATA_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'dhp-fake-'));
const BUNDLES = path.join(DATA, 'bundles');
fs.mkdirSync(BUNDLES, { recursive: true });
const PINFL_SYSTEM = 'https://dhp.uz/fhir/core/sid/pid/uz/ni';

// ---------------------------------------------------------------- state

let settings = { validate: env.VALIDATE || 'batch', timeoutHoldMs: 30000 };
let faults = { queue: [], random: null };
let rng = mulberry32(Number(env.SEED || 42));
const st = freshState();

function freshState() {
  return {
    bundles: new Map(), // id -> {id, identifier, version, file, text}
    byIdentifier: new Map(), // identifier -> {ids:[], posts, inflight, delivered, sendsAfterDelivered, existingAnswers}
    patients: new Map(), // pinfl -> [ids]
    requests: 0,
    byKind: {},
    faultsInjected: {},
    concurrent: 0,
    headerProblems: [],
    authFailures: 0,
    tokenRequests: 0,
    validation: { pending: [], validated: 0, failed: [] },
  };
}

function reset() {
  const fresh = freshState();
  Object.assign(st, fresh);
  faults = { queue: [], random: null };
}

function mulberry32(a) {
  return () => {
    a |= 0; a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function count(obj, k) { obj[k] = (obj[k] || 0) + 1; }

function ident(identifier) {
  let e = st.byIdentifier.get(identifier);
  if (!e) {
    e = { ids: [], posts: 0, inflight: 0, delivered: false, sendsAfterDelivered: 0, existingAnswers: 0 };
    st.byIdentifier.set(identifier, e);
  }
  return e;
}

// ---------------------------------------------------------------- OAuth2 (oidc-provider)

const oauthServer = http.createServer();
await new Promise((r) => oauthServer.listen(Number(env.OAUTH_PORT || 0), '127.0.0.1', r));
const issuer = `http://127.0.0.1:${oauthServer.address().port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  features: { clientCredentials: { enabled: true }, devInteractions: { enabled: false } },
  routes: { token: '/oauth/token' },
  ttl: { ClientCredentials: TOKEN_TTL },
  cookies: { keys: [crypto.randomBytes(16).toString('hex')] },
  jwks: undefined,
});
provider.on('server_error', (ctx, err) => console.error('oidc-provider:', err));
const oidc = provider.callback();
let tokenFaults = [];
oauthServer.on('request', (req, res) => {
  if (req.url.startsWith('/oauth/token')) {
    st.tokenRequests++;
    const f = tokenFaults.shift();
    if (f) {
      count(st.faultsInjected, `token:${f.fault}`);
      res.writeHead(Number(f.fault) || 500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: f.error || 'server_error' }));
      return;
    }
  }
  oidc(req, res);
});

async function tokenValid(req) {
  const h = req.headers.authorization || '';
  const m = /^Bearer\s+(.+)$/i.exec(h);
  if (!m) return null;
  const t = await provider.ClientCredentials.find(m[1].trim());
  if (!t || t.isExpired) return null;
  return t;
}

// ---------------------------------------------------------------- validation

let validating = null;
function validateBatch() {
  if (validating) return validating;
  const batch = st.validation.pending.splice(0, 400);
  if (batch.length === 0) return Promise.resolve();
  validating = runValidator(batch.map((b) => b.file)).then((r) => {
    const bad = new Set();
    for (const line of r.output.split('\n')) {
      for (const b of batch) {
        if (line.startsWith(b.file + ':')) { bad.add(b.file); }
      }
    }
    if (r.code !== 0 && bad.size === 0) {
      // the tool failed without naming a file: count the whole batch as failed
      for (const b of batch) bad.add(b.file);
    }
    for (const b of batch) {
      if (bad.has(b.file)) {
        st.validation.failed.push({ id: b.id, identifier: b.identifier, problems: r.output.split('\n').filter((l) => l.startsWith(b.file + ':') || r.code > 1).slice(0, 20) });
      } else {
        st.validation.validated++;
      }
    }
  }).finally(() => {
    validating = null;
    // keep up: start the next batch at once when enough is waiting
    if (st.validation.pending.length >= 50) validateBatch();
  });
  return validating;
}

function runValidator(files) {
  return new Promise((resolve) => {
    execFile(VALIDATOR, ['--quiet', ...files], { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 4) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

async function flushValidation() {
  for (;;) {
    if (validating) { await validating; continue; }
    if (st.validation.pending.length === 0) return;
    await validateBatch();
  }
}

setInterval(() => { if (st.validation.pending.length > 0) validateBatch(); }, Number(env.VALIDATE_EVERY_MS || 3000)).unref();

// ---------------------------------------------------------------- FHIR helpers

const FHIR = 'application/fhir+json';

function send(res, status, body, headers = {}) {
  if (res.destroyed || res.writableEnded) return;
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': FHIR, ...headers });
  res.end(text);
}

function outcome(code, diagnostics, expression) {
  const issue = { severity: 'error', code, diagnostics };
  if (expression) issue.expression = [expression];
  return { resourceType: 'OperationOutcome', issue: [issue] };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function identifierOf(doc) {
  const i = doc && doc.identifier;
  if (!i || !i.value) return null;
  return i.system ? `${i.system}|${i.value}` : i.value;
}

/** `identifier=system|value` (URL-encoded or not) → `system|value`. */
function conditional(q) {
  if (!q) return null;
  const p = new URLSearchParams(q);
  return p.get('identifier');
}

function pickFault(kind) {
  const i = faults.queue.findIndex((f) => !f.on || f.on === kind || f.on === 'any');
  if (i >= 0) return faults.queue.splice(i, 1)[0];
  const r = faults.random;
  if (r && (!r.on || r.on === kind || r.on === 'any') && rng() < r.rate) {
    const kinds = r.kinds || ['500'];
    return { ...(r.params || {}), fault: kinds[Math.floor(rng() * kinds.length)] };
  }
  return null;
}

/**
 * Apply a fault. `commit` stores the resource (for faults that fail after processing).
 * Returns true when the fault answered (or will never answer) the request.
 */
async function applyFault(f, req, res, commit) {
  count(st.faultsInjected, f.fault);
  switch (f.fault) {
    case '500': case '502': case '503': case '504':
      send(res, Number(f.fault), outcome('transient', `injected ${f.fault}`));
      return true;
    case '429':
      send(res, 429, outcome('throttled', 'injected 429'), { 'retry-after': String(f.retryAfter ?? 1) });
      return true;
    case '400': case '422':
      send(res, Number(f.fault), outcome(f.code || 'invariant', f.diagnostics || 'injected rejection: Bundle.entry[0] fails a rule', f.expression || 'Bundle.entry[0].resource'));
      return true;
    case '401': {
      const t = await tokenValid(req);
      if (t) await t.destroy();
      send(res, 401, outcome('login', 'injected 401: the token was revoked'), { 'www-authenticate': 'Bearer error="invalid_token"' });
      return true;
    }
    case 'timeout':
      // processed, but the answer comes too late (or never): the client times out
      if (f.store !== false && commit) await commit();
      setTimeout(() => res.destroy(), f.holdMs ?? settings.timeoutHoldMs).unref();
      return true;
    case 'drop':
    case 'drop-early':
      // the body was received (and processed, unless store:false or drop-early); the connection drops
      if (f.store !== false && f.fault !== 'drop-early' && commit) await commit();
      req.socket.destroy();
      return true;
    default:
      return false;
  }
}

async function conditionalCreate(text, doc, ifNoneExist) {
  // If-None-Exist: one match → 200 with it; several → 412; none → create
  if (ifNoneExist) {
    const matches = [...st.bundles.values()].filter((b) => b.identifier === ifNoneExist);
    if (matches.length === 1) return { status: 200, bundle: matches[0], existing: true };
    if (matches.length > 1) return { status: 412 };
  }
  if (settings.validate === 'sync') {
    const file = path.join(BUNDLES, `incoming-${crypto.randomUUID()}.json`);
    fs.writeFileSync(file, text);
    const r = await runValidator([file]);
    fs.unlinkSync(file);
    if (r.code !== 0) {
      return { status: 422, outcome: { resourceType: 'OperationOutcome', issue: r.output.split('\n').filter((l) => l.includes('[')).slice(0, 30).map((l) => ({ severity: 'error', code: 'invariant', diagnostics: l.replace(/^[^:]*: /, '') })) } };
    }
    // re-check after the await: another request may have created it meanwhile
    if (ifNoneExist) {
      const m = [...st.bundles.values()].filter((b) => b.identifier === ifNoneExist);
      if (m.length === 1) return { status: 200, bundle: m[0], existing: true };
    }
  }
  const id = crypto.randomUUID();
  const identifier = identifierOf(doc);
  const file = path.join(BUNDLES, `${id}.json`);
  fs.writeFileSync(file, text);
  const sha256 = crypto.createHash('sha256').update(text, 'utf8').digest('hex');
  const b = { id, identifier, version: '1', file, sha256, lastUpdated: new Date().toISOString() };
  st.bundles.set(id, b);
  if (identifier) ident(identifier).ids.push(id);
  if (settings.validate !== 'sync') st.validation.pending.push({ id, identifier, file });
  else st.validation.validated++;
  return { status: 201, bundle: b, existing: false };
}

function storedResource(b) {
  const doc = JSON.parse(fs.readFileSync(b.file, 'utf8'));
  return { ...doc, id: b.id, meta: { ...(doc.meta || {}), versionId: b.version, lastUpdated: b.lastUpdated } };
}

function checkHeaders(req, needsBody) {
  const problems = [];
  if (needsBody && !(req.headers['content-type'] || '').startsWith(FHIR)) problems.push(`Content-Type ${req.headers['content-type']}`);
  if (!(req.headers.accept || '').includes(FHIR)) problems.push(`Accept ${req.headers.accept}`);
  return problems;
}

// ---------------------------------------------------------------- FHIR server

const fhirServer = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://x');
    if (url.pathname.startsWith('/_admin/')) return admin(req, res, url);
    if (!url.pathname.startsWith('/fhir')) return send(res, 404, outcome('not-found', 'no such endpoint'));
    const rest = url.pathname.slice('/fhir'.length).replace(/\/$/, '');
    const body = await readBody(req); // the whole body arrives before anything else happens
    st.requests++;

    let kind = 'other';
    if (req.method === 'POST' && (rest === '/Bundle' || rest === '')) kind = 'submit';
    else if (req.method === 'GET' && rest === '/Patient') kind = 'patient';
    count(st.byKind, kind);

    const hp = checkHeaders(req, req.method === 'POST');
    if (hp.length) {
      st.headerProblems.push(`${req.method} ${rest}: ${hp.join(', ')}`);
      return send(res, req.method === 'POST' && hp[0].startsWith('Content-Type') ? 415 : 406, outcome('not-supported', hp.join(', ')));
    }
    if (!(await tokenValid(req))) {
      st.authFailures++;
      return send(res, 401, outcome('login', 'a valid Bearer token is required'), { 'www-authenticate': 'Bearer' });
    }

    if (kind === 'submit') return submit(req, res, rest, body);
    if (kind === 'patient') {
      const f = pickFault('patient');
      if (f && (await applyFault(f, req, res, null))) return;
      const value = url.searchParams.get('identifier') || '';
      const [system, pinfl] = value.includes('|') ? value.split('|') : ['', value];
      if (system !== PINFL_SYSTEM || !/^\d{14}$/.test(pinfl)) {
        return send(res, 400, outcome('value', `unsupported identifier search ${system ? 'system' : ''}`.trim()));
      }
      const ids = st.patients.get(pinfl) || [];
      return send(res, 200, {
        resourceType: 'Bundle', type: 'searchset', total: ids.length,
        entry: ids.map((id) => ({ fullUrl: `${fhirBase}/Patient/${id}`, resource: { resourceType: 'Patient', id, identifier: [{ system: PINFL_SYSTEM, value: pinfl }] }, search: { mode: 'match' } })),
      });
    }
    if (req.method === 'GET' && rest.startsWith('/Bundle/')) {
      const b = st.bundles.get(rest.split('/')[2]);
      return b ? send(res, 200, storedResource(b), { etag: `W/"${b.version}"` }) : send(res, 404, outcome('not-found', 'no such Bundle'));
    }
    if (req.method === 'GET' && rest === '/Bundle') {
      const want = url.searchParams.get('identifier');
      const found = [...st.bundles.values()].filter((b) => !want || b.identifier === want || b.identifier.endsWith(`|${want}`));
      return send(res, 200, { resourceType: 'Bundle', type: 'searchset', total: found.length, entry: found.map((b) => ({ fullUrl: `${fhirBase}/Bundle/${b.id}`, resource: storedResource(b), search: { mode: 'match' } })) });
    }
    return send(res, 404, outcome('not-supported', `${req.method} ${rest} is not supported here`));
  } catch (e) {
    console.error('dhp-fake:', e);
    send(res, 500, outcome('exception', 'fake internal error'));
  }
});

async function submit(req, res, rest, body) {
  const text = body.toString('utf8');
  let doc;
  try { doc = JSON.parse(text); } catch { return send(res, 400, outcome('structure', 'the body is not JSON')); }
  let documentText = text;
  let ifNoneExist = conditional(req.headers['if-none-exist']);
  let transaction = false;
  if (rest === '') {
    // transaction: one entry, POST Bundle, ifNoneExist; the document's bytes are cut out verbatim
    transaction = true;
    const e = doc.entry && doc.entry[0];
    if (doc.type !== 'transaction' || !e || !e.request || e.request.method !== 'POST' || e.request.url !== 'Bundle') {
      return send(res, 400, outcome('invalid', 'expected a transaction with one POST Bundle entry'));
    }
    documentText = cutResource(text);
    if (documentText === null) return send(res, 400, outcome('structure', 'cannot find entry[0].resource'));
    doc = JSON.parse(documentText);
    ifNoneExist = conditional(e.request.ifNoneExist);
  }
  if (!doc || doc.resourceType !== 'Bundle' || doc.type !== 'document') {
    return send(res, 422, outcome('invalid', 'expected a document Bundle', 'Bundle.type'));
  }
  const identifier = identifierOf(doc);
  const e = identifier ? ident(identifier) : null;
  if (e) {
    e.posts++;
    if (e.delivered) e.sendsAfterDelivered++;
    e.inflight++;
    if (e.inflight > 1) st.concurrent++;
    res.on('close', () => { e.inflight--; });
  }
  let committed = null;
  const commit = async () => { committed = await conditionalCreate(documentText, doc, ifNoneExist); };
  const f = pickFault('submit');
  if (f && (await applyFault(f, req, res, commit))) return;
  await commit();
  const r = committed;
  if (r.status === 412) return send(res, 412, outcome('duplicate', 'several Bundles match If-None-Exist'));
  if (r.status === 422) return send(res, 422, r.outcome);
  const b = r.bundle;
  if (r.existing && e) e.existingAnswers++;
  const location = `${fhirBase}/Bundle/${b.id}/_history/${b.version}`;
  if (e) res.on('finish', () => { e.delivered = true; });
  if (transaction) {
    return send(res, 200, {
      resourceType: 'Bundle', type: 'transaction-response',
      entry: [{ response: { status: r.existing ? '200 OK' : '201 Created', location: `Bundle/${b.id}/_history/${b.version}`, etag: `W/"${b.version}"`, lastModified: b.lastUpdated } }],
    });
  }
  return send(res, r.status, storedResource(b), { location, etag: `W/"${b.version}"`, 'last-modified': new Date(b.lastUpdated).toUTCString() });
}

/** The exact text of entry[0].resource inside a transaction (byte-for-byte, no re-serialisation). */
function cutResource(text) {
  const key = text.indexOf('"resource":');
  if (key < 0) return null;
  let i = key + '"resource":'.length;
  while (/\s/.test(text[i])) i++;
  if (text[i] !== '{') return null;
  let depth = 0; let inStr = false;
  for (let j = i; j < text.length; j++) {
    const c = text[j];
    if (inStr) {
      if (c === '\\') j++;
      else if (c === '"') inStr = false;
    } else if (c === '"') inStr = true;
    else if (c === '{') depth++;
    else if (c === '}') { depth--; if (depth === 0) return text.slice(i, j + 1); }
  }
  return null;
}

// ---------------------------------------------------------------- admin API

async function admin(req, res, url) {
  const body = req.method === 'POST' ? await readBody(req) : Buffer.alloc(0);
  const json = body.length ? JSON.parse(body.toString('utf8')) : {};
  const reply = (x) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify(x)); };
  switch (`${req.method} ${url.pathname}`) {
    case 'POST /_admin/faults':
      // {queue: [{fault, on?, retryAfter?, store?, holdMs?}], random: {rate, kinds, on?, params?} | null, seed?}
      if (json.queue) faults.queue.push(...json.queue);
      if ('random' in json) faults.random = json.random;
      if (json.seed !== undefined) rng = mulberry32(Number(json.seed));
      if (json.token) tokenFaults.push(...json.token);
      return reply({ queue: faults.queue.length, random: faults.random });
    case 'POST /_admin/settings':
      settings = { ...settings, ...json };
      return reply(settings);
    case 'POST /_admin/patients':
      for (const p of json.patients || []) {
        const l = st.patients.get(p.pinfl) || [];
        l.push(p.id);
        st.patients.set(p.pinfl, l);
      }
      return reply({ patients: st.patients.size });
    case 'POST /_admin/validate':
      await flushValidation();
      return reply(st.validation.failed.length ? { validated: st.validation.validated, failed: st.validation.failed } : { validated: st.validation.validated, failed: [] });
    case 'POST /_admin/reset':
      reset();
      return reply({ ok: true });
    case 'GET /_admin/state': {
      const identifiers = {};
      for (const [k, v] of st.byIdentifier) identifiers[k] = { creates: v.ids.length, ids: v.ids, sha256: v.ids.map((id) => st.bundles.get(id).sha256), posts: v.posts, sendsAfterDelivered: v.sendsAfterDelivered, existingAnswers: v.existingAnswers };
      return reply({
        requests: st.requests, byKind: st.byKind, faultsInjected: st.faultsInjected, concurrent: st.concurrent,
        headerProblems: st.headerProblems, authFailures: st.authFailures, tokenRequests: st.tokenRequests,
        bundles: st.bundles.size, identifiers,
        validation: { validated: st.validation.validated, pending: st.validation.pending.length, failed: st.validation.failed.length },
        pendingFaults: faults.queue.length,
      });
    }
    case 'GET /_admin/bundle': {
      const b = st.bundles.get(url.searchParams.get('id'));
      if (!b) { res.writeHead(404); return res.end(); }
      res.writeHead(200, { 'content-type': FHIR });
      return res.end(fs.readFileSync(b.file));
    }
    default:
      res.writeHead(404); return res.end();
  }
}

await new Promise((r) => fhirServer.listen(Number(env.FHIR_PORT || 0), '127.0.0.1', r));
fhirServer.keepAliveTimeout = 30000;
const fhirBase = `http://127.0.0.1:${fhirServer.address().port}/fhir`;
process.stdout.write(JSON.stringify({ fhir: fhirBase, token: `${issuer}/oauth/token`, admin: `http://127.0.0.1:${fhirServer.address().port}/_admin`, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, data: DATA }) + '\n');

const stop = () => { oauthServer.close(); fhirServer.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// the test process holds our stdin: when it goes away (even by SIGKILL), so do we
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
