// Node.js peer of hujjat's benchmark (benches/hujjat.rs, BENCHMARKS.md): what an integrator would
// assemble with `jose` and `canonicalize`. Usage: node pipeline.mjs BUNDLE.json SECONDS
// Prints one JSON object: per-operation microseconds (median batch) of
//   canonicalize: the FHIR `json#document` view (root id/meta/signature dropped) → RFC 8785 bytes
//   sign:         canonicalize + fresh P-256 key pair + detached compact ES256 JWS
//   verify:       canonicalize again + verify the detached JWS with the public key
//   pipeline:     sign then verify, per iteration (the loop the ratios compare)
import { readFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { CompactSign, compactVerify } from 'jose';
import canonicalize from 'canonicalize';

const CANON = 'http://hl7.org/fhir/canonicalization/json#document';
const [file, secsArg] = process.argv.slice(2);
const secs = Number(secsArg ?? '6');
const bundle = JSON.parse(readFileSync(file, 'utf8'));
const enc = new TextEncoder();

function payloadOf (b) {
  const { id, meta, signature, ...rest } = b; // json#document: without root id, meta, signature
  return enc.encode(canonicalize(rest));
}

function b64url (bytes) {
  return Buffer.from(bytes).toString('base64url');
}

async function sign (b) {
  const payload = payloadOf(b);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const header = { alg: 'ES256', typ: 'JOSE', sigT: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), canon: CANON };
  const compact = await new CompactSign(payload).setProtectedHeader(header).sign(privateKey);
  const [h, , s] = compact.split('.');
  return { jws: `${h}..${s}`, publicKey };
}

async function verify (b, { jws, publicKey }) {
  const payload = payloadOf(b);
  const [h, , s] = jws.split('.');
  await compactVerify(`${h}.${b64url(payload)}.${s}`, publicKey, { algorithms: ['ES256'] });
}

// the same protocol as hujjat's own loop: warm up secs/4, batches of ~20 ms for secs, median batch
async function measure (f) {
  const now = () => Number(process.hrtime.bigint()) / 1e9;
  let n = 0;
  const w0 = now();
  while (now() - w0 < secs / 4 || n === 0) { await f(); n++; }
  const per = (now() - w0) / n;
  const batch = Math.max(1, Math.floor(0.02 / per));
  const samples = [];
  const t0 = now();
  while (now() - t0 < secs || samples.length < 3) {
    const t = now();
    for (let i = 0; i < batch; i++) await f();
    samples.push((now() - t) / batch);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)] * 1e6;
}

const signed = await sign(bundle);
await verify(bundle, signed); // throws when the pair does not verify
const result = {
  impl: `node ${process.versions.node} jose + canonicalize`,
  per_op_us: {
    canonicalize: await measure(() => payloadOf(bundle)),
    sign: await measure(() => sign(bundle)),
    verify: await measure(() => verify(bundle, signed)),
    pipeline: await measure(async () => verify(bundle, await sign(bundle)))
  }
};
console.log(JSON.stringify(result));
