// Shared by every page: the API wrapper (cookie + CSRF header), sign-out, the idle lock
// warning, and small DOM and formatting helpers. Plain ES module, no build step.

export const CSRF = { "X-Requested-With": "sightline" };

const body = document.body;
const idleSeconds = Number(body.dataset.idleSeconds || 0);
const WARN_BEFORE = 120; // seconds
let idleDeadline = 0;
let idleTimer = null;

export class ApiFailure extends Error {
  constructor(status, code, detail) {
    super(detail || `request failed (${status})`);
    this.status = status;
    this.code = code;
  }
}

export function signInUrl(locked) {
  // a mutual-aid guest's session ends with the emergency: nothing to sign in again to
  if ((body.dataset.user || "").startsWith("guest:")) return "/signin?guest_ended=1";
  const next = encodeURIComponent(location.pathname + location.search);
  return `/signin?next=${next}${locked ? "&locked=1" : ""}`;
}

/** Calls the JSON API with the session cookie. ``passive`` requests do not count as activity. */
export async function api(path, { method = "GET", json, params, passive = false } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  }
  const headers = { Accept: "application/json", ...CSRF };
  if (passive) headers["X-Sightline-Activity"] = "passive";
  const init = { method, headers, credentials: "same-origin" };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const res = await fetch(url, init);
  if (res.status === 401 && body.dataset.page !== "signin") {
    location.assign(signInUrl(true));
    throw new ApiFailure(401, "unauthorized", "signed out");
  }
  let data = null;
  const type = res.headers.get("content-type") || "";
  if (type.includes("application/json")) data = await res.json();
  if (!res.ok) throw new ApiFailure(res.status, data && data.error, data && data.detail);
  if (!passive) resetIdle();
  return data;
}

// ---- idle lock: the server enforces it; this only warns and then leaves the page.
function resetIdle() {
  if (!idleSeconds) return;
  idleDeadline = Date.now() + idleSeconds * 1000;
  const warning = document.getElementById("idle-warning");
  if (warning) warning.hidden = true;
}

// Video that plays keeps the session awake on the server (gateway/identity/signin.py), so
// before warning or leaving, ask the server when its lock really falls (a passive request).
let askedAt = 0;
async function serverDeadline() {
  askedAt = Date.now();
  try {
    const s = await api("/api/v1/auth/session", { passive: true });
    const at = Date.parse(s.expires);
    if (at > idleDeadline) idleDeadline = at;
    const warning = document.getElementById("idle-warning");
    if (warning && idleDeadline - Date.now() > WARN_BEFORE * 1000) warning.hidden = true;
  } catch (err) { /* a 401 leaves the page by itself */ }
}

function tickIdle() {
  if (!idleSeconds) return;
  const left = Math.round((idleDeadline - Date.now()) / 1000);
  const warning = document.getElementById("idle-warning");
  if (left <= WARN_BEFORE + 5 && Date.now() - askedAt > 10000) serverDeadline();
  if (left <= -2) {
    location.assign(signInUrl(true));
    return;
  }
  if (warning && left <= WARN_BEFORE) {
    warning.hidden = false;
    const countdown = document.getElementById("idle-countdown");
    if (countdown) countdown.textContent = left > 60 ? `${Math.ceil(left / 60)} minutes` : `${Math.max(left, 0)} seconds`;
  }
}

if (idleSeconds) {
  resetIdle();
  idleTimer = setInterval(tickIdle, 1000);
  // one tap anywhere on the warning keeps the session
  document.getElementById("idle-warning")?.addEventListener("click", () => api("/api/v1/auth/session").catch(() => {}));
}

document.getElementById("sign-out")?.addEventListener("click", async () => {
  try {
    await fetch("/api/v1/auth/logout", { method: "POST", headers: CSRF, credentials: "same-origin" });
  } finally {
    if (idleTimer) clearInterval(idleTimer);
    location.assign("/signin?signed_out=1");
  }
});

// ---- DOM helpers (text only: nothing from the server is parsed as HTML)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A table row whose cells carry their column label, so the table can stack on a phone. */
export function row(table, cells) {
  const labels = [...table.querySelectorAll("thead th")].map((th) => th.textContent);
  return el("tr", {}, cells.map((c, i) => el("td", { "data-label": labels[i] || "" }, c)));
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

// ---- formatting
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dateTime.format(d);
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "still open";
  const s = Math.round(Number(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60), rest = s % 60;
  if (m < 60) return rest ? `${m} min ${rest} s` : `${m} min`;
  const h = Math.floor(m / 60);
  return `${h} h ${m % 60} min`;
}

export function words(code) {
  if (!code) return "—";
  const text = String(code).replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1).toLowerCase();
}

export function showError(node, err) {
  node.hidden = false;
  node.classList.add("error");
  node.textContent = err instanceof ApiFailure ? err.message : `Something went wrong: ${err}`;
}

/** The verification banner shared by the audit pages. */
export async function loadVerifyBanner() {
  const banner = document.getElementById("verify-banner");
  if (!banner) return;
  try {
    const v = await api("/api/v1/audit/verify");
    banner.classList.remove("pending");
    if (v.ok) {
      banner.className = "banner ok";
      const checkpoint = describeCheckpoint(v.checkpoints, v);
      banner.textContent = `Audit log verified: ${v.checked} entries intact` + (checkpoint ? `, ${checkpoint}` : "") +
        (v.mirror && typeof v.mirror === "object" && v.mirror.ok === false ? ". The mirror copy does NOT match." : ".");
      if (v.mirror && v.mirror.ok === false) banner.className = "banner bad";
    } else {
      banner.className = "banner bad";
      banner.textContent = `Audit log FAILED verification at entry ${v.first_bad_seq ?? "?"}: ${v.problem || "unknown problem"}. ` +
        "Entries from there on cannot be trusted; tell the district's security officer.";
    }
  } catch (err) {
    banner.className = "banner bad";
    banner.textContent = `Could not verify the audit log: ${err.message}`;
  }
}

function describeCheckpoint(cp, v = {}) {
  if (typeof cp === "number") {
    if (!cp) return "no signed checkpoint yet";
    const at = v.last_checkpoint_seq !== undefined && v.last_checkpoint_seq !== null ? ` at entry ${v.last_checkpoint_seq}` : "";
    return `last signed checkpoint${at} (${cp} checkpoint${cp === 1 ? "" : "s"})`;
  }
  if (!cp) return "";
  let last = cp;
  if (Array.isArray(cp)) last = cp[cp.length - 1];
  else if (cp.last) last = cp.last;
  else if (cp.latest) last = cp.latest;
  if (!last || typeof last !== "object") return typeof cp.count === "number" ? `${cp.count} signed checkpoints` : "";
  const seq = last.seq ?? last.upto_seq ?? last.up_to_seq;
  const when = last.ts ?? last.at ?? last.signed_at ?? last.created;
  const parts = ["last signed checkpoint"];
  if (seq !== undefined) parts.push(`at entry ${seq}`);
  if (when) parts.push(`(${fmtTime(when)})`);
  return parts.join(" ");
}
