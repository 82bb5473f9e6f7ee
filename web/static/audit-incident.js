import { api, clear, el, fmtDuration, fmtTime, loadVerifyBanner, row, showError, words } from "/static/common.js";

const root = document.getElementById("incident");
const id = root.dataset.emergency;
const status = document.getElementById("incident-status");
const byOfficer = document.getElementById("by-officer");
const byCamera = document.getElementById("by-camera");
const timeline = document.getElementById("timeline");
const more = document.getElementById("timeline-more");
const filters = document.getElementById("filters");

const names = { people: new Map() };
let record = null;
let nextAfter = null;
let filterState = { officer: "", camera: "", since: "", until: "" };

loadVerifyBanner();

function person(idOrNull) {
  if (!idOrNull || idOrNull === "system") return "Sightline";
  return names.people.get(idOrNull) ? `${names.people.get(idOrNull)} (${idOrNull})` : idOrNull;
}
function agency(a) {
  const found = record && (record.agencies || []).find((x) => x.id === a);
  return found ? found.name : a || "an agency";
}
// ---- summary and notices
function fact(dl, term, value) {
  dl.append(el("dt", {}, term), el("dd", {}, value ?? "—"));
}

function renderSummary() {
  const e = record.emergency;
  document.getElementById("incident-title").textContent =
    `${e.action} at ${e.building}${e.drill ? " (drill)" : ""}`;
  const dl = clear(document.getElementById("summary"));
  fact(dl, "Incident", e.id);
  fact(dl, "Building", e.building);
  fact(dl, "Type", words(e.incident_type));
  fact(dl, "State", words(e.state));
  fact(dl, "Started by", `${person(e.declared_by)} (${words(e.trigger)})`);
  fact(dl, "Declared", fmtTime(e.declared_at));
  fact(dl, "Active from", fmtTime(e.activated_at));
  fact(dl, "Ended", fmtTime(e.ended_at));
  fact(dl, "Agencies who saw video", (record.agencies || []).map((a) => a.name).join(", ") || "none");
  const basis = document.getElementById("threat-basis");
  clear(basis);
  if (record.threat_basis_missing) {
    basis.append(el("span", { class: "badge bad" }, "Missing"), " No threat was recorded. FERPA requires it for this disclosure: ask the administrator to fill it in.");
  } else {
    basis.textContent = record.threat_basis;
  }

  const agencies = clear(document.getElementById("agencies"));
  for (const a of record.agencies || []) agencies.append(el("li", {}, a.name));
  if (!agencies.children.length) agencies.append(el("li", {}, "No video was disclosed."));
  document.getElementById("redisclosure").textContent = record.redisclosure_notice || "—";
  const parent = clear(document.getElementById("parent-notice"));
  const n = record.parent_notice_draft;
  if (n) {
    const facts = el("dl", { class: "facts" });
    fact(facts, "Send by", n.due_by || n.date || "—");
    fact(facts, "To", n.recipient);
    fact(facts, "Purpose", n.purpose);
    parent.append(facts, el("pre", { class: "notice-text" }, n.text || ""));
  } else {
    parent.append(el("p", { class: "muted" }, "No notice is needed: no video was disclosed."));
  }
}

// ---- who watched what
function inRange(span) {
  const since = filterState.since ? new Date(filterState.since).getTime() : null;
  const until = filterState.until ? new Date(filterState.until).getTime() : null;
  const start = new Date(span.start).getTime();
  const end = span.end ? new Date(span.end).getTime() : Date.now();
  return (since === null || end >= since) && (until === null || start <= until);
}

function renderTables() {
  const f = filterState;
  const tb1 = clear(byOfficer.querySelector("tbody"));
  for (const v of record.viewers || []) {
    if (f.officer && v.officer !== f.officer) continue;
    for (const c of v.cameras || []) {
      if (f.camera && c.camera !== f.camera) continue;
      for (const s of (c.spans || []).filter(inRange)) {
        tb1.append(row(byOfficer, [`${v.name} (${v.officer})`, agency(v.agency), `${c.name} (${c.camera})`,
          fmtTime(s.start), s.end ? fmtTime(s.end) : "still watching", fmtDuration(s.seconds),
          s.kind === "snapshot" ? "still image" : "live video"]));
      }
    }
  }
  const tb2 = clear(byCamera.querySelector("tbody"));
  for (const c of record.cameras || []) {
    if (f.camera && c.camera !== f.camera) continue;
    for (const v of c.viewers || []) {
      if (f.officer && v.officer !== f.officer) continue;
      for (const s of (v.spans || []).filter(inRange)) {
        tb2.append(row(byCamera, [`${c.name} (${c.camera})`, `${v.name} (${v.officer})`, agency(v.agency),
          fmtTime(s.start), s.end ? fmtTime(s.end) : "still watching", fmtDuration(s.seconds)]));
      }
    }
  }
  byOfficer.hidden = !tb1.children.length;
  document.getElementById("by-officer-empty").hidden = !!tb1.children.length;
  byCamera.hidden = !tb2.children.length;
  document.getElementById("by-camera-empty").hidden = !!tb2.children.length;
}

function fillFilterChoices() {
  const officer = document.getElementById("f-officer");
  for (const v of record.viewers || []) officer.append(el("option", { value: v.officer }, `${v.name} (${v.officer})`));
  const cam = document.getElementById("f-camera");
  for (const c of record.cameras || []) cam.append(el("option", { value: c.camera }, `${c.name} (${c.camera})`));
}

// ---- timeline
function isoOrEmpty(local) {
  if (!local) return "";
  const t = new Date(local);
  return Number.isNaN(t.getTime()) ? "" : t.toISOString();
}

async function loadTimeline(reset) {
  if (reset) {
    clear(timeline);
    nextAfter = null;
  }
  const page = await api("/api/v1/audit/events", {
    params: {
      emergency: id, actor: filterState.officer, camera: filterState.camera,
      since: isoOrEmpty(filterState.since), until: isoOrEmpty(filterState.until),
      after_seq: nextAfter ?? 0, limit: 200,
    },
  });
  for (const e of page.entries || []) {
    const item = el("li", { class: e.outcome, "data-seq": e.seq, "data-event": e.event_type },
      el("span", { class: "when" }, `${fmtTime(e.ts)} · entry ${e.seq}`),
      // the plain words come with each entry, from the audit event catalogue
      // (emergency/audit/events.py): the same words the PDF and CSV exports print
      el("span", { class: "what" }, e.text),
      e.reason ? el("span", { class: "why" }, `Reason: ${e.reason}`) : null,
      e.outcome && e.outcome !== "success" ? el("span", { class: "why" }, `Outcome: ${e.outcome}`) : null,
    );
    timeline.append(item);
  }
  if (!timeline.children.length) timeline.append(el("li", {}, "No audit entries match."));
  nextAfter = page.next_after_seq ?? null;
  more.hidden = nextAfter === null;
}

more.addEventListener("click", () => loadTimeline(false).catch((err) => showError(status, err)));

filters.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(filters);
  filterState = { officer: data.get("officer") || "", camera: data.get("camera") || "",
    since: data.get("since") || "", until: data.get("until") || "" };
  renderTables();
  await loadTimeline(true).catch((err) => showError(status, err));
});
filters.addEventListener("reset", () => {
  setTimeout(() => filters.requestSubmit(), 0);
});

try {
  record = await api(`/api/v1/emergencies/${encodeURIComponent(id)}/disclosure`);
  for (const v of record.viewers || []) names.people.set(v.officer, v.name);
  renderSummary();
  fillFilterChoices();
  renderTables();
  await loadTimeline(true);
  status.textContent = "";
  status.hidden = true;
} catch (err) {
  showError(status, err);
}
