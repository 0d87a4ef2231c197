// Oracle for tests/p2p/test_binarypack.py: node's peerjs-js-binarypack packs and unpacks the same
// values as our Python codec.  stdin: {"pack": [desc...], "unpack": [hex...], "chunk": [desc...]};
// a desc is JSON where {"$bin": base64} stands for a Uint8Array.  stdout: the same shape, results.
"use strict";
const path = require("node:path");
const bp = require(path.join(process.argv[2], "peerjs-js-binarypack", "dist", "binarypack.cjs"));

const toJs = (d) => {
  if (Array.isArray(d)) return d.map(toJs);
  if (d && typeof d === "object") {
    if ("$bin" in d) return new Uint8Array(Buffer.from(d.$bin, "base64"));
    return Object.fromEntries(Object.entries(d).map(([k, v]) => [k, toJs(v)]));
  }
  return d;
};
const fromJs = (v) => {
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString("base64") };
  if (ArrayBuffer.isView(v)) return { $bin: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") };
  if (Array.isArray(v)) return v.map(fromJs);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fromJs(x)]));
  return v === undefined ? null : v;
};
const hex = (ab) => Buffer.from(ab).toString("hex");
const unhex = (h) => { const b = Buffer.from(h, "hex"); return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength); };

// peerjs 1.5.5 BinaryPack._send / Chunker.chunk, verbatim in behaviour (chunkedMTU 16300).
const chunk = (value) => {
  const blob = bp.pack(value);
  const mtu = 16300;
  if (blob.byteLength <= mtu) return [hex(blob)];
  const total = Math.ceil(blob.byteLength / mtu);
  const out = [];
  for (let start = 0, n = 0; start < blob.byteLength; start += mtu, n++) {
    const b = blob.slice(start, Math.min(blob.byteLength, start + mtu));
    out.push(hex(bp.pack({ __peerData: 1, n: n, data: b, total: total })));
  }
  return out;
};

let input = "";
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => {
  const req = JSON.parse(input);
  const res = {
    pack: req.pack.map((d) => hex(bp.pack(toJs(d)))),
    unpack: req.unpack.map((h) => fromJs(bp.unpack(unhex(h)))),
    chunk: req.chunk.map((d) => chunk(toJs(d))),
  };
  process.stdout.write(JSON.stringify(res));
});
