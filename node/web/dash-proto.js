/*
 * dash-proto.js - the few byte formats the dashboard reads and writes in
 * the browser, so that what an admin sees and signs comes from the bytes
 * the node will send, not from what the daemon says about them:
 *
 *  - a protobuf wire reader (the Statement, the Bundle payload inside it)
 *    and writer (the Approval and the admin Signature);
 *  - PAE(type, body) of crypto/sc_sign.h, byte for byte;
 *  - the admin key file of docs/keys.md.
 *
 * Plain functions on Uint8Array, no dependencies; SlddProto is the one
 * global it defines.
 */
'use strict';

(function () {
  const enc = new TextEncoder();
  const dec = new TextDecoder('utf-8', { fatal: false });

  /* ---- reading */

  /* Every field of one message: [{no, wt, v}], v a Number (varint, up to
   * 2^53), a Uint8Array (length-delimited) or a DataView slice (fixed). */
  function fields(buf) {
    const out = [];
    let i = 0;
    function varint() {
      let v = 0, mul = 1;
      for (let k = 0; k < 10; k++) {
        if (i >= buf.length) throw new Error('truncated varint');
        const b = buf[i++];
        v += (b & 0x7f) * mul;
        mul *= 128;
        if (!(b & 0x80)) return v;
      }
      throw new Error('varint too long');
    }
    while (i < buf.length) {
      const key = varint();
      const no = Math.floor(key / 8), wt = key % 8;
      let v;
      if (wt === 0) v = varint();
      else if (wt === 2) {
        const n = varint();
        if (i + n > buf.length) throw new Error('truncated field ' + no);
        v = buf.subarray(i, i + n);
        i += n;
      } else if (wt === 5 || wt === 1) {
        const n = wt === 5 ? 4 : 8;
        if (i + n > buf.length) throw new Error('truncated field ' + no);
        v = new DataView(buf.buffer, buf.byteOffset + i, n);
        i += n;
      } else throw new Error('wire type ' + wt + ' in field ' + no);
      out.push({ no, wt, v });
    }
    return out;
  }

  function one(fs, no) {
    let last;
    for (const f of fs) if (f.no === no) last = f;
    return last;
  }
  const str = (fs, no) => { const f = one(fs, no); return f ? dec.decode(f.v) : ''; };
  const num = (fs, no) => { const f = one(fs, no); return f ? f.v : 0; };
  const bytes = (fs, no) => { const f = one(fs, no); return f ? f.v : new Uint8Array(0); };
  const strs = (fs, no) => fs.filter((f) => f.no === no).map((f) => dec.decode(f.v));
  const msg = (fs, no) => { const f = one(fs, no); return f ? fields(f.v) : []; };
  const msgs = (fs, no) => fs.filter((f) => f.no === no).map((f) => fields(f.v));
  function dbl(fs, no) {
    const f = one(fs, no);
    return f && f.wt === 1 ? f.v.getFloat64(0, true) : 0;
  }
  function flt(fs, no) {
    const f = one(fs, no);
    return f && f.wt === 5 ? f.v.getFloat32(0, true) : 0;
  }
  /* repeated float, packed or not */
  function floats(fs, no) {
    const out = [];
    for (const f of fs) {
      if (f.no !== no) continue;
      if (f.wt === 5) out.push(f.v.getFloat32(0, true));
      else if (f.wt === 2) {
        if (f.v.length % 4) throw new Error('packed floats in field ' + no);
        const dv = new DataView(f.v.buffer, f.v.byteOffset, f.v.length);
        for (let k = 0; k < f.v.length; k += 4) out.push(dv.getFloat32(k, true));
      }
    }
    return out;
  }

  function hex(b) {
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  /* ---- the Statement and its Bundle payload (proto/sldd.proto) */

  function parseStatement(buf) {
    const fs = fields(buf);
    return {
      payloadType: str(fs, 1),
      payload: bytes(fs, 2),
      signatures: msgs(fs, 3).map((s) => ({
        role: num(s, 1), signer: str(s, 2), keyId: hex(bytes(s, 3)), approval: bytes(s, 5),
      })),
    };
  }

  function half(h) {
    const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e === 0) return s * m * Math.pow(2, -24);
    if (e === 31) return m ? NaN : s * Infinity;
    return s * (1 + m / 1024) * Math.pow(2, e - 15);
  }

  /* The M images as Float32Arrays of C*H*W values. */
  function images(t, m, dv) {
    const encoding = num(t, 1), data = bytes(t, 2);
    const scale = floats(t, 3), offset = floats(t, 4);
    const view = new DataView(data.buffer, data.byteOffset, data.length);
    const width = { 1: 4, 2: 2, 3: 1 }[encoding];
    if (!width || data.length !== m * dv * width) throw new Error('image data does not match');
    const out = [];
    for (let i = 0; i < m; i++) {
      const img = new Float32Array(dv);
      for (let k = 0; k < dv; k++) {
        const j = i * dv + k;
        if (encoding === 1) img[k] = view.getFloat32(j * 4, true);
        else if (encoding === 2) img[k] = half(view.getUint16(j * 2, true));
        else img[k] = offset[i] + scale[i] * data[j];
      }
      out.push(img);
    }
    return out;
  }

  function parseBundle(buf) {
    const fs = fields(buf);
    const model = msg(fs, 8), ds = msg(fs, 9), norm = msg(fs, 11), prov = msg(fs, 12);
    const met = msg(fs, 13), priv = msg(fs, 14);
    const b = {
      bundleId: hex(bytes(fs, 2)),
      sender: str(fs, 3),
      audience: strs(fs, 4),
      created: num(fs, 5),
      expires: num(fs, 6),
      sequence: num(fs, 7),
      model: {
        arch: str(model, 1), bn: !!num(model, 2), depth: num(model, 3), width: num(model, 4),
        c: num(model, 5), h: num(model, 6), w: num(model, 7), classes: num(model, 8),
        initScheme: str(model, 9), initSeed: num(model, 10),
        theta0: hex(bytes(model, 11)), labelParam: num(model, 13), params: num(model, 14),
      },
      steps: num(ds, 1), perStep: num(ds, 2), epochs: num(ds, 3),
      labels: floats(ds, 5), stepSizes: floats(ds, 6),
      mean: floats(norm, 1), std: floats(norm, 2),
      classNames: [], dataSource: str(prov, 5),
      hyperParams: msgs(prov, 2).map((h) => [str(h, 1), str(h, 2)]),
      metrics: msg(fs, 13).length ? {
        split: str(met, 1), accuracy: dbl(met, 2), sensitivity: dbl(met, 3),
        specificity: dbl(met, 4), hm: dbl(met, 5), auc: dbl(met, 6),
      } : null,
      privacy: priv.length ? {
        images: msgs(priv, 1).map((a) => ({
          index: num(a, 1), distance: flt(a, 2), ssim: flt(a, 3), heldout: flt(a, 4),
        })),
        membershipAuc: dbl(priv, 5), verdict: str(priv, 6), policy: str(priv, 7),
      } : null,
    };
    for (const c of msgs(prov, 1)) {
      const name = str(c, 2);
      if (!b.classNames.includes(name)) b.classNames.push(name);
    }
    if (b.classNames.length !== b.model.classes) b.classNames = [];
    const m = b.steps * b.perStep, dv = b.model.c * b.model.h * b.model.w;
    b.images = images(msg(ds, 4), m, dv);
    return b;
  }

  /* ---- writing */

  function varintBytes(v) {
    const out = [];
    if (v < 0 || !Number.isSafeInteger(v)) throw new Error('varint out of range');
    do {
      let b = v % 128;
      v = Math.floor(v / 128);
      if (v) b |= 0x80;
      out.push(b);
    } while (v);
    return out;
  }
  function concat(parts) {
    const n = parts.reduce((a, p) => a + p.length, 0);
    const out = new Uint8Array(n);
    let i = 0;
    for (const p of parts) { out.set(p, i); i += p.length; }
    return out;
  }
  function fVarint(no, v) { return Uint8Array.from(varintBytes(no * 8).concat(varintBytes(v))); }
  function fBytes(no, b) {
    return concat([Uint8Array.from(varintBytes(no * 8 + 2).concat(varintBytes(b.length))), b]);
  }
  const fString = (no, s) => fBytes(no, enc.encode(s));

  /* PAE(type, body) = "DSSEv1 len(type) type len(body) " body (sc_sign.h) */
  function pae(type, body) {
    const t = enc.encode(type);
    const head = enc.encode('DSSEv1 ' + t.length + ' ' + type + ' ' + body.length + ' ');
    return concat([head, body]);
  }

  const TYPE_APPROVAL = 'application/vnd.sldd.approval+protobuf; v=1';
  const DECISION = { approve: 1, reject: 2 };

  /* The Approval an admin signs: SHA-256 of the payload, admin, node,
   * decision, time (proto/sldd.proto, message Approval). */
  function approval(sha, admin, node, decision, timeUnix) {
    return concat([fBytes(1, sha), fString(2, admin), fString(3, node),
      fVarint(4, DECISION[decision]), fVarint(5, timeUnix)]);
  }

  /* The statement with one more signature: a repeated field appended at
   * the end, as the node's own code appends it (signatures are the last
   * field of a Statement). */
  function addSignature(statement, admin, keyId, sig, approvalBytes) {
    const s = concat([fVarint(1, 2), fString(2, admin), fBytes(3, keyId), fBytes(4, sig),
      fBytes(5, approvalBytes)]);
    return concat([statement, fBytes(3, s)]);
  }

  /* An admin's decision on statement st, as `sldd bundle approve` makes it
   * (sc_statement_approve): the Approval over SHA-256 of the payload in st,
   * signed with Ed25519 over PAE, appended to st.  sodium: libsodium's
   * wrappers; key: {name, node, pk, sk}.  Returns {sha (hex), signed}. */
  function signDecision(sodium, st, key, decision, timeUnix) {
    const hash = sodium.crypto_hash_sha256(parseStatement(st).payload);
    const ap = approval(hash, key.name, key.node, decision, timeUnix);
    const sig = sodium.crypto_sign_detached(pae(TYPE_APPROVAL, ap), key.sk);
    return { sha: hex(hash),
      signed: addSignature(st, key.name, sodium.crypto_hash_sha256(key.pk), sig, ap) };
  }

  /* ---- the admin key file (docs/keys.md) */

  function parseKeyFile(text) {
    const kv = {};
    for (const line of text.split('\n')) {
      const m = /^([a-z0-9-]+):\s*(.*?)\s*$/.exec(line);
      if (m) kv[m[1]] = m[2];
    }
    if (kv['sldd-secret-key'] !== 'v1' || kv.kind !== 'admin-ed25519-argon2id' ||
        kv.kdf !== 'argon2id13')
      throw new Error('this is not an sldd admin key file (admins/NAME.key)');
    const ops = Number(kv['kdf-opslimit']), mem = Number(kv['kdf-memlimit']);
    if (!Number.isSafeInteger(ops) || ops < 1 || ops > 10 || !Number.isSafeInteger(mem) ||
        mem < 8192 || mem > 1073741824)
      throw new Error('the key file asks for an Argon2id cost out of range');
    return { name: kv.name, node: kv.node, public: kv.public, ops, mem, salt: kv.salt,
      nonce: kv.nonce, box: kv.box };
  }

  window.SlddProto = { fields, parseStatement, parseBundle, pae, approval, addSignature,
    signDecision, parseKeyFile, hex, concat, TYPE_APPROVAL };
})();
