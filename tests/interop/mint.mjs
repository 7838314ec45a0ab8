// Mints tests/vectors/jose_interop.json: JWTs signed by jose, a JOSE
// implementation keystile shares no code with, for keystile's JwtVerifier
// to verify (tests/jose_interop.rs).
//
// Every run generates new key pairs, so every run rewrites the whole file.
// The expected outcome of each case is stated here by hand, from what any
// correct verifier must answer; it is never read back from keystile.

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  SignJWT,
  calculateJwkThumbprint,
  createLocalJWKSet,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  jwtVerify,
} from 'jose';

const ISSUER = 'https://idp.example.test';
const AUDIENCE = 'reports-api';
// The verifier's clock. Every time claim below sits at least a minute from
// it, and the expired and not-yet-valid cases an hour, so any clock-skew
// leeway under a minute decides nothing.
const NOW = 1_800_000_000;
const ALGORITHMS = ['RS256', 'ES256', 'EdDSA'];

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const OUTPUT = here('../vectors/jose_interop.json');
const joseVersion = JSON.parse(readFileSync(here('node_modules/jose/package.json'), 'utf8')).version;

function keyOptions(alg) {
  if (alg === 'RS256') return { modulusLength: 2048 };
  if (alg === 'EdDSA') return { crv: 'Ed25519' };
  return {};
}

async function keyPair(alg) {
  const { publicKey, privateKey } = await generateKeyPair(alg, keyOptions(alg));
  const jwk = await exportJWK(publicKey);
  // The RFC 7638 thumbprint names the key: unique, and new with every key.
  const kid = await calculateJwkThumbprint(jwk);
  return { alg, kid, publicKey, privateKey, jwk: { ...jwk, kid, alg, use: 'sig' } };
}

const claimsOf = (alg) => ({
  client_id: 'reports-cli',
  scope: 'reports:read reports:write',
  sub: `alice-${alg.toLowerCase()}`,
});

const b64 = (bytes) => Buffer.from(bytes).toString('base64url');
const json64 = (value) => b64(JSON.stringify(value));
const unjson64 = (text) => JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));

function parts(token) {
  const [header, payload, signature] = token.split('.');
  return { header, payload, signature };
}

// A token signed as an issuer would sign it; `changes` overrides the time,
// issuer and audience claims, `header` the protected header.
async function mint(key, { header, changes = {}, signWith = key.privateKey } = {}) {
  const t = { iat: NOW - 60, nbf: NOW - 60, exp: NOW + 600, iss: ISSUER, aud: AUDIENCE, ...changes };
  return new SignJWT(claimsOf(key.alg))
    .setProtectedHeader(header ?? { alg: key.alg, kid: key.kid, typ: 'at+jwt' })
    .setIssuer(t.iss)
    .setSubject(claimsOf(key.alg).sub)
    .setAudience(t.aud)
    .setIssuedAt(t.iat)
    .setNotBefore(t.nbf)
    .setExpirationTime(t.exp)
    .sign(signWith);
}

// One bit flipped in the middle byte of the signature, so the change is in
// the signature's value and never in the padding bits of its last
// base64url character.
function flipMidSignature(token) {
  const { header, payload, signature } = parts(token);
  const raw = Buffer.from(signature, 'base64url');
  raw[raw.length >> 1] ^= 0x01;
  return `${header}.${payload}.${b64(raw)}`;
}

async function casesFor(key, keys) {
  const next = keys[(keys.indexOf(key) + 1) % keys.length];
  const valid = await mint(key);
  const { header, payload, signature } = parts(valid);
  const decodedHeader = unjson64(header);
  const stranger = await keyPair(key.alg);
  const name = key.alg.toLowerCase();
  const c = (id, description, token, error) => ({
    id: `${name}-${id}`,
    description,
    algorithm: key.alg,
    token,
    expected: error ? 'invalid' : 'valid',
    ...(error ? { error } : { claims: claimsOf(key.alg) }),
  });
  return [
    c('valid', `${key.alg} access token naming its key by kid`, valid),
    c(
      'valid-no-kid',
      `${key.alg} access token without kid: the set holds one ${key.alg} key`,
      await mint(key, { header: { alg: key.alg, typ: 'at+jwt' } }),
    ),
    c(
      'payload-changed',
      'sub altered and the payload re-encoded, signature kept',
      `${header}.${json64({ ...unjson64(payload), sub: 'mallory' })}.${signature}`,
      'bad_signature',
    ),
    c('signature-bit-flipped', 'one bit flipped in the middle of the signature', flipMidSignature(valid), 'bad_signature'),
    // The kid names a key pinned to one algorithm; a header claiming
    // another must be refused before the signature is looked at.
    c(
      'alg-swapped',
      `header alg changed to ${next.alg}, kid and signature kept`,
      `${json64({ ...decodedHeader, alg: next.alg })}.${payload}.${signature}`,
      'wrong_algorithm',
    ),
    // The classic confusion attack: the public key, which an attacker
    // knows, used as an HMAC secret.
    c(
      'hs256-with-public-key',
      `HS256 keyed with the ${key.alg} public key (SPKI PEM), under its kid`,
      await mint(key, {
        header: { alg: 'HS256', kid: key.kid, typ: 'at+jwt' },
        signWith: new TextEncoder().encode(await exportSPKI(key.publicKey)),
      }),
      'wrong_algorithm',
    ),
    // Header and payload are this key's, so the key and its algorithm
    // match; only the signature, a real one by another key, is wrong.
    c(
      'signature-moved',
      `signature of the ${next.alg} token moved onto this token`,
      `${header}.${payload}.${parts(await mint(next)).signature}`,
      'bad_signature',
    ),
    // `none` signs nothing and no key is pinned to it: keystile reports
    // an algorithm it does not verify as a token it cannot read.
    c(
      'alg-none',
      'alg none with an empty signature, kid kept',
      `${json64({ ...decodedHeader, alg: 'none' })}.${payload}.`,
      'malformed',
    ),
    c(
      'foreign-key-same-kid',
      `signed by a fresh ${key.alg} key not in the set, under this key's kid`,
      await mint(key, { signWith: stranger.privateKey }),
      'bad_signature',
    ),
    c(
      'foreign-key-own-kid',
      `signed by a fresh ${key.alg} key not in the set, under its own kid`,
      await mint(stranger),
      'unknown_key',
    ),
    c(
      'expired',
      'exp an hour before the verify time, signed properly',
      await mint(key, { changes: { iat: NOW - 7200, nbf: NOW - 7200, exp: NOW - 3600 } }),
      'expired',
    ),
    c(
      'not-yet-valid',
      'nbf an hour after the verify time, signed properly',
      await mint(key, { changes: { nbf: NOW + 3600, exp: NOW + 7200 } }),
      'not_yet_valid',
    ),
    c(
      'wrong-audience',
      'aud billing-api, signed properly',
      await mint(key, { changes: { aud: 'billing-api' } }),
      'wrong_audience',
    ),
    c(
      'wrong-issuer',
      'iss of another identity provider, signed properly',
      await mint(key, { changes: { iss: 'https://evil.example.test' } }),
      'wrong_issuer',
    ),
  ];
}

const keys = [];
for (const alg of ALGORITHMS) keys.push(await keyPair(alg));
const cases = [];
for (const key of keys) cases.push(...(await casesFor(key, keys)));

// jose must agree with every case's result (its error classes are its own),
// or the case tests the generator instead of the verifier.
const jwks = { keys: keys.map((k) => k.jwk) };
const joseVerifies = createLocalJWKSet(jwks);
for (const { id, token, expected } of cases) {
  const accepted = await jwtVerify(token, joseVerifies, {
    issuer: ISSUER,
    audience: AUDIENCE,
    currentDate: new Date(NOW * 1000),
  }).then(
    () => true,
    () => false,
  );
  if (accepted !== (expected === 'valid')) {
    throw new Error(`${id}: jose ${accepted ? 'accepts' : 'refuses'} a case expected ${expected}`);
  }
}

const file = {
  description:
    'JWTs minted by jose, an independent JOSE implementation, and tampered copies of them; regenerate with scripts/interop-vectors',
  parameters: {
    issuer: ISSUER,
    audience: AUDIENCE,
    now: NOW,
    jwks,
    generator: `jose ${joseVersion} on Node ${process.versions.node}`,
  },
  cases,
};
writeFileSync(OUTPUT, `${JSON.stringify(file, null, 2)}\n`);
console.log(`wrote ${cases.length} cases to ${OUTPUT}`);
