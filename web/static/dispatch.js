// The dispatcher's page: ask a school for camera access (building, kind of call, action,
// reason), and follow one's own requests until the school answers. The school's
// administrator decides (or the district's plan, for the call types it approves by
// itself); the dispatcher never sees video. What is typed is kept in this tab
// (sessionStorage) until it is sent, so an error, a reload or the idle sign-out never
// loses it. Server data is inserted as text only. Polls are passive (they do not keep a
// session awake).

import { api, ApiFailure, clear, el, fmtTime, words } from "/static/common.js";

const pageData = JSON.parse(document.getElementById("page-data").textContent || "{}");
const buildings = pageData.buildings || [];
const buildingName = Object.fromEntries(buildings.map((b) => [b.id, b.name]));
const callLabel = Object.fromEntries((pageData.call_types || []).map((c) => [c.id, c.label]));
const incidentLabel = Object.fromEntries((pageData.incident_types || []).map((i) => [i.id, i.label]));
const deciders = pageData.deciders || {};
const sharedCounts = pageData.shared_counts || {};
const POLL_MS = 2000;
const SHOW_AT_MOST = 20;
const SUBMIT_LABEL = "Ask the school for camera access";

const form = document.getElementById("request-form");
const callType = document.getElementById("call-type");
const incident = document.getElementById("incident-type");
const reason = document.getElementById("reason");
const reasonCount = document.getElementById("reason-count");
const formError = document.getElementById("form-error");
const formStatus = document.getElementById("form-status");
const submit = document.getElementById("submit-request");
const list = document.getElementById("my-requests");
const listEmpty = document.getElementById("requests-empty");
const listStatus = document.getElementById("requests-status");
const announce = document.getElementById("requests-announce");
const latest = document.getElementById("latest");

const nameOf = (id) => buildingName[id] || id;
const timeOnly = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toDateString() === new Date().toDateString() ? `${timeOnly.format(d)} today` : fmtTime(iso);
}

function ago(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (!Number.isFinite(s)) return "";
  if (s < 60) return "just now";
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.floor(m / 60);
  return h < 24 ? `${h} h ${m % 60} min ago` : `${Math.floor(h / 24)} days ago`;
}

// ------------------------------------------------------------------ the form

function checked(name) {
  return form.querySelector(`input[name=${name}]:checked`)?.value || "";
}

function values() {
  return { building: checked("building"), call_type: callType.value, action: checked("action"),
    incident_type: incident.value, reason: reason.value };
}

// The draft of this person in this tab: restored after a reload or a sign-in, dropped once sent.
const DRAFT_KEY = `sightline.dispatch.draft.${document.body.dataset.user || ""}`;

function saveDraft() {
  try {
    sessionStorage.setItem(DRAFT_KEY, JSON.stringify(values()));
  } catch { /* storage off: the form itself still keeps what is typed */ }
}

function restoreDraft() {
  let draft = null;
  try {
    draft = JSON.parse(sessionStorage.getItem(DRAFT_KEY) || "null");
  } catch { draft = null; }
  if (!draft || typeof draft !== "object") return false;
  const pick = (name, value) => {
    const input = [...form.querySelectorAll(`input[name=${name}]`)].find((i) => i.value === value);
    if (input) input.checked = true;
  };
  pick("building", draft.building);
  pick("action", draft.action);
  if ([...callType.options].some((o) => o.value === draft.call_type)) callType.value = draft.call_type;
  if ([...incident.options].some((o) => o.value === draft.incident_type)) incident.value = draft.incident_type;
  if (typeof draft.reason === "string") reason.value = draft.reason;
  return Boolean(draft.reason && draft.reason.trim());
}

function updateCount() {
  reasonCount.textContent = String(reason.value.length);
}

function updateShares() {
  const building = checked("building");
  for (const node of form.querySelectorAll("[data-shares]")) {
    const action = node.dataset.shares;
    const base = (pageData.actions || []).find((a) => a.id === action);
    const count = building && sharedCounts[building] ? sharedCounts[building][action] : undefined;
    if (count === undefined) node.textContent = base ? `Police would see ${base.shares}.` : "";
    else if (count === 0) node.textContent = "Police would see no cameras.";
    else node.textContent = `Police would see ${count} camera${count === 1 ? "" : "s"}.`;
  }
}

function say(node, text) {
  node.hidden = !text;
  clear(node);
  if (text) node.append(...(Array.isArray(text) ? text : [text]));
}

function fail(text, focus) {
  formStatus.hidden = true;
  say(formError, text);
  for (const f of [reason, callType]) f.removeAttribute("aria-invalid");
  if (focus) {
    if (focus === reason || focus === callType) focus.setAttribute("aria-invalid", "true");
    focus.focus();
  }
}

/** An API refusal in plain words, with what to do next. */
function explain(err, v) {
  const school = nameOf(v.building);
  if (!(err instanceof ApiFailure)) {
    return ["Could not reach the Sightline server. Your request may not have been sent: look under “Your requests”",
      " before pressing the button again. If the network stays down, call the school directly."].join("");
  }
  const detail = err.message || "";
  if (err.status === 401) return "You were signed out. Sign in again: what you typed is kept in this form.";
  if (err.status === 403 && err.code === "csrf") {
    return "The security check of this page failed. Reload the page and press the button again: what you typed is kept.";
  }
  if (err.status === 403) {
    return `Your account may not ask for camera access (${detail}). Call the school directly, and ask your supervisor to check your Sightline account.`;
  }
  if (err.status === 409) {
    return `${school} already has an emergency open, so there is nothing to approve: police access is already ` +
      "on or starting there, and the school is running it. To change it (for example to a lockdown), call the school. " +
      "This request was not recorded.";
  }
  if (err.status === 422) {
    if (detail.startsWith("reason")) return `The reason was not accepted (${detail}). Fix it and press the button again.`;
    if (detail.startsWith("building")) return `That school was not accepted (${detail}). Reload the page and choose the school again.`;
    if (detail.startsWith("call_type")) return `The kind of call was not accepted (${detail}). Choose another one and press the button again.`;
    return `The request was not accepted (${detail}). Check the form and press the button again.`;
  }
  if (err.status === 429) return "Too many attempts in a short time. Wait a minute, then press the button again.";
  return `The Sightline server could not take the request (${detail || `error ${err.status}`}). ` +
    "Look under “Your requests”: if it is not there, press the button again or call the school directly.";
}

function focusFor(err) {
  const detail = err instanceof ApiFailure ? err.message : "";
  if (detail.startsWith("reason")) return reason;
  if (detail.startsWith("call_type")) return callType;
  return null;
}

let sending = false;

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (sending) return;
  const v = values();
  if (!v.building) return fail("Choose the school first (1).", form.querySelector("input[name=building]"));
  if (!v.call_type) return fail("Choose what kind of call this is (2).", callType);
  if (!v.action) return fail("Choose what the school should do (3).", form.querySelector("input[name=action]"));
  if (!v.reason.trim()) {
    return fail("Type what is happening (4): the school's administrator reads it before deciding. Nothing was sent yet.", reason);
  }
  sending = true;
  submit.disabled = true;
  submit.textContent = "Sending…";
  say(formError, "");
  try {
    const r = await api("/api/v1/access-requests", { method: "POST",
      json: { building: v.building, call_type: v.call_type, action: v.action, incident_type: v.incident_type, reason: v.reason.trim() } });
    reason.value = "";
    reason.removeAttribute("aria-invalid");
    callType.removeAttribute("aria-invalid");
    updateCount();
    saveDraft();
    const head = r.state === "approved"
      ? `Approved at once by the district's plan at ${when(r.decided_at)}: the emergency at ${nameOf(r.building)} has started. `
      : `Sent at ${when(r.created)}. Waiting for ${nameOf(r.building)}'s administrator to answer. `;
    say(formStatus, [head, el("a", { href: "#mine-h", class: "dispatch-jump" }, "See it under “Your requests”")]);
    await refresh();
  } catch (err) {
    fail(explain(err, v), focusFor(err));
    if (err instanceof ApiFailure && err.status === 409) refresh();
  } finally {
    sending = false;
    submit.disabled = false;
    submit.textContent = SUBMIT_LABEL;
  }
});

form.addEventListener("input", () => { updateCount(); saveDraft(); });
form.addEventListener("change", (event) => {
  saveDraft();
  if (event.target.name === "building") updateShares();
  if (event.target === reason || event.target === callType) event.target.removeAttribute("aria-invalid");
});
reason.addEventListener("input", () => reason.removeAttribute("aria-invalid"));
callType.addEventListener("change", () => callType.removeAttribute("aria-invalid"));
document.getElementById("sign-out")?.addEventListener("click", () => {
  try { sessionStorage.removeItem(DRAFT_KEY); } catch { /* nothing kept */ }
});

// ------------------------------------------------------------------ the requests

function emergencyLine(r, e) {
  const school = nameOf(r.building);
  if (!e) return { text: `An emergency was declared for ${school}.`, state: "unknown" };
  if (e.state === "active") {
    const expired = e.expires_at && Date.parse(e.expires_at) <= Date.now();
    return { state: "active", strong: `Emergency active: ${e.action} at ${school}.`,
      text: expired ? ` Police access time ran out at ${when(e.expires_at)}; the school may extend it.`
        : ` Police may watch the shared cameras until ${when(e.expires_at)}.` };
  }
  if (e.state === "pending") {
    return { state: "pending", strong: `Emergency declared: ${e.action} at ${school}.`,
      text: " It starts when the school confirms it (or when its short cancel window ends)." };
  }
  if (e.state === "cancelled") {
    return { state: "cancelled", strong: `The school cancelled the emergency at ${when(e.ended_at)}.`,
      text: `${e.end_reason ? ` Their reason: “${e.end_reason}”.` : ""} Police access has ended.` };
  }
  return { state: e.state, strong: `Emergency over: all clear at ${when(e.ended_at)}.`, text: " Police access has ended." };
}

function openAt(building, emergencies) {
  return emergencies.filter((e) => e.building === building && (e.state === "active" || e.state === "pending"))
    .sort((a, b) => String(b.declared_at).localeCompare(String(a.declared_at)))[0] || null;
}

function describe(r, e, emergencies) {
  const school = nameOf(r.building);
  const deciderName = deciders[r.decided_by] || r.decided_by;
  if (r.state === "pending") {
    const open = openAt(r.building, emergencies);
    const lines = [`${school}'s administrator has not answered yet. This list updates by itself every few seconds.`];
    if (open) {
      lines.push(`${school} already has an emergency open (${open.action}, ${open.state === "active" ? "active" : "starting"}): ` +
        "police access is already on or starting there. The school cannot approve this request while that emergency is open.");
    }
    return { key: open ? "pending-open" : "pending", headline: "Waiting for the school", lines };
  }
  if (r.state === "denied") {
    const why = r.decision_reason && r.decision_reason !== "denied" ? `Their reason: “${r.decision_reason}”.` : "They gave no reason.";
    return { key: "denied", headline: "Denied by the school",
      lines: [`${deciderName} denied it at ${when(r.decided_at)}. ${why}`,
        "No emergency was started. If the danger goes on, call the school and send a new request that says what changed."] };
  }
  const em = emergencyLine(r, e);
  const auto = r.decided_by === "policy";
  return { key: `approved-${em.state}`, auto, emergency: em,
    headline: auto ? "Auto-approved by the district's plan"
      : (em.state === "active" ? "Approved — emergency active" : "Approved by the school"),
    lines: [auto ? `The district's plan approves “${callLabel[r.call_type] || words(r.call_type)}” calls by itself (${when(r.decided_at)}).`
      : `${deciderName} approved it at ${when(r.decided_at)}.`] };
}

function announcement(r, d) {
  const school = nameOf(r.building);
  if (d.key === "denied") return `${school} denied your request.`;
  if (d.emergency) return `${school}: your request was approved. ${d.emergency.strong || ""}`;
  return "";
}

let listSig = "";
const lastKeys = new Map();
let firstLoad = true;

function renderRequests(requests, emergencies) {
  const byId = new Map(emergencies.map((e) => [e.id, e]));
  const shown = [...requests].sort((a, b) => String(b.created).localeCompare(String(a.created))).slice(0, SHOW_AT_MOST);
  const described = shown.map((r) => [r, describe(r, r.emergency ? byId.get(r.emergency) : null, emergencies)]);
  const said = [];
  for (const [r, d] of described) {
    const before = lastKeys.get(r.id);
    if (!firstLoad && before !== undefined && before !== d.key) said.push(announcement(r, d));
    lastKeys.set(r.id, d.key);
  }
  firstLoad = false;
  if (said.filter(Boolean).length) announce.textContent = said.filter(Boolean).join(" ");

  const minute = Math.floor(Date.now() / 60000);
  const sig = JSON.stringify([minute, requests.length, described.map(([r, d]) => [r.id, d.key, d.headline, d.lines,
    d.emergency && [d.emergency.strong, d.emergency.text]])]);
  if (sig === listSig) return;
  listSig = sig;
  clear(list);
  listEmpty.hidden = requests.length > 0;
  for (const [r, d] of described) {
    const emergencyState = d.emergency ? d.emergency.state : "";
    list.append(el("li", { class: `dispatch-request state-${d.key.split("-")[0]}`, "data-request": r.id, "data-state": r.state,
      "data-decided-by": r.state === "pending" ? "" : (d.auto ? "policy" : "school"), "data-emergency-state": emergencyState || null },
      el("p", { class: "request-head" },
        el("span", { class: "request-badge" }, d.headline),
        el("span", { class: "request-what" }, `${r.action} at ${nameOf(r.building)}`)),
      d.emergency ? el("p", { class: `request-emergency emergency-${emergencyState}` },
        d.emergency.strong ? el("strong", {}, d.emergency.strong) : null, d.emergency.text) : null,
      d.lines.map((line) => el("p", {}, line)),
      el("p", { class: "request-meta" }, `Asked at ${when(r.created)} (${ago(r.created)}) · ${callLabel[r.call_type] || words(r.call_type)}` +
        ` · ${incidentLabel[r.incident_type] || words(r.incident_type)}`),
      el("p", { class: "request-reason" }, `Your reason: “${r.reason}”`)));
  }
  renderLatest(described, requests);
  if (requests.length > SHOW_AT_MOST) {
    list.append(el("li", { class: "muted" }, `Showing your ${SHOW_AT_MOST} newest requests of ${requests.length}.`));
  }
}

/** The newest request's state at the top of the page, so a phone shows the answer without scrolling. */
function renderLatest(described, requests) {
  clear(latest);
  latest.hidden = described.length === 0;
  if (!described.length) return;
  const [r, d] = described[0];
  const waiting = requests.filter((x) => x.state === "pending").length;
  latest.className = `dispatch-latest state-${d.key.split("-")[0]}`;
  latest.append("Your latest request, ", `${r.action} at ${nameOf(r.building)}: `, el("strong", {}, d.headline),
    waiting > 1 ? ` (${waiting} requests waiting)` : "", " ",
    el("a", { href: "#mine-h", class: "dispatch-jump" }, "See your requests"));
}

function renderBuildings(requests, emergencies) {
  for (const node of form.querySelectorAll("[data-building-status]")) {
    const id = node.dataset.buildingStatus;
    const open = openAt(id, emergencies);
    const waiting = requests.some((r) => r.building === id && r.state === "pending");
    let text = open ? (open.state === "active" ? `Emergency active now: ${open.action}` : `Emergency declared, starting: ${open.action}`)
      : "No emergency now";
    if (waiting) text += " · you have a request waiting";
    node.textContent = text;
    node.classList.toggle("building-open", Boolean(open));
  }
}

// ------------------------------------------------------------------ polling

let refreshing = null;
let failing = false;

async function refresh() {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    try {
      const [requests, emergencies] = await Promise.all([
        api("/api/v1/access-requests", { passive: true }),
        api("/api/v1/emergencies", { passive: true }),
      ]);
      renderRequests(requests, emergencies);
      renderBuildings(requests, emergencies);
      listStatus.classList.remove("error");
      listStatus.textContent = `Checked at ${timeOnly.format(new Date())}. This list checks for answers every ${POLL_MS / 1000} seconds.`;
      if (failing) announce.textContent = "Connection back: your requests are up to date again.";
      failing = false;
    } catch (err) {
      listStatus.classList.add("error");
      listStatus.textContent = `Could not check for answers at ${timeOnly.format(new Date())} (${err.message}). ` +
        "What you see below may be out of date. Trying again…";
      if (!failing) announce.textContent = "Lost the connection to Sightline: your requests may be out of date.";
      failing = true;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

if (restoreDraft()) {
  say(formStatus, "What you typed before is back in the form. Check it, then press the button to send it.");
}
updateCount();
updateShares();
setInterval(refresh, POLL_MS);
refresh();
