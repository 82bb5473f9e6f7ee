// The police viewer: the emergencies this officer has access to, a grid of the granted
// cameras (sub streams), a focused camera (main stream), the floor plan, the countdown to
// expiry, a LIVE badge on every picture, and a clear stop when access ends.
// Server data is inserted as text only.

import { api, clear, el, fmtTime, words } from "/static/common.js";
import { WhepView, nextMode } from "/static/whep.js";

const pageData = JSON.parse(document.getElementById("page-data").textContent || "{}");
const buildingName = Object.fromEntries((pageData.buildings || []).map((b) => [b.id, b.name]));

const grid = document.getElementById("grid");
const statusLine = document.getElementById("view-status");
const emergenciesBox = document.getElementById("emergencies");
const endedBanner = document.getElementById("access-ended");
const accessHelp = document.getElementById("access-help");
const linkStatus = document.getElementById("link-status");
const focusSection = document.getElementById("focus");
const focusTileBox = document.getElementById("focus-tile");
const focusTitle = document.getElementById("focus-title");
const planSection = document.getElementById("plan-section");
const planBox = document.getElementById("plan");

const GRANT_POLL_MS = 2000;
const SNAPSHOT_EVERY_MS = 3000;
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

const state = {
  grants: [],
  grantKey: "",
  cameras: new Map(), // id -> camera (from /api/v1/cameras)
  tiles: new Map(), // id -> grid Tile
  focus: null, // Tile in the focus section
  emergencies: new Map(), // id -> emergency (as the officer may see it)
  everHadAccess: false,
  mode: "video", // "video" -> "sub" -> "snapshots" on a poor link
  clockOffsetMs: 0,
};

// ------------------------------------------------------------------ tiles

class Tile {
  constructor(camera, { focused = false } = {}) {
    this.camera = camera;
    this.focused = focused;
    this.view = null;
    this.snapshotTimer = null;
    this.snapshot = null; // {wall, at}
    this.error = null;
    this.video = el("video", { muted: true, autoplay: true, playsinline: true, "aria-label": `Live video: ${camera.name}` });
    this.video.muted = true;
    this.img = el("img", { alt: `Still picture: ${camera.name}`, hidden: true });
    this.badge = el("span", { class: "live-badge starting", "aria-live": "off" }, "Connecting…");
    this.note = el("p", { class: "tile-note", hidden: true });
    const picture = el("div", { class: "picture" }, this.video, this.img, this.badge);
    const label = el("span", { class: "tile-name" }, camera.name);
    if (focused) {
      this.root = el("figure", { class: "tile focused", "data-camera": camera.id }, picture,
        el("figcaption", {}, label), this.note);
    } else {
      this.open = el("button", { type: "button", class: "tile-open", "aria-label": `Enlarge ${camera.name}` }, picture);
      this.open.addEventListener("click", () => openFocus(camera.id));
      this.root = el("figure", { class: "tile", "data-camera": camera.id }, this.open,
        el("figcaption", {}, label), this.note);
    }
  }

  get stream() {
    if (!this.focused || state.mode !== "video") return (this.camera.streams || []).includes("sub") ? "sub" : "main";
    return "main";
  }

  start() {
    this.stopMedia();
    this.error = null;
    this.note.hidden = true;
    if (state.mode === "snapshots") {
      this.startSnapshots();
      return;
    }
    this.video.hidden = false;
    this.img.hidden = true;
    const view = new WhepView({
      camera: this.camera.id, stream: this.stream, video: this.video,
      onEnded: () => { if (this.view === view) { this.view = null; pollGrants(); } },
      onQuality: (sample) => onQuality(this, view, sample),
    });
    view.poorRuns = 0;
    this.view = view;
    this.root.dataset.stream = this.stream;
    view.start({ passive: true }).catch((err) => {
      if (this.view !== view) return;
      this.view = null;
      this.error = err.message;
      this.note.hidden = false;
      this.note.textContent = `Cannot show this camera: ${err.message}`;
      if (err.status !== 403) setTimeout(() => { if (!this.view && !this.stopped && state.mode !== "snapshots") this.start(); }, 5000);
      else pollGrants();
    });
  }

  startSnapshots() {
    this.video.hidden = true;
    this.img.hidden = false;
    this.root.dataset.stream = "snapshot";
    const stream = this.focused ? "main" : (this.camera.streams || []).includes("sub") ? "sub" : "main";
    const load = async () => {
      try {
        const res = await fetch(`/api/v1/cameras/${encodeURIComponent(this.camera.id)}/snapshot.jpg?stream=${stream}`,
          { headers: { "X-Requested-With": "sightline", "X-Sightline-Activity": "passive" }, credentials: "same-origin" });
        if (res.status === 403) { pollGrants(); return; }
        if (!res.ok) return;
        const blob = await res.blob();
        const captured = Date.parse(res.headers.get("X-Captured-At") || "");
        const old = this.img.src;
        this.img.src = URL.createObjectURL(blob);
        if (old && old.startsWith("blob:")) URL.revokeObjectURL(old);
        this.snapshot = { wall: Number.isNaN(captured) ? null : captured, at: Date.now() };
      } catch { /* keep the last picture; its age shows on the badge */ }
    };
    load();
    this.snapshotTimer = setInterval(load, SNAPSHOT_EVERY_MS);
  }

  stopMedia() {
    if (this.view) { const v = this.view; this.view = null; v.stop(); }
    if (this.snapshotTimer) { clearInterval(this.snapshotTimer); this.snapshotTimer = null; }
  }

  stop() {
    this.stopped = true;
    this.stopMedia();
    this.img.removeAttribute("src");
  }

  /** The LIVE badge: camera wall-clock time of the frame on screen and how far behind it is. */
  renderBadge() {
    let cls = "starting";
    let text = "Connecting…";
    let delay = null;
    if (state.mode === "snapshots" && this.snapshot) {
      const age = this.snapshot.wall === null ? null : Date.now() + state.clockOffsetMs - this.snapshot.wall;
      cls = "still";
      text = `STILL PICTURE · ${this.snapshot.wall ? timeFmt.format(this.snapshot.wall) : "time unknown"}` +
        (age === null ? "" : ` · ${fmtSeconds(age)} old`);
      delay = age;
    } else if (state.mode === "snapshots") {
      text = "Loading still picture…";
    } else if (this.view) {
      const live = this.view.liveness();
      delay = live.delayMs;
      if (live.state === "live" || live.state === "delayed") {
        cls = live.state;
        text = `${live.state === "live" ? "LIVE" : "DELAYED"} · ${timeFmt.format(live.wall)} · ${fmtSeconds(live.delayMs)} behind`;
      } else if (live.state === "stale") {
        cls = "stale";
        text = live.wall
          ? `NOT LIVE · picture from ${timeFmt.format(live.wall)} (${fmtSeconds(live.delayMs)} ago)`
          : `NOT LIVE · no new picture for ${fmtSeconds(live.sinceFrameMs)}`;
      }
    } else if (this.error) {
      cls = "stale";
      text = "NO VIDEO";
    }
    if (this.badge.textContent !== text) this.badge.textContent = text;
    this.badge.className = `live-badge ${cls}`;
    this.root.dataset.live = cls;
    this.root.dataset.delayMs = delay === null || delay === undefined ? "" : String(Math.round(delay));
  }
}

function fmtSeconds(ms) {
  if (ms === null || ms === undefined) return "?";
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(2)} s`;
  if (s < 120) return `${Math.round(s)} s`;
  return `${Math.round(s / 60)} min`;
}

// ------------------------------------------------------------------ link quality

function onQuality(tile, view, sample) {
  if (view.clock) state.clockOffsetMs = view.clock.offsetMs;
  if (tile.view !== view || state.mode === "snapshots") return;
  view.poorRuns = sample.poor && sample.framesDecoded > 0 ? view.poorRuns + 1 : 0;
  const from = view.stream === "main" ? "video" : "sub";
  const mode = nextMode(from, view.poorRuns);
  if (mode === from) return;
  degrade(mode, sample);
}

function degrade(mode, sample) {
  if (state.mode === mode || (state.mode === "snapshots")) return;
  state.mode = mode;
  const why = `${Math.round(sample.lossRate * 100)} % of packets lost, ${Math.round(sample.kbps)} kbit/s, ` +
    `${sample.fps.toFixed(1)} frames/s`;
  linkStatus.hidden = false;
  clear(linkStatus);
  linkStatus.append(
    mode === "sub"
      ? `Weak connection (${why}): showing the smaller video stream.`
      : `Weak connection (${why}): video stopped, showing a still picture of each camera every ${SNAPSHOT_EVERY_MS / 1000} s.`,
    " ",
    el("button", { type: "button", class: "button secondary", id: "retry-video" }, "Try full video again"),
  );
  document.getElementById("retry-video").addEventListener("click", () => {
    state.mode = "video";
    linkStatus.hidden = true;
    restartAll();
  });
  if (mode === "sub") {
    if (state.focus) state.focus.start();
  } else {
    restartAll();
  }
}

function restartAll() {
  for (const tile of state.tiles.values()) tile.start();
  if (state.focus) state.focus.start();
}

// ------------------------------------------------------------------ focus

function openFocus(cameraId) {
  const camera = state.cameras.get(cameraId);
  if (!camera) return;
  closeFocus(false);
  const tile = new Tile(camera, { focused: true });
  state.focus = tile;
  focusTitle.textContent = camera.name;
  focusTileBox.append(tile.root);
  focusSection.hidden = false;
  tile.start();
  focusSection.scrollIntoView({ block: "start" });
  document.getElementById("focus-close").focus();
}

function closeFocus(restoreFocus = true) {
  const tile = state.focus;
  if (!tile) return;
  state.focus = null;
  tile.stop();
  tile.root.remove();
  focusSection.hidden = true;
  if (restoreFocus) state.tiles.get(tile.camera.id)?.open?.focus();
}

document.getElementById("focus-close").addEventListener("click", () => closeFocus());
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && state.focus) closeFocus(); });

// ------------------------------------------------------------------ floor plan

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// Plan images by URL: a promise of an object URL, or of null when it could not be loaded
// (then forgotten, so the next render tries again). Fetched as a passive request: showing
// the plan is not activity that keeps the session from locking.
const planImages = new Map();

function planImage(url) {
  if (!planImages.has(url)) {
    const loading = fetch(url, { headers: { "X-Requested-With": "sightline", "X-Sightline-Activity": "passive" },
      credentials: "same-origin" })
      .then(async (res) => (res.ok ? URL.createObjectURL(await res.blob()) : null))
      .catch(() => null)
      .then((src) => { if (!src && planImages.get(url) === loading) planImages.delete(url); return src; });
    planImages.set(url, loading);
  }
  return planImages.get(url);
}

function forgetPlanImages() {
  for (const loading of planImages.values()) loading.then((src) => { if (src) URL.revokeObjectURL(src); });
  planImages.clear();
}

/** The generated stand-in when the site file gives the building no plan image: outline and grid. */
function generatedDrawing() {
  const drawing = svg("svg", { viewBox: "0 0 100 70", class: "plan-drawing", "aria-hidden": "true", preserveAspectRatio: "none" });
  drawing.append(svg("rect", { x: "1", y: "1", width: "98", height: "68", class: "plan-outline" }));
  for (const x of [25, 50, 75]) drawing.append(svg("line", { x1: x, y1: 1, x2: x, y2: 69, class: "plan-grid" }));
  for (const y of [23, 46]) drawing.append(svg("line", { x1: 1, y1: y, x2: 99, y2: y, class: "plan-grid" }));
  return drawing;
}

function renderPlan(cameras) {
  clear(planBox);
  const byBuilding = new Map();
  for (const c of cameras) {
    if (!c.position) continue;
    if (!byBuilding.has(c.building)) byBuilding.set(c.building, []);
    byBuilding.get(c.building).push(c);
  }
  planSection.hidden = byBuilding.size === 0;
  for (const [building, list] of byBuilding) {
    // The building's plan image from the site file (or a generated outline); camera
    // buttons sit on it at their positions (fractions 0..1 of the plan, from the site file).
    const name = buildingName[building] || building;
    const imageUrl = list.find((c) => c.floor_plan)?.floor_plan || null;
    const plan = el("div", { class: "plan", "data-building": building });
    if (imageUrl) {
      const img = el("img", { class: "plan-image", alt: `Floor plan of ${name}`, draggable: "false" });
      plan.classList.add("has-image", "loading");
      img.addEventListener("load", () => plan.classList.remove("loading"));
      plan.append(img);
      planImage(imageUrl).then((src) => {
        if (src) { img.src = src; return; }
        img.remove();
        plan.classList.remove("has-image", "loading");
        plan.prepend(generatedDrawing());
      });
    } else {
      plan.append(generatedDrawing());
    }
    list.forEach((c, i) => {
      const marker = el("button", { type: "button", class: "plan-marker", "data-camera": c.id, "aria-label": `${c.name}: enlarge`, title: c.name }, String(i + 1));
      // Sideways, a marker stays whole inside the plan (no horizontal scrolling on a phone).
      const x = Math.min(1, Math.max(0, c.position[0])) * 100;
      marker.style.left = `clamp(calc(var(--target) / 2), ${x}%, calc(100% - var(--target) / 2))`;
      marker.style.top = `${Math.min(1, Math.max(0, c.position[1])) * 100}%`;
      marker.addEventListener("click", () => openFocus(c.id));
      plan.append(marker);
    });
    const legend = el("ol", { class: "plan-legend" }, list.map((c) => el("li", {}, c.name)));
    planBox.append(el("figure", { class: "plan-figure" }, plan, el("figcaption", {}, name), legend));
  }
}

// ------------------------------------------------------------------ grants and emergencies

function grantKey(grants) {
  return JSON.stringify(grants.map((g) => [g.id, g.cameras, g.expires]).sort());
}

async function loadEmergency(id) {
  try {
    const e = await api(`/api/v1/emergencies/${encodeURIComponent(id)}`, { passive: true });
    state.emergencies.set(id, e);
    return e;
  } catch {
    return state.emergencies.get(id) || null;
  }
}

function endedMessage(e) {
  const where = e ? (buildingName[e.building] || e.building) : "the school";
  const when = e && e.ended_at ? ` at ${timeFmt.format(new Date(e.ended_at))}` : "";
  if (!e) return "Your access to these cameras has ended. Video has stopped.";
  if (e.state === "all_clear" || e.state === "closed") return `Access ended${when}: ${where} declared ALL CLEAR. Video has stopped.`;
  if (e.state === "cancelled") return `Access ended${when}: the emergency at ${where} was cancelled (${e.end_reason || "false alarm"}). Video has stopped.`;
  if (e.expires_at && Date.parse(e.expires_at) <= Date.now()) return `Access ended: the time allowed for the emergency at ${where} ran out. Video has stopped.`;
  return `Access to the cameras at ${where} has ended${e.end_reason ? ` (${e.end_reason})` : ""}. Video has stopped.`;
}

function renderEmergencies() {
  clear(emergenciesBox);
  for (const g of state.grants) {
    const e = state.emergencies.get(g.emergency);
    const title = e ? `${e.action} · ${buildingName[e.building] || e.building}` : "Emergency";
    const countdown = el("strong", { class: "countdown", "data-expires": g.expires }, "");
    emergenciesBox.append(el("section", { class: "card emergency-card", "data-emergency": g.emergency },
      el("h1", {}, title, e && e.drill ? [" ", el("span", { class: "badge drill" }, "Drill")] : null),
      el("p", {}, e ? `${words(e.incident_type)} · declared ${fmtTime(e.declared_at)} · ` : "",
        `${g.cameras.length} camera${g.cameras.length === 1 ? "" : "s"} shared with you`),
      el("p", { class: "expiry" }, "Access ends in ", countdown, ` (${fmtTime(g.expires)})`)));
  }
  tickCountdowns();
}

function tickCountdowns() {
  for (const node of emergenciesBox.querySelectorAll(".countdown")) {
    const left = Math.max(0, Math.round((Date.parse(node.dataset.expires) - Date.now()) / 1000));
    const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    const text = h ? `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}` : `${m}:${String(s).padStart(2, "0")}`;
    if (node.textContent !== text) node.textContent = text;
    node.classList.toggle("soon", left < 300);
  }
}

function endAccess(message) {
  closeFocus(false);
  for (const tile of state.tiles.values()) { tile.stop(); tile.root.remove(); }
  state.tiles.clear();
  state.cameras.clear();
  clear(emergenciesBox);
  renderPlan([]);
  forgetPlanImages();
  linkStatus.hidden = true;
  endedBanner.hidden = false;
  endedBanner.textContent = message;
  statusLine.textContent = "No camera access now. This page will show new access by itself.";
}

let polling = false;
let pollAgain = false;

async function pollGrants() {
  if (polling) { pollAgain = true; return; }
  polling = true;
  try {
    do {
      pollAgain = false;
      await refresh();
    } while (pollAgain);
  } catch (err) {
    statusLine.textContent = `Could not check your access: ${err.message}. Retrying…`;
  } finally {
    polling = false;
  }
}

// Why nothing is shared, from the server: an officer whose agency has no camera agreement is
// told so and whom to call, instead of reading that there is no emergency.
async function explainNoAccess() {
  const access = await api("/api/v1/access/mine", { passive: true });
  const outside = access.access === "no_agreement";
  accessHelp.textContent = outside ? access.detail : "";
  accessHelp.hidden = !outside;
  statusLine.textContent = outside
    ? "No camera is shared with your agency. This page updates by itself."
    : `${access.detail} This page updates by itself.`;
}

async function refresh() {
  const before = state.grants;
  const grants = await api("/api/v1/grants/mine", { passive: true });
  if (!grants.length && !state.everHadAccess) await explainNoAccess();
  const key = grantKey(grants);
  if (key === state.grantKey) return;
  state.grantKey = key;
  state.grants = grants;
  const lost = before.filter((g) => !grants.some((n) => n.id === g.id));
  for (const g of grants) if (!state.emergencies.has(g.emergency)) await loadEmergency(g.emergency);

  if (!grants.length) {
    if (state.everHadAccess) {
      const e = lost.length ? await loadEmergency(lost[0].emergency) : null;
      endAccess(endedMessage(e));
    }
    return;
  }
  state.everHadAccess = true;
  accessHelp.hidden = true;
  endedBanner.hidden = true;
  if (lost.length) {
    const e = await loadEmergency(lost[0].emergency);
    endedBanner.hidden = false;
    endedBanner.textContent = endedMessage(e);
  }
  const cameras = await api("/api/v1/cameras", { passive: true });
  const granted = new Set(grants.flatMap((g) => g.cameras));
  const visible = cameras.filter((c) => granted.has(c.id));
  const ids = new Set(visible.map((c) => c.id));
  for (const [id, tile] of state.tiles) {
    if (!ids.has(id)) { tile.stop(); tile.root.remove(); state.tiles.delete(id); }
  }
  if (state.focus && !ids.has(state.focus.camera.id)) closeFocus(false);
  state.cameras = new Map(visible.map((c) => [c.id, c]));
  for (const c of visible) {
    if (state.tiles.has(c.id)) continue;
    const tile = new Tile(c);
    state.tiles.set(c.id, tile);
    grid.append(tile.root);
    tile.start();
  }
  renderEmergencies();
  renderPlan(visible);
  statusLine.textContent = `${visible.length} camera${visible.length === 1 ? "" : "s"} shared with you. ` +
    "Tap a camera to enlarge it.";
}

// Faster while waiting for access, so video starts within a few seconds of activation.
(function schedule() {
  setTimeout(() => { pollGrants().finally(schedule); }, state.grants.length ? GRANT_POLL_MS : 1000);
})();
setInterval(() => {
  for (const tile of state.tiles.values()) tile.renderBadge();
  if (state.focus) state.focus.renderBadge();
}, 250);
setInterval(tickCountdowns, 1000);
window.addEventListener("pagehide", () => {
  for (const tile of state.tiles.values()) tile.stop();
  if (state.focus) state.focus.stop();
});

// Diagnostics for support staff and the browser tests: read-only state, and a way to feed
// a link-quality sample as if WebRTC stats had measured it.
window.sightlineViewer = {
  get mode() { return state.mode; },
  tiles: () => [...state.tiles.values()],
  focus: () => state.focus,
  simulateQuality(sample) {
    const full = { lossRate: 0, kbps: 0, fps: 0, framesDecoded: 1, jitter: 0, ...sample };
    full.poor = true;
    const tile = state.focus || [...state.tiles.values()][0];
    if (tile && tile.view) { const v = tile.view; onQuality(tile, v, full); onQuality(tile, v, full); }
  },
};

pollGrants();
