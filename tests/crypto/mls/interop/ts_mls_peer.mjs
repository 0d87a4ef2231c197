// A ts-mls group member driven over stdin/stdout: one JSON request per line, one JSON reply
// per line.  Binary values are lowercase hex.  Run with NODE_PATH=tools/node/node_modules.
// Used by tests/crypto/mls/test_interop_ts_mls.py; holds exactly one member's state.
import { createRequire } from "node:module";
import readline from "node:readline";

const require = createRequire(import.meta.url);
const mls = await import(require.resolve("ts-mls"));
const { encodeRatchetTree } = await import(require.resolve("ts-mls/ratchetTree.js"));

const hex = (b) => Buffer.from(b).toString("hex");
const unhex = (s) => new Uint8Array(Buffer.from(s, "hex"));

let impl;
let member; // { publicPackage, privatePackage }
let state;

function decode(hexString) {
  const decoded = mls.decodeMlsMessage(unhex(hexString), 0);
  if (!decoded) throw new Error("undecodable MLSMessage");
  return decoded[0];
}

function summary() {
  return {
    epoch: Number(state.groupContext.epoch),
    epoch_authenticator: hex(state.keySchedule.epochAuthenticator),
    members: state.ratchetTree
      .map((n, i) => (n && n.nodeType === "leaf" ? i / 2 : null))
      .filter((i) => i !== null),
  };
}

async function commit(extraProposals, publicMessage) {
  const result = await mls.createCommit(
    { state, cipherSuite: impl },
    { extraProposals, ratchetTreeExtension: true, wireAsPublicMessage: publicMessage !== false },
  );
  state = result.newState;
  const welcome = result.welcome
    ? hex(mls.encodeMlsMessage({ welcome: result.welcome, wireformat: "mls_welcome", version: "mls10" }))
    : null;
  return { commit: hex(mls.encodeMlsMessage(result.commit)), welcome, ...summary() };
}

const handlers = {
  async init({ suite, identity }) {
    const name = Object.keys(mls.ciphersuites).find((k) => mls.ciphersuites[k] === suite);
    impl = await mls.getCiphersuiteImpl(mls.getCiphersuiteFromName(name));
    const credential = { credentialType: "basic", identity: new TextEncoder().encode(identity) };
    member = await mls.generateKeyPackage(credential, mls.defaultCapabilities(), mls.defaultLifetime, [], impl);
    const message = { keyPackage: member.publicPackage, wireformat: "mls_key_package", version: "mls10" };
    return { key_package: hex(mls.encodeMlsMessage(message)), suite_name: name };
  },
  async create_group({ group_id }) {
    state = await mls.createGroup(unhex(group_id), member.publicPackage, member.privatePackage, [], impl);
    return summary();
  },
  async add({ key_package, public: pub }) {
    const kp = decode(key_package);
    if (kp.wireformat !== "mls_key_package") throw new Error("expected a KeyPackage");
    return commit([{ proposalType: "add", add: { keyPackage: kp.keyPackage } }], pub);
  },
  async remove({ leaf, public: pub }) {
    return commit([{ proposalType: "remove", remove: { removed: leaf } }], pub);
  },
  async update({ public: pub }) {
    return commit([], pub);
  },
  async propose_remove({ leaf, public: pub }) {
    const proposal = { proposalType: "remove", remove: { removed: leaf } };
    const result = await mls.createProposal(state, pub !== false, proposal, impl);
    state = result.newState;
    return { message: hex(mls.encodeMlsMessage(result.message)) };
  },
  async commit_pending({ public: pub }) {
    return commit([], pub);
  },
  async group_info() {
    const info = await mls.createGroupInfoWithExternalPubAndRatchetTree(state, [], impl);
    return { group_info: hex(mls.encodeMlsMessage({ groupInfo: info, wireformat: "mls_group_info", version: "mls10" })) };
  },
  async join_external({ group_info }) {
    const m = decode(group_info);
    if (m.wireformat !== "mls_group_info") throw new Error("expected a GroupInfo");
    const result = await mls.joinGroupExternal(m.groupInfo, member.publicPackage, member.privatePackage, false, impl);
    state = result.newState;
    const message = { publicMessage: result.publicMessage, wireformat: "mls_public_message", version: "mls10" };
    return { commit: hex(mls.encodeMlsMessage(message)), ...summary() };
  },
  async propose_join({ group_info }) {
    const m = decode(group_info);
    if (m.wireformat !== "mls_group_info") throw new Error("expected a GroupInfo");
    const message = await mls.proposeAddExternal(m.groupInfo, member.publicPackage, member.privatePackage, impl);
    return { message: hex(mls.encodeMlsMessage(message)) };
  },
  async new_key_package({ identity }) {
    const credential = { credentialType: "basic", identity: new TextEncoder().encode(identity) };
    member = await mls.generateKeyPackage(credential, mls.defaultCapabilities(), mls.defaultLifetime, [], impl);
    const message = { keyPackage: member.publicPackage, wireformat: "mls_key_package", version: "mls10" };
    return { key_package: hex(mls.encodeMlsMessage(message)) };
  },
  async reinit({ group_id }) {
    const result = await mls.reinitGroup(state, unhex(group_id), "mls10", state.groupContext.cipherSuite, [], impl);
    state = result.newState;
    return { commit: hex(mls.encodeMlsMessage(result.commit)) };
  },
  async reinit_create({ key_packages, group_id }) {
    const kps = key_packages.map((k) => decode(k).keyPackage);
    const name = state.groupContext.cipherSuite;
    const result = await mls.reinitCreateNewGroup(state, member.publicPackage, member.privatePackage, kps, unhex(group_id), name, []);
    state = result.newState;
    const welcome = hex(mls.encodeMlsMessage({ welcome: result.welcome, wireformat: "mls_welcome", version: "mls10" }));
    // reinitCreateNewGroup sends no ratchet_tree extension: hand the tree over out of band.
    return { welcome, ratchet_tree: hex(encodeRatchetTree(state.ratchetTree)), ...summary() };
  },
  async join_reinit({ welcome }) {
    const w = decode(welcome);
    state = await mls.joinGroupFromReinit(state, w.welcome, member.publicPackage, member.privatePackage, undefined);
    return summary();
  },
  async join({ welcome }) {
    const w = decode(welcome);
    if (w.wireformat !== "mls_welcome") throw new Error("expected a Welcome");
    state = await mls.joinGroup(w.welcome, member.publicPackage, member.privatePackage, mls.emptyPskIndex, impl);
    return summary();
  },
  async send({ data }) {
    const result = await mls.createApplicationMessage(state, unhex(data), impl);
    state = result.newState;
    const message = { privateMessage: result.privateMessage, wireformat: "mls_private_message", version: "mls10" };
    return { message: hex(mls.encodeMlsMessage(message)) };
  },
  async process({ message }) {
    const m = decode(message);
    const result = await mls.processMessage(m, state, mls.emptyPskIndex, mls.acceptAll, impl);
    state = result.newState;
    if (result.kind === "applicationMessage") return { kind: "application", data: hex(result.message) };
    return { kind: "handshake", ...summary() };
  },
  async export({ label, context, length }) {
    const secret = await mls.mlsExporter(state.keySchedule.exporterSecret, label, unhex(context), length, impl);
    return { secret: hex(secret), ...summary() };
  },
};

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  let reply;
  try {
    const request = JSON.parse(line);
    const handler = handlers[request.op];
    if (!handler) throw new Error(`unknown op ${request.op}`);
    reply = { ok: true, ...(await handler(request)) };
  } catch (err) {
    reply = { ok: false, error: String(err && err.stack ? err.stack : err) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
