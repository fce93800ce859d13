// proto_check.mjs - the page's decision signing (node/web/dash-proto.js,
// signDecision) with the vendored libsodium, run in Node.js in a
// browser-like context.  Used by test_dash_proto.c: reads a JSON file
// {statement, sk, pk, name, node, decision, time} (hex for bytes) and
// prints the signed statement in hex, then the payload hash.
import fs from 'node:fs';
import vm from 'node:vm';
import { webcrypto } from 'node:crypto';

const [, , input, webDir, sodiumDir] = process.argv;
const T = JSON.parse(fs.readFileSync(input, 'utf8'));
const ctx = { TextEncoder, TextDecoder, crypto: webcrypto, console };
ctx.window = ctx;
ctx.self = ctx;
vm.createContext(ctx);
for (const f of [sodiumDir + '/libsodium-sumo.js', sodiumDir + '/libsodium-wrappers.js',
  webDir + '/dash-proto.js'])
  vm.runInContext(fs.readFileSync(f, 'utf8'), ctx, { filename: f });
const sodium = ctx.sodium;
await sodium.ready;
// byte arrays of the context's own realm, as the page has them
const U8 = vm.runInContext('Uint8Array', ctx);
const fromHex = (h) => U8.from(h.match(/../g).map((x) => parseInt(x, 16)));
const key = { name: T.name, node: T.node, pk: fromHex(T.pk), sk: fromHex(T.sk) };
const d = ctx.SlddProto.signDecision(sodium, fromHex(T.statement), key, T.decision, T.time);
console.log(ctx.SlddProto.hex(d.signed));
console.log(d.sha);
