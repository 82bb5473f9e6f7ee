// The administrator's emergency panel: declare per building (action in one tap), the
// confirm/cancel window with a countdown, the threat text that never blocks, live state,
// extend / all clear, dispatcher requests, and who is watching which camera now.
// Server data is inserted as text only. Polls are passive (they do not keep a session awake).

import { api, clear, el, fmtTime, row, words } from "/static/common.js";

const pageData = JSON.parse(document.getElementById("page-data").textContent || "{}");
const buildings = pageData.buildings || [];
const person = (id) => (pageData.people || {})[id] || id;
const agencyName = (id) => (pageData.agencies || {})[id] || id;
const callType = (id) => (pageData.call_types || {})[id] || words(id);
const buildingName = Object.fromEntries(buildings.map((b) => [b.id, b.name]));

const ACTIONS = [
  ["HOLD", "Stay in your room. Clear the halls."],
  ["SECURE", "Get inside. Lock outside doors."],
  ["LOCKDOWN", "Locks, lights, out of sight."],
  ["EVACUATE", "Go to a named location."],
  ["SHELTER", "Hazard and safety strategy."],
];
const INCIDENTS = ["other", "armed_intruder", "bomb_threat", "fire", "severe_weather", "hazmat", "medical"];
const POLL_MS = 2000;

const statusLine = document.getElementById("panel-status");
const cardsBox = document.getElementById("buildings");

function actionButton(action, hint, attrs, onClick) {
  const b = el("button", { type: "button", class: `button action action-${action.toLowerCase()}`, "data-action": action, ...attrs },
    el("span", { class: "action-name" }, action), el("span", { class: "action-hint" }, hint));
  b.addEventListener("click", onClick);
  return b;
}

function countdownText(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h}:${String(m).padStart(2, "0")}:${String(r).padStart(2, "0")}` : `${m}:${String(r).padStart(2, "0")}`;
}

class BuildingCard {
  constructor(building) {
    this.building = building;
    this.emergency = null;
    this.signature = "";
    this.choosing = false;
    this.confirmingAllClear = false;
    this.busy = false;
    this.message = el("p", { class: "card-message", role: "status", "aria-live": "polite", hidden: true });
    this.stateLine = el("p", { class: "state-line" });
    this.body = el("div", { class: "card-body" });
    // the threat text box lives as long as the card, so a poll never wipes what is typed
    this.threat = el("textarea", { id: `threat-${building.id}`, rows: "3", maxlength: "4000",
      placeholder: "Example: caller reports a person with a handgun in the east parking lot" });
    this.threatSave = el("button", { type: "button", class: "button secondary" }, "Save threat description");
    this.threatSave.addEventListener("click", () => this.saveThreat());
    this.threatHelp = el("p", { class: "help" });
    this.threatBox = el("div", { class: "threat-box" },
      el("label", { for: `threat-${building.id}` }, "What is the threat? (optional now — you can add it later)"),
      this.threat, this.threatHelp, el("div", { class: "buttons" }, this.threatSave));
    this.root = el("section", { class: "card building-card", "data-building": building.id, "aria-labelledby": `b-${building.id}` },
      el("h2", { id: `b-${building.id}` }, building.name), this.stateLine, this.message, this.body);
    this.render();
  }

  say(text, bad = false) {
    this.message.hidden = !text;
    this.message.textContent = text || "";
    this.message.classList.toggle("error", bad);
  }

  async run(label, fn) {
    if (this.busy) return;
    this.busy = true;
    this.root.setAttribute("aria-busy", "true");
    try {
      await fn();
      this.say("");
    } catch (err) {
      this.say(`${label} failed: ${err.message}`, true);
    } finally {
      this.busy = false;
      this.root.removeAttribute("aria-busy");
      await refresh();
    }
  }

  update(emergency) {
    this.emergency = emergency;
    const e = emergency;
    const sig = JSON.stringify(e ? [e.id, e.state, e.action, e.expires_at, e.threat_basis_missing, e.pending_extension,
      e.confirm_deadline] : null) + this.choosing + this.confirmingAllClear;
    if (sig !== this.signature) {
      this.signature = sig;
      this.render();
    }
    this.tick();
  }

  open() {
    const e = this.emergency;
    return e && (e.state === "pending" || e.state === "active") ? e : null;
  }

  render() {
    const e = this.open();
    const recent = this.emergency && !e ? this.emergency : null;
    clear(this.body);
    this.root.dataset.state = e ? e.state : "normal";
    if (!e) {
      clear(this.stateLine);
      this.stateLine.className = "state-line normal";
      if (recent) {
        this.stateLine.append(`No emergency. Last: ${recent.action} — ${words(recent.state)}` +
          (recent.ended_at ? ` at ${fmtTime(recent.ended_at)}` : ""));
      } else {
        this.stateLine.append("No emergency.");
      }
      if (recent && recent.state === "all_clear") {
        const close = el("button", { type: "button", class: "button secondary", "data-do": "close" }, "Close the incident record");
        close.addEventListener("click", () => this.run("Closing", () => api(`/api/v1/emergencies/${recent.id}/close`, { method: "POST" })));
        this.body.append(el("div", { class: "buttons" }, close));
      }
      const declare = el("button", { type: "button", class: "button declare", "aria-expanded": String(this.choosing),
        "aria-controls": `choose-${this.building.id}`, "data-do": "declare" }, "Declare emergency");
      declare.addEventListener("click", () => {
        this.choosing = !this.choosing;
        this.update(this.emergency);
        if (this.choosing) this.body.querySelector(".action")?.focus();
      });
      this.body.append(declare);
      if (this.choosing) this.body.append(this.chooser());
      return;
    }
    if (e.state === "pending") this.renderPending(e);
    else this.renderActive(e);
  }

  chooser() {
    const incident = el("select", { id: `incident-${this.building.id}` },
      INCIDENTS.map((i) => el("option", { value: i }, i === "other" ? "Other / not known yet" : words(i))));
    const drill = el("input", { type: "checkbox", id: `drill-${this.building.id}`, class: "check" });
    const go = (action) => this.run("Declaring", async () => {
      const body = { building: this.building.id, action, incident_type: incident.value, drill: drill.checked };
      const text = this.threat.value.trim();
      if (text) body.threat_basis = text;
      this.choosing = false;
      await api("/api/v1/emergencies", { method: "POST", json: body });
    });
    return el("div", { class: "chooser", id: `choose-${this.building.id}`, role: "group", "aria-label": "Choose the action" },
      el("p", { class: "chooser-lead" }, "Tap the action. You can still cancel a false alarm right after."),
      el("div", { class: "actions" }, ACTIONS.map(([a, hint]) => actionButton(a, hint, {}, () => go(a)))),
      el("div", { class: "chooser-extra" },
        el("div", {}, el("label", { for: incident.id }, "Kind of incident"), incident),
        el("label", { class: "check-label", for: drill.id }, drill, " This is a drill")),
      this.threatBox);
  }

  renderPending(e) {
    clear(this.stateLine);
    this.stateLine.className = "state-line pending";
    this.stateLine.append(`${e.action} declared — ${e.activation === "confirm" ? "waiting for confirmation" : "police access starts in "}`,
      ...(e.activation === "confirm" ? [] : [el("strong", { class: "window-countdown" }, "")]),
      ...(e.drill ? [" ", el("span", { class: "badge drill" }, "Drill")] : []));
    const confirm = el("button", { type: "button", class: "button primary big", "data-do": "confirm" }, "Confirm now");
    confirm.addEventListener("click", () => this.run("Confirming", () => api(`/api/v1/emergencies/${e.id}/confirm`, { method: "POST" })));
    const cancel = el("button", { type: "button", class: "button danger big", "data-do": "cancel" }, "Cancel — false alarm");
    cancel.addEventListener("click", () => this.run("Cancelling", () =>
      api(`/api/v1/emergencies/${e.id}/cancel`, { method: "POST", json: { reason: "false alarm" } })));
    this.body.append(el("div", { class: "buttons window-buttons" }, cancel, confirm), this.threatPart(e));
  }

  renderActive(e) {
    clear(this.stateLine);
    this.stateLine.className = `state-line active action-${e.action.toLowerCase()}`;
    this.stateLine.append(el("strong", { class: "current-action" }, e.action), ` active since ${fmtTime(e.activated_at)} · `,
      "police access ends in ", el("strong", { class: "expiry-countdown" }, ""),
      ...(e.drill ? [" ", el("span", { class: "badge drill" }, "Drill")] : []));
    const change = el("div", { class: "actions compact", role: "group", "aria-label": "Change the action" },
      ACTIONS.map(([a, hint]) => actionButton(a, hint, { "aria-pressed": String(a === e.action) }, () => {
        if (a === e.action) return;
        this.run("Changing the action", () => api(`/api/v1/emergencies/${e.id}`, { method: "PATCH", json: { action: a } }));
      })));

    const minutes = el("select", { id: `extend-min-${this.building.id}` }, [15, 30, 60, 120].map((m) => el("option", { value: m }, `${m} minutes`)));
    const reason = el("input", { id: `extend-reason-${this.building.id}`, type: "text", maxlength: "500", placeholder: "Why more time is needed" });
    const extend = el("button", { type: "button", class: "button secondary", "data-do": "extend" }, "Extend");
    extend.addEventListener("click", () => {
      if (!reason.value.trim()) { this.say("Give a reason to extend.", true); reason.focus(); return; }
      this.run("Extending", () => api(`/api/v1/emergencies/${e.id}/extend`, { method: "POST", json: { minutes: Number(minutes.value), reason: reason.value.trim() } }));
    });
    const extendBox = el("details", { class: "extend" }, el("summary", {}, "Extend police access"),
      el("div", { class: "filters" }, el("div", {}, el("label", { for: minutes.id }, "By"), minutes),
        el("div", {}, el("label", { for: reason.id }, "Reason"), reason), el("div", { class: "buttons" }, extend)));

    const parts = [el("h3", {}, "Change the action"), change, this.threatPart(e)];
    if (e.pending_extension) {
      const p = e.pending_extension;
      const approve = el("button", { type: "button", class: "button primary", "data-do": "approve-extension" }, "Approve");
      const deny = el("button", { type: "button", class: "button secondary", "data-do": "deny-extension" }, "Deny");
      approve.addEventListener("click", () => this.run("Approving", () => api(`/api/v1/emergencies/${e.id}/extension/approve`, { method: "POST", json: {} })));
      deny.addEventListener("click", () => this.run("Denying", () => api(`/api/v1/emergencies/${e.id}/extension/deny`, { method: "POST", json: {} })));
      parts.push(el("div", { class: "notice" }, `${person(p.requested_by)} asks to extend by ${p.minutes} minutes: ${p.reason}. A second administrator must approve.`,
        el("div", { class: "buttons" }, approve, deny)));
    }
    parts.push(extendBox);
    const allClear = el("button", { type: "button", class: "button allclear big", "data-do": "all-clear" }, "All clear");
    allClear.addEventListener("click", () => { this.confirmingAllClear = true; this.update(this.emergency); this.body.querySelector("[data-do=all-clear-yes]")?.focus(); });
    if (this.confirmingAllClear) {
      const yes = el("button", { type: "button", class: "button allclear big", "data-do": "all-clear-yes" }, "Yes — all clear, end police access");
      const no = el("button", { type: "button", class: "button secondary big" }, "Not yet");
      yes.addEventListener("click", () => { this.confirmingAllClear = false; this.run("All clear", () => api(`/api/v1/emergencies/${e.id}/all-clear`, { method: "POST" })); });
      no.addEventListener("click", () => { this.confirmingAllClear = false; this.update(this.emergency); });
      parts.push(el("div", { class: "buttons confirm-allclear", role: "group", "aria-label": "Confirm all clear" }, yes, no));
    } else {
      parts.push(el("div", { class: "buttons" }, allClear));
    }
    this.body.append(...parts);
  }

  threatPart(e) {
    this.threatHelp.textContent = e.threat_basis_missing
      ? "Not on record yet. The law asks the school to record the threat; this never holds up police access."
      : "On record. Saving replaces it; the earlier text stays in the audit log.";
    this.threatHelp.classList.toggle("warn-text", !!e.threat_basis_missing);
    if (!this.threat.value && e.threat_basis && document.activeElement !== this.threat) this.threat.value = e.threat_basis;
    return this.threatBox;
  }

  saveThreat() {
    const e = this.open();
    const text = this.threat.value.trim();
    if (!text) { this.say("Type what the threat is first.", true); return; }
    if (!e) { this.say("The description will be sent when you declare."); return; }
    this.run("Saving the threat description", async () => {
      await api(`/api/v1/emergencies/${e.id}`, { method: "PATCH", json: { threat_basis: text } });
      this.signature = "";
    });
  }

  tick() {
    const e = this.open();
    if (!e) return;
    const w = this.root.querySelector(".window-countdown");
    if (w && e.confirm_deadline) {
      const left = (Date.parse(e.confirm_deadline) - Date.now()) / 1000;
      w.textContent = left > 0 ? `${Math.ceil(left)} s unless you cancel` : "now";
    }
    const x = this.root.querySelector(".expiry-countdown");
    if (x && e.expires_at) x.textContent = countdownText((Date.parse(e.expires_at) - Date.now()) / 1000);
  }
}

const cards = new Map();
for (const b of buildings) {
  const card = new BuildingCard(b);
  cards.set(b.id, card);
  cardsBox.append(card.root);
}

// ------------------------------------------------------------------ requests and watchers

const requestsList = document.getElementById("requests");
const requestsEmpty = document.getElementById("requests-empty");
let requestsSig = "";

function renderRequests(requests) {
  const sig = JSON.stringify(requests.map((r) => r.id));
  if (sig === requestsSig) return;
  requestsSig = sig;
  clear(requestsList);
  requestsEmpty.hidden = requests.length > 0;
  for (const r of requests) {
    const approve = el("button", { type: "button", class: "button primary", "data-do": "approve-request" }, "Approve");
    const deny = el("button", { type: "button", class: "button secondary", "data-do": "deny-request" }, "Deny");
    const decide = (verb) => async () => {
      try {
        await api(`/api/v1/access-requests/${encodeURIComponent(r.id)}/${verb}`, { method: "POST", json: {} });
      } catch (err) {
        statusLine.textContent = `Could not ${verb} the request: ${err.message}`;
      }
      requestsSig = "";
      refresh();
    };
    approve.addEventListener("click", decide("approve"));
    deny.addEventListener("click", decide("deny"));
    requestsList.append(el("li", { class: "request", "data-request": r.id },
      el("p", {}, el("strong", {}, `${r.action} at ${buildingName[r.building] || r.building}`),
        ` — requested by ${person(r.requested_by)}${r.agency ? ` (${agencyName(r.agency)})` : ""} at ${fmtTime(r.created)}`),
      el("p", {}, `${callType(r.call_type)}: ${r.reason}`),
      el("div", { class: "buttons" }, approve, deny)));
  }
}

const watching = document.getElementById("watching");
const watchingEmpty = document.getElementById("watching-empty");

function renderWatching(sessions) {
  const tbody = watching.querySelector("tbody");
  clear(tbody);
  watching.hidden = sessions.length === 0;
  watchingEmpty.hidden = sessions.length > 0;
  // one row per viewer and camera (a viewer may have it open on two devices, or small and enlarged)
  const groups = new Map();
  for (const s of sessions) {
    const key = `${s.viewer}\u0000${s.camera}`;
    const g = groups.get(key);
    if (g) { g.streams.add(s.stream); if (s.started < g.started) g.started = s.started; } else groups.set(key, { ...s, streams: new Set([s.stream]) });
  }
  for (const s of groups.values()) {
    tbody.append(row(watching, [s.viewer_name, s.agency_name || "—", `${s.camera_name} (${buildingName[s.building] || s.building})`,
      [...s.streams].map((x) => (x === "main" ? "Full" : "Small")).join(" + "), fmtTime(s.started)]));
  }
}

// ------------------------------------------------------------------ who is signed in (district administrators)

const signedInCard = document.getElementById("signed-in-card");
const signedIn = document.getElementById("signed-in");
const signedInEmpty = document.getElementById("signed-in-empty");
const METHODS = { "password+totp": "password and code", password: "password only", cli: "command-line token",
  client_credentials: "records system", oidc: "agency sign-in", guest: "guest pass" };

function renderSignedIn(list) {
  if (list === null) { signedInCard.hidden = true; return; }  // not allowed to revoke: no section
  signedInCard.hidden = false;
  const people = new Map();
  for (const s of list) {
    if (s.person === document.body.dataset.user) continue;
    const p = people.get(s.person) || { ...s, methods: new Set(), watching: false };
    p.methods.add(METHODS[s.method] || s.method);
    p.watching = p.watching || s.watching;
    if (s.since < p.since) p.since = s.since;
    people.set(s.person, p);
  }
  const tbody = signedIn.querySelector("tbody");
  clear(tbody);
  signedIn.hidden = people.size === 0;
  signedInEmpty.hidden = people.size > 0;
  for (const p of people.values()) {
    const button = el("button", { type: "button", class: "button danger", text: "Take back access" });
    button.addEventListener("click", async () => {
      const reason = window.prompt(`Take back every sign-in and live video of ${p.name}? Why (for the audit log):`, "");
      if (reason === null) return;
      button.disabled = true;
      try {
        await api(`/api/v1/people/${encodeURIComponent(p.person)}/revoke`, { method: "POST", json: { reason } });
        statusLine.textContent = `Access of ${p.name} taken back.`;
      } catch (err) {
        statusLine.textContent = `Could not take back access: ${err.message}`;
      } finally {
        refresh();
      }
    });
    tbody.append(row(signedIn, [p.name, [...p.methods].join(", "), fmtTime(p.since), p.watching ? "yes" : "no", button]));
  }
}

// ------------------------------------------------------------------ polling

let refreshing = null;

async function refresh() {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    try {
      const [emergencies, sessions, requests, signIns] = await Promise.all([
        api("/api/v1/emergencies", { passive: true }),
        api("/api/v1/sessions", { passive: true }),
        api("/api/v1/access-requests", { params: { pending_only: true }, passive: true }).catch(() => []),
        pageData.may_revoke ? api("/api/v1/sign-ins", { passive: true }).catch(() => null) : null,
      ]);
      const latest = new Map();
      for (const e of emergencies) {
        const cur = latest.get(e.building);
        const open = e.state === "pending" || e.state === "active";
        const curOpen = cur && (cur.state === "pending" || cur.state === "active");
        if (!cur || (open && !curOpen) || (open === curOpen && String(e.declared_at) > String(cur.declared_at))) latest.set(e.building, e);
      }
      for (const [id, card] of cards) card.update(latest.get(id) || null);
      renderWatching(sessions);
      renderRequests(requests.filter((r) => r.state === "pending"));
      renderSignedIn(signIns);
      const open = [...cards.values()].filter((c) => c.open()).length;
      statusLine.textContent = open ? `${open} building${open === 1 ? "" : "s"} in an emergency. Updated ${new Date().toLocaleTimeString()}.`
        : `No emergency in your buildings. Updated ${new Date().toLocaleTimeString()}.`;
    } catch (err) {
      statusLine.textContent = `Could not refresh: ${err.message}. Retrying…`;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

setInterval(refresh, POLL_MS);
setInterval(() => { for (const card of cards.values()) card.tick(); }, 250);
refresh();
