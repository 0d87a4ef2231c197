// Enkrypted web chat. Hand-written, no framework, no build step; served only as the verified
// wheel's bytes under a CSP with no inline script, no eval and Trusted Types required.
// Every string is drawn with textContent (never as HTML); peer text is neutralised once more.
"use strict";

const $ = (id) => document.getElementById(id);
let state = null;
let socket = null;
let panel = null;
let lastTyping = 0;
// This page's capability (docs/webui.md, "Access"): given for the URL's secret, kept in this tab's
// sessionStorage (never a cookie: cookies reach every port of 127.0.0.1) and shown on every request.
const CAPABILITY_KEY = "enkrypted-capability";
const CAPABILITY_FORM = /^[A-Za-z0-9_-]{16,128}$/;
let capability = null;
let qrUrl = null;

// Bidi overrides/isolates/marks, invisible and control characters -> a visible marker (the
// server does the same; see text.py).
const SUSPECT = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]|\udb40[\udc00-\udc7f]/g;
function clean(text) {
  return String(text ?? "").replace(SUSPECT, (c) =>
    "⟨U+" + c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0") + "⟩");
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = clean(value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function setText(id, value) { $(id).textContent = clean(value); }

function send(request) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(request));
}

// ------------------------------------------------------------------------------ signing in
async function signIn() {
  const match = /^#s=([A-Za-z0-9_-]{16,128})$/.exec(location.hash);
  if (match) {
    history.replaceState(null, "", "/");  // the secret leaves the address bar at once
    const res = await fetch("/api/session", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({secret: match[1]}), credentials: "same-origin"});
    if (!res.ok) return gate("The secret in that URL is wrong (or from an earlier run).");
    const given = (await res.json()).capability;
    if (!CAPABILITY_FORM.test(String(given))) return gate("The chat answered without a capability.");
    sessionStorage.setItem(CAPABILITY_KEY, given);
  }
  capability = sessionStorage.getItem(CAPABILITY_KEY);
  if (!capability || !CAPABILITY_FORM.test(capability)) return gate();
  connectSocket();
}

// A read that needs the session (QR code, a received file): the capability as a header.
async function fetchWithCapability(path) {
  const res = await fetch(path, {headers: {"X-Enkrypted-Capability": capability}, credentials: "same-origin"});
  if (!res.ok) throw new Error(`${path}: ${res.status} ${(await res.text()).slice(0, 200)}`);
  return res.blob();
}

function receivedFile(index) { return fetchWithCapability(`/api/file/${Number(index)}`); }

async function download(index, name) {
  try {
    const url = URL.createObjectURL(await receivedFile(index));
    el("a", {href: url, download: name}).click();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (err) {
    setText("file-status", `not downloaded: ${err.message}`);
  }
}

async function loadQr() {
  try {
    const url = URL.createObjectURL(await fetchWithCapability("/api/qr.svg"));
    if (qrUrl) URL.revokeObjectURL(qrUrl);
    qrUrl = url;
    $("qr").src = url;
  } catch (err) {
    $("qr").alt = clean(`no QR code: ${err.message}`);
  }
}

function gate(reason) {
  $("gate").hidden = false;
  $("body").hidden = true;
  if (reason) setText("gate-reason", reason);
}

function connectSocket() {
  socket = new WebSocket(`ws://${location.host}/ws`, ["enkrypted.v1", `enkrypted.cap.${capability}`]);
  let opened = false;
  socket.addEventListener("open", () => { opened = true; $("gate").hidden = true; $("body").hidden = false; });
  socket.addEventListener("message", (ev) => {
    const doc = JSON.parse(ev.data);
    if (doc.type === "state") { state = doc; render(); }
  });
  socket.addEventListener("close", () => {
    if (!opened) return gate();
    $("online").textContent = "disconnected from the chat process";
    $("online").className = "off";
  });
}

// ---------------------------------------------------------------------------------- render
function render() {
  const s = state;
  setText("me", s.me.peer_id);
  $("online").textContent = s.online ? "" : "chat service stopped";
  $("online").className = s.online ? "" : "off";
  renderContacts(s);
  renderGroups(s);
  if (s.group) renderGroupConversation(s.group); else renderConversation(s.conversation);
  setText("notice", noticeText(s));
  renderConnect(s);
  renderSafety(s);
  renderFiles(s);
  renderGroupPanel(s.group);
}

function noticeText(s) {
  if (s.group) return s.notice;
  const active = s.contacts.find((c) => c.peer_id === s.active);
  return active && active.typing ? `${active.label} is typing…` : s.notice;
}

const CRYPTO_MARK = {verified: "✓", unverified: "?", changed: "!", none: ""};

function renderContacts(s) {
  const list = $("contacts");
  list.replaceChildren(...s.contacts.map((c) => {
    const button = el("button", {type: "button", title: `${c.state}; ${c.crypto}`,
      on: {click: () => send({op: "select", peer: c.peer_id})}},
      el("span", {class: `dot ${c.state}`}),
      el("span", {class: "label", text: c.label}),
      el("span", {class: `crypto ${c.crypto}`, text: CRYPTO_MARK[c.crypto] ?? ""}));
    if (c.unread) button.append(el("span", {class: "unread", text: String(c.unread)}));
    return el("li", {class: c.peer_id === s.active && !s.group ? "active" : "",
                     dataset: {peer: c.peer_id, state: c.state, crypto: c.crypto}}, button);
  }));
}

function clock(at) {
  const d = new Date(at * 1000);
  return `[${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}]`;
}

function renderConversation(conv) {
  const list = $("conversation");
  const atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
  $("banner").hidden = !(conv && conv.key_changed);
  if (conv && conv.key_changed)
    setText("banner", `⚠ ${conv.label}'s identity key changed: sending is blocked. Open "Safety number".`);
  setText("conv-title", conv ? conv.label : "no conversation: connect to a peer");
  setText("conv-status", conv ? [conv.state, conv.profile, conv.layers.join(" > ")].filter(Boolean).join(" · ") : "");
  list.replaceChildren(...(conv ? conv.lines : []).map((line) => {
    const item = el("li", {class: line.dir, dataset: {dir: line.dir}},
      el("span", {class: "at", text: clock(line.at)}));
    if (line.dir !== "note") item.append(el("span", {class: "who", text: line.dir === "out" ? "me:" : `${conv.label}:`}));
    item.append(el("span", {class: "text", text: line.text}));
    if (line.dir === "out") item.append(el("span", {class: `mark${line.delivered ? " done" : ""}`,
                                                    text: line.delivered ? "✓" : "…"}));
    return item;
  }));
  if (atEnd) list.scrollTop = list.scrollHeight;
  const blocked = !conv || !!conv.blocked;
  $("send").disabled = blocked;
  $("send").title = conv && conv.blocked ? clean(conv.blocked) : "";
  $("hangup").disabled = !conv || conv.state === "disconnected";
  $("hangup").hidden = false;
  $("open-group").hidden = true;
}

// ---------------------------------------------------------------------------------- groups
function renderGroups(s) {
  $("groups-box").hidden = !s.groups_supported;
  $("groups").replaceChildren(...s.groups.map((g) => {
    const flag = g.fork ? "fork" : g.changed ? "key changed" : g.state === "active" ? "" : g.state;
    const button = el("button", {type: "button", title: `${g.state}; epoch ${g.epoch}`,
      on: {click: () => send({op: "group-select", group: g.group_id})}},
      el("span", {class: "label", text: g.label}),
      el("span", {class: "meta", text: `${g.members} · e${g.epoch}`}));
    if (flag) button.append(el("span", {class: `flag ${g.state}`, text: flag}));
    if (g.unread) button.append(el("span", {class: "unread", text: String(g.unread)}));
    return el("li", {class: g.group_id === s.active_group ? "active" : "",
                     dataset: {group: g.group_id, state: g.state, fork: String(g.fork)}}, button);
  }));
}

function receiptMarks(line) {
  const marks = el("span", {class: "receipts", title: `received by ${line.got} of ${line.of}`});
  for (const r of line.receipts)
    marks.append(el("span", {class: `rcpt${r.done ? " done" : ""}`, dataset: {who: r.who},
                             text: `${r.done ? "✓" : "…"}${r.who}`}));
  if (line.of > line.receipts.length || !line.of)
    marks.append(el("span", {class: "count", text: `${line.got}/${line.of}`}));
  return marks;
}

function groupBanner(g) {
  if (g.fork) return `⚠ ${g.fork}`;
  if (g.left) return `${g.left}`;
  if (g.changed) return `⚠ ${g.blocked}`;
  return "";
}

function renderGroupConversation(g) {
  const list = $("conversation");
  const atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
  const banner = groupBanner(g);
  $("banner").hidden = !banner;
  $("banner").className = g.state === "left" && !g.fork ? "muted" : "";
  setText("banner", banner);
  setText("conv-title", g.label);
  setText("conv-status", [`${g.members.length} members`, `epoch ${g.epoch}`, g.state].join(" · "));
  list.replaceChildren(...g.lines.map((line) => {
    const item = el("li", {class: line.dir, dataset: {dir: line.dir}},
      el("span", {class: "at", text: clock(line.at)}));
    if (line.dir !== "note") item.append(el("span", {class: "who", text: line.dir === "out" ? "me:" : `${line.sender}:`}));
    item.append(el("span", {class: "text", text: line.text}));
    if (line.dir === "out") item.append(receiptMarks(line));
    return item;
  }));
  if (atEnd) list.scrollTop = list.scrollHeight;
  $("send").disabled = !!g.blocked;
  $("send").title = g.blocked ? clean(g.blocked) : "";
  $("hangup").hidden = true;
  $("open-group").hidden = false;
}

const KEY_STATE = {me: "us", verified: "✓ verified", unverified: "? not verified", changed: "! CHANGED"};

function memberRow(g, m) {
  const actions = el("td");
  if (m.crypto === "changed")
    actions.append(el("button", {type: "button", text: "Acknowledge the new key", dataset: {action: "acknowledge"},
      on: {click: () => send({op: "group-acknowledge", group: g.group_id, peer: m.peer_id})}}));
  if (!m.me && g.state === "active")
    actions.append(el("button", {type: "button", text: "Remove", dataset: {action: "remove"},
      on: {click: () => send({op: "group-remove", group: g.group_id, peer: m.peer_id})}}));
  const fp = el("td", {class: "fp"}, el("code", {text: m.fingerprint}));
  if (m.crypto === "changed") fp.append(el("div", {class: "error", text: `pinned: ${m.pinned}`}));
  return el("tr", {dataset: {peer: m.peer_id, crypto: m.crypto}},
    el("td", {class: "label", text: `${m.peer_id || "(peer id unknown)"}${m.me ? " (us)" : ""}${m.sequencer ? " ★" : ""}`,
              title: m.sequencer ? "the sequencer: commits this epoch's changes" : ""}),
    fp,
    el("td", {class: "sn-small", text: m.safety_number ? groups(m.safety_number) : m.me ? "" : "no 1:1 session with this key"}),
    el("td", {class: `crypto ${m.crypto}`, text: KEY_STATE[m.crypto] ?? m.crypto}),
    actions);
}

function renderGroupPanel(g) {
  if (panel !== "panel-group") return;
  if (!g) { closePanels(); return; }
  setText("pg-name", g.label);
  setText("pg-state", `${g.members.length} members · epoch ${g.epoch} · ${g.state}` +
    " · ★ the sequencer commits changes; an added member joins once it commits");
  $("pg-fork").hidden = !g.fork;
  setText("pg-fork", g.fork || "");
  $("pg-left").hidden = !g.left;
  setText("pg-left", g.left || "");
  $("pg-changed").hidden = !g.changed;
  const active = g.state === "active";
  for (const id of ["group-rename", "group-add", "group-leave", "group-name", "group-peer"]) $(id).disabled = !active;
  $("group-members").tBodies[0].replaceChildren(...g.members.map((m) => memberRow(g, m)));
}

function renderConnect(s) {
  setText("my-id", s.me.peer_id);
  setText("my-fp", s.me.fingerprint);
  setText("my-invite", s.me.invite);
}

function groups(number) { return clean(number).replace(/(\d{5})(?=\d)/g, "$1 "); }

function renderSafety(s) {
  const c = s.conversation;
  setText("sn-peer", c ? c.label : "");
  $("safety-number").textContent = c && c.safety_number ? groups(c.safety_number) : "no session yet";
  setText("peer-fp", c ? c.fingerprint || "(no session yet)" : "");
  setText("own-fp", s.me.fingerprint);
  $("key-changed").hidden = !(c && c.key_changed);
  if (c && c.key_changed) { setText("kc-peer", c.label); setText("kc-old", c.pinned); setText("kc-new", c.fingerprint); }
  setText("verified-state", !c ? "" : c.key_changed ? "" : c.verified ? "✓ verified" : "not verified");
  $("verify").disabled = !c || c.key_changed || !c.fingerprint || c.verified;
}

function size(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i ? `${n.toFixed(1)} ${units[i]}` : `${n} B`;
}

function transferState(t) {
  if (t.state === "done") return "verified ✓";
  if (t.state === "failed") return `failed: ${t.reason}`;
  if (t.state === "offered") return "offered: accept?";
  if (t.state === "waiting") return "waiting for the peer";
  const eta = t.eta == null ? "?" : `${Math.round(t.eta)} s`;
  return `${size(t.bytes)} of ${size(t.size)}, ${size(t.rate)}/s, ETA ${eta}`;
}

function renderFiles(s) {
  $("files-missing").hidden = s.files_supported;
  $("files-send").hidden = !s.files_supported;
  setText("files-peer", s.conversation ? s.conversation.label : "(pick a contact)");
  if (s.conversation && !panelTouched) $("file-fast").checked = s.conversation.fast;
  $("transfers").tBodies[0].replaceChildren(...s.transfers.map((t) => {
    const actions = el("td");
    const act = (label, action) => actions.append(el("button", {type: "button", text: label,
      dataset: {action}, on: {click: () => send({op: "transfer", key: t.key, action})}}));
    if (t.state === "offered") { act("Accept", "accept"); act("Reject", "reject"); }
    else if (t.state === "active" || t.state === "waiting") act("Cancel", "cancel");
    return el("tr", {dataset: {key: String(t.key), state: t.state}},
      el("td", {text: t.outgoing ? "→ sending" : "← receiving"}),
      el("td", {text: t.peer_id}),
      el("td", {class: "name", text: t.name}),
      el("td", {text: size(t.size)}),
      el("td", {class: t.fast ? "fast" : "", text: t.fast ? "FAST: reduced protection" : "standard"}),
      el("td", {}, el("progress", {max: "1", value: String(t.fraction)})),
      el("td", {class: "state", text: transferState(t)}),
      actions);
  }));
  $("received").replaceChildren(...s.received.map((f, i) => el("li", {},
    el("span", {class: "name", text: `${f.name} (${size(f.size)}) from ${f.peer_id} sha256 ${f.sha256.slice(0, 16)}… `}),
    el("button", {type: "button", text: "Download", dataset: {index: String(i)},
                  on: {click: () => download(i, clean(f.name))}}))));
}

// --------------------------------------------------------------------------------- actions
let panelTouched = false;

function openPanel(id) {
  for (const p of document.querySelectorAll(".panel")) p.hidden = p.id !== id;
  panel = id;
  panelTouched = false;
  if (id === "panel-connect") { loadQr(); $("target").focus(); }
  if (id === "panel-new-group") $("new-group-name").focus();
  if (state) render();
}

function closePanels() {
  for (const p of document.querySelectorAll(".panel")) p.hidden = true;
  panel = null;
  $("message").focus();
}

function sendMessage() {
  const box = $("message");
  const g = state && state.group;
  if (g) {
    if (!box.value.trim()) return;
    if (g.blocked) { setText("notice", g.blocked); return; }
    send({op: "group-send", group: g.group_id, text: box.value});
    box.value = "";
    return;
  }
  const c = state && state.conversation;
  if (!c || !box.value.trim()) return;
  if (c.blocked) { setText("notice", c.blocked); return; }
  send({op: "send", peer: c.peer_id, text: box.value});
  box.value = "";
}

function uploadFile() {
  const file = $("file-pick").files[0];
  const c = state && state.conversation;
  if (!file || !c) { setText("file-status", !c ? "pick a contact first" : "pick a file first"); return; }
  const fast = $("file-fast").checked;
  send({op: "fast", peer: c.peer_id, value: fast});
  const query = new URLSearchParams({peer: c.peer_id, name: file.name, fast: fast ? "1" : "0"});
  const xhr = new XMLHttpRequest();
  xhr.open("POST", `/api/upload?${query}`);
  xhr.setRequestHeader("X-Enkrypted-Capability", capability);
  xhr.upload.addEventListener("progress", (ev) => {
    if (ev.lengthComputable) setText("file-status", `handing ${file.name} to the chat: ${Math.round(100 * ev.loaded / ev.total)}%`);
  });
  xhr.addEventListener("load", () => setText("file-status", xhr.status === 202 ? `${file.name} offered` : `not sent: ${xhr.responseText}`));
  xhr.addEventListener("error", () => setText("file-status", "not sent: the upload failed"));
  xhr.send(file);
}

function wire() {
  $("open-connect").addEventListener("click", () => openPanel("panel-connect"));
  $("open-safety").addEventListener("click", () => openPanel("panel-safety"));
  $("open-files").addEventListener("click", () => openPanel("panel-files"));
  $("quit").addEventListener("click", () => send({op: "quit"}));
  for (const b of document.querySelectorAll(".panel .close")) b.addEventListener("click", closePanels);
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") closePanels(); });
  $("send").addEventListener("click", sendMessage);
  $("message").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); sendMessage(); }
  });
  $("message").addEventListener("input", () => {
    const c = state && !state.group && state.conversation;
    if (c && !c.blocked && Date.now() - lastTyping > 3000) { lastTyping = Date.now(); send({op: "typing", peer: c.peer_id}); }
  });
  $("hangup").addEventListener("click", () => state && state.conversation && send({op: "hangup", peer: state.conversation.peer_id}));
  const connect = () => {
    const target = $("target").value.trim();
    if (!target) return;
    send({op: "connect", target});
    $("target").value = "";
    closePanels();
  };
  $("connect").addEventListener("click", connect);
  $("target").addEventListener("keydown", (ev) => { if (ev.key === "Enter") connect(); });
  $("verify").addEventListener("click", () => send({op: "verify", peer: state.conversation.peer_id}));
  $("acknowledge").addEventListener("click", () => send({op: "acknowledge", peer: state.conversation.peer_id}));
  $("file-fast").addEventListener("change", () => { panelTouched = true; });
  $("file-send").addEventListener("click", uploadFile);
  wireGroups();
}

function wireGroups() {
  const group = () => state && state.group;
  const onEnter = (id, fn) => $(id).addEventListener("keydown", (ev) => { if (ev.key === "Enter") fn(); });
  $("open-new-group").addEventListener("click", () => openPanel("panel-new-group"));
  $("open-group").addEventListener("click", () => openPanel("panel-group"));
  const create = () => {
    const name = $("new-group-name").value.trim();
    if (!name) return;
    send({op: "group-create", name});
    $("new-group-name").value = "";
    closePanels();
  };
  $("group-create").addEventListener("click", create);
  onEnter("new-group-name", create);
  const rename = () => {
    const name = $("group-name").value.trim();
    if (name && group()) { send({op: "group-rename", group: group().group_id, name}); $("group-name").value = ""; }
  };
  $("group-rename").addEventListener("click", rename);
  onEnter("group-name", rename);
  const add = () => {
    const peer = $("group-peer").value.trim();
    if (peer && group()) { send({op: "group-add", group: group().group_id, peer}); $("group-peer").value = ""; }
  };
  $("group-add").addEventListener("click", add);
  onEnter("group-peer", add);
  $("group-leave").addEventListener("click", () => group() && send({op: "group-leave", group: group().group_id}));
}

wire();
signIn();
