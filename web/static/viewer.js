// The police viewer: the emergencies this officer has access to, a grid of the granted
// cameras (sub streams), a focused camera (main stream), the floor plan, the countdown to
// expiry, a LIVE badge beside every picture, and a clear stop when access ends.
// Server data is inserted as text only.
//
// Recovery needs no tap: one passive poll a second (GET /api/v1/grants/mine, with the
// emergency's action) is also the page's probe of the gateway. While it fails the page
// says why (no network on this device, or the gateway cannot be reached) and backs off
// (0.5 s, 1 s, then every 2 s, jittered); the first answer after that restarts every
// tile whose video stopped. A tile whose frames stop while the gateway answers (address
// change, gateway restart) starts a new session by itself with the same backoff.

import { api, clear, el, fmtTime, words } from "/static/common.js";
import { WhepView, describeLink, failureKind, goodLink, nextMode } from "/static/whep.js";

const pageData = JSON.parse(document.getElementById("page-data").textContent || "{}");
const buildingName = Object.fromEntries((pageData.buildings || []).map((b) => [b.id, b.name]));

const grid = document.getElementById("grid");
const statusLine = document.getElementById("view-status");
const emergenciesBox = document.getElementById("emergencies");
const endedBanner = document.getElementById("access-ended");
const accessHelp = document.getElementById("access-help");
const linkStatus = document.getElementById("link-status");
const netStatus = document.getElementById("net-status");
const leftBanner = document.getElementById("cameras-left");
const focusSection = document.getElementById("focus");
const focusTileBox = document.getElementById("focus-tile");
const focusTitle = document.getElementById("focus-title");
const planSection = document.getElementById("plan-section");
const planBox = document.getElementById("plan");

const POLL_MS = 1000; // the passive poll while the gateway answers
const POLL_TIMEOUT_MS = 1500;
const HIDDEN_POLL_MS = 5000; // a page in the background polls less
const BACKOFF_MS = [500, 1000, 2000]; // retries while the page is visible: capped at 2 s
const HIDDEN_BACKOFF_MAX_MS = 10000;
const STALLED_AFTER_MS = 2500; // no new frame for this long: reconnect (when the gateway answers)
const FIRST_FRAME_WITHIN_MS = 6000; // a new session that shows nothing for this long is tried again
const SNAPSHOT_EVERY_MS = 3000;
const PROBE_EVERY_MS = [2000, 4000, 8000, 15000]; // in still-picture mode: try a video probe this often
const UP_AFTER_GOOD = 3; // good stats intervals in a row before stepping back up
const LEFT_BANNER_MS = 120000;
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

const state = {
  grants: [],
  grantKey: "",
  cameras: new Map(), // id -> camera (from /api/v1/cameras)
  tiles: new Map(), // id -> grid Tile
  focus: null, // Tile in the focus section
  emergencies: new Map(), // id -> emergency (as the officer may see it)
  everHadAccess: false,
  mode: "video", // "video" -> "sub" -> "snapshots" on a poor link, and back up when it measures good
  goodRuns: 0,
  clockOffsetMs: 0,
  // The gateway as the poll sees it: "ok", "offline" (the device has no network) or
  // "unreachable" (the request failed or timed out); okAt: the last answer (ms).
  link: { state: "ok", okAt: Date.now(), failures: 0, detail: "" },
  left: new Map(), // camera id -> {name, why, at}: cameras that left the officer's view
};

function jitter(ms) {
  return Math.round(ms * (0.8 + Math.random() * 0.4));
}

function backoff(failures) {
  if (document.hidden) return jitter(Math.min(HIDDEN_BACKOFF_MAX_MS, 1000 * 2 ** failures));
  return jitter(BACKOFF_MS[Math.min(failures, BACKOFF_MS.length - 1)]);
}

// ------------------------------------------------------------------ tiles

class Tile {
  constructor(camera, { focused = false } = {}) {
    this.camera = camera;
    this.focused = focused;
    this.view = null;
    this.snapshotTimer = null;
    this.snapshot = null; // {wall, at}
    this.problem = null; // {kind: "network"|"access"|"camera"|"other", text}
    this.attempts = 0; // failed starts in a row (the backoff)
    this.retryAt = 0; // when the next start may run (ms); 0: none planned
    this.stalledSince = null;
    this.stopped = false;
    this.video = el("video", { muted: true, autoplay: true, playsinline: true, "aria-label": `Live video: ${camera.name}` });
    this.video.muted = true;
    this.img = el("img", { alt: `Still picture: ${camera.name}`, hidden: true });
    this.badge = el("span", { class: "live-badge starting", "aria-live": "off" }, "Connecting…");
    this.note = el("p", { class: "tile-note", hidden: true });
    const picture = el("div", { class: "picture" }, this.video, this.img);
    const label = el("span", { class: "tile-name" }, camera.name);
    // The badge sits in the bar above the picture, never over it.
    const bar = el("figcaption", { class: "tile-bar" }, this.badge, label);
    if (focused) {
      this.root = el("figure", { class: "tile focused", "data-camera": camera.id }, bar, picture, this.note);
    } else {
      this.open = el("button", { type: "button", class: "tile-open", "aria-label": `Enlarge ${camera.name}` }, picture);
      this.open.addEventListener("click", () => openFocus(camera.id));
      this.root = el("figure", { class: "tile", "data-camera": camera.id }, bar, this.open, this.note);
    }
  }

  get stream() {
    if (!this.focused || state.mode !== "video") return (this.camera.streams || []).includes("sub") ? "sub" : "main";
    return "main";
  }

  start() {
    this.stopMedia();
    this.retryAt = 0;
    this.stalledSince = null;
    if (this.stopped) return;
    if (state.mode === "snapshots") {
      this.startSnapshots();
      return;
    }
    this.video.hidden = false;
    this.img.hidden = true;
    const view = new WhepView({
      camera: this.camera.id, stream: this.stream, video: this.video,
      onEnded: (reason) => { if (this.view === view) this.failed(view, { status: -1, message: reason }); },
      onQuality: (sample) => onQuality(this, view, sample),
      canPoll: () => state.link.state === "ok",
    });
    view.poorRuns = 0;
    this.view = view;
    this.root.dataset.stream = this.stream;
    this.root.dataset.attempts = String(this.attempts);
    view.start({ passive: true }).catch((err) => { if (this.view === view) this.failed(view, err); });
  }

  /** A start that failed or a session that ended: say why, and plan the next try. */
  failed(view, err) {
    if (view) view.stop();
    this.view = null;
    // -1: the session ended on the gateway's side (a gateway restart, ICE failed): start anew.
    const kind = err.status === -1 ? "ended" : failureKind(err);
    this.attempts += 1;
    if (kind === "ended") {
      this.retryAt = Date.now() + (this.attempts > 1 ? backoff(this.attempts - 1) : 0);
      return;
    }
    const texts = {
      network: "The gateway cannot be reached. Trying again by itself…",
      access: "Your access to this camera ended.",
      camera: `Camera offline or not sending (${err.message}). Trying again by itself…`,
      other: `Cannot show this camera: ${err.message}. Trying again by itself…`,
    };
    this.setProblem({ kind, text: texts[kind] });
    if (kind === "network") {
      // Not worth a request of its own: the page's poll finds out when the gateway answers.
      noteUnreachable();
      this.retryAt = Date.now() + backoff(this.attempts);
    } else {
      const wait = Math.max(backoff(this.attempts), err.retryAfterMs || 0);
      this.retryAt = Date.now() + (kind === "access" ? Math.max(wait, 5000) : wait);
      if (kind === "access") pollSoon();
    }
    renderLeft();
  }

  setProblem(problem) {
    this.problem = problem;
    this.note.hidden = !problem;
    this.note.textContent = problem ? problem.text : "";
    this.root.dataset.problem = problem ? problem.kind : "";
  }

  /**
   * Every 250 ms: reconnect a tile whose video stopped. Only once the gateway has
   * answered since the frames stopped (during an outage the poll alone probes), then at
   * once, and again with backoff while it does not come back.
   */
  supervise(now) {
    if (this.stopped || state.mode === "snapshots") return;
    if (!this.view) {
      if (this.retryAt && now >= this.retryAt && state.link.state === "ok") this.start();
      return;
    }
    const live = this.view.liveness();
    const playing = live.state === "live" || live.state === "delayed";
    if (playing) {
      this.stalledSince = null;
      if (this.attempts || this.problem) {
        this.attempts = 0;
        this.setProblem(null);
        renderLeft();
      }
      return;
    }
    const neverShown = !this.view.lastFrame && now - this.view.startedAt > FIRST_FRAME_WITHIN_MS;
    const stopped = this.view.lastFrame && live.sinceFrameMs > STALLED_AFTER_MS;
    if (!neverShown && !stopped) return;
    if (this.stalledSince === null) this.stalledSince = now;
    if (state.link.state !== "ok" || state.link.okAt <= this.stalledSince) return; // wait for an answer
    if (!this.retryAt) this.retryAt = this.attempts ? now + backoff(this.attempts) : now;
    if (now >= this.retryAt) {
      this.attempts += 1;
      this.start();
    }
  }

  /** The gateway answers again: a tile without video tries now (spread over 0-200 ms). */
  recover() {
    if (this.stopped || state.mode === "snapshots") return;
    const stalled = !this.view || this.stalledSince !== null ||
      (this.view.lastFrame && this.view.liveness().sinceFrameMs > STALLED_AFTER_MS);
    if (!stalled) return;
    if (this.problem && this.problem.kind === "network") this.setProblem(null);
    const at = Date.now() + Math.random() * 200;
    if (this.view) { this.stalledSince = this.stalledSince ?? Date.now(); this.retryAt = at; this.attempts = 0; return; }
    this.retryAt = at;
  }

  startSnapshots() {
    this.video.hidden = true;
    this.img.hidden = false;
    this.root.dataset.stream = "snapshot";
    const stream = this.focused ? "main" : (this.camera.streams || []).includes("sub") ? "sub" : "main";
    let inFlight = false;
    const load = async () => {
      if (inFlight || state.link.state !== "ok") return;
      inFlight = true;
      try {
        const res = await fetch(`/api/v1/cameras/${encodeURIComponent(this.camera.id)}/snapshot.jpg?stream=${stream}`,
          { headers: { "X-Requested-With": "sightline", "X-Sightline-Activity": "passive" }, credentials: "same-origin",
            signal: AbortSignal.timeout(SNAPSHOT_EVERY_MS) });
        if (res.status === 403) { pollSoon(); return; }
        if (!res.ok) return;
        const blob = await res.blob();
        const captured = Date.parse(res.headers.get("X-Captured-At") || "");
        const old = this.img.src;
        this.img.src = URL.createObjectURL(blob);
        if (old && old.startsWith("blob:")) URL.revokeObjectURL(old);
        this.snapshot = { wall: Number.isNaN(captured) ? null : captured, at: Date.now() };
      } catch { /* keep the last picture; its age shows on the badge */ } finally { inFlight = false; }
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
    let text = this.attempts ? "Reconnecting…" : "Connecting…";
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
    } else if (this.problem) {
      cls = "stale";
      text = this.problem.kind === "camera" ? "NO VIDEO · camera offline" : "NO VIDEO";
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

function allTiles() {
  return state.focus ? [...state.tiles.values(), state.focus] : [...state.tiles.values()];
}

// ------------------------------------------------------------------ link quality

function onQuality(tile, view, sample) {
  if (view.clock) state.clockOffsetMs = view.clock.offsetMs;
  if (tile.view !== view || state.mode === "snapshots") return;
  view.poorRuns = sample.poor && sample.framesDecoded > 0 ? view.poorRuns + 1 : 0;
  const from = view.stream === "main" ? "video" : "sub";
  const mode = nextMode(from, view.poorRuns);
  if (mode !== from) { degrade(mode, sample); return; }
  // Back up from the smaller stream when the focused camera's link measures good again.
  if (state.mode === "sub" && tile === state.focus) {
    state.goodRuns = goodLink(sample) ? state.goodRuns + 1 : 0;
    if (state.goodRuns >= UP_AFTER_GOOD) upgrade();
  }
}

function degrade(mode, sample) {
  if (state.mode === mode || (state.mode === "snapshots")) return;
  state.mode = mode;
  state.goodRuns = 0;
  const why = describeLink(sample);
  linkStatus.hidden = false;
  clear(linkStatus);
  linkStatus.append(
    mode === "sub"
      ? `Weak connection (${why}): showing the smaller video stream. Full video returns by itself when the link is good again.`
      : `Weak connection (${why}): video stopped, showing a still picture of each camera every ${SNAPSHOT_EVERY_MS / 1000} s. ` +
        "Video returns by itself when the link is good again.",
    " ",
    el("button", { type: "button", class: "button secondary", id: "retry-video" }, "Try full video again"),
  );
  document.getElementById("retry-video").addEventListener("click", () => upgrade());
  if (mode === "sub") {
    if (state.focus) state.focus.start();
  } else {
    restartAll();
    probe.schedule(true);
  }
}

/** The link measures good again (or the officer asked): full video, the banner gone. */
function upgrade() {
  const from = state.mode;
  state.mode = "video";
  state.goodRuns = 0;
  probe.stop();
  linkStatus.hidden = true;
  if (from === "snapshots") restartAll();
  else if (state.focus) state.focus.start();
}

function restartAll() {
  for (const tile of allTiles()) { tile.attempts = 0; tile.setProblem(null); tile.start(); }
}

// In still-picture mode, a short sub-stream session (no picture shown) measures the link
// now and then; two good intervals bring the video back.
const probe = {
  view: null,
  timer: null,
  tries: 0,
  goodRuns: 0,
  schedule(first = false) {
    this.stop();
    if (first) this.tries = 0;
    const wait = jitter(PROBE_EVERY_MS[Math.min(this.tries, PROBE_EVERY_MS.length - 1)]);
    this.timer = setTimeout(() => this.run(), wait);
  },
  run() {
    this.timer = null;
    if (state.mode !== "snapshots") return;
    const tile = state.focus || [...state.tiles.values()][0];
    if (!tile || state.link.state !== "ok") { this.tries += 1; this.schedule(); return; }
    const camera = tile.camera;
    const video = el("video", { muted: true, autoplay: true, playsinline: true });
    video.muted = true;
    this.goodRuns = 0;
    let samples = 0;
    const view = new WhepView({
      camera: camera.id, stream: (camera.streams || []).includes("sub") ? "sub" : "main", video,
      onEnded: () => { if (this.view === view) this.fail(); },
      onQuality: (sample) => {
        if (this.view !== view) return;
        samples += 1; // the first interval includes the start: judged by the next ones
        this.goodRuns = goodLink(sample) ? this.goodRuns + 1 : 0;
        if (this.goodRuns >= 2) upgrade();
        else if (samples >= 4) this.fail();
      },
    });
    this.view = view;
    view.start({ passive: true }).catch(() => { if (this.view === view) this.fail(); });
    setTimeout(() => { if (this.view === view) this.fail(); }, 12000);
  },
  fail() {
    this.tries += 1;
    this.schedule();
  },
  stop() {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    if (this.view) { const v = this.view; this.view = null; v.stop(); }
  },
};

// ------------------------------------------------------------------ focus

const phoneSized = window.matchMedia("(max-width: 700px), (max-height: 500px)");

function openFocus(cameraId) {
  const camera = state.cameras.get(cameraId);
  if (!camera) return;
  closeFocus(false);
  const tile = new Tile(camera, { focused: true });
  state.focus = tile;
  focusTitle.textContent = camera.name;
  focusTileBox.append(tile.root);
  focusSection.hidden = false;
  document.body.classList.add("focus-open");
  tile.start();
  if (!phoneSized.matches) focusSection.scrollIntoView({ block: "start" });
  fullscreenIfLandscape();
  document.getElementById("focus-close").focus({ preventScroll: true });
}

/** On a phone held sideways the focused camera takes the whole screen (where allowed). */
function fullscreenIfLandscape() {
  if (!state.focus || !phoneSized.matches || document.fullscreenElement) return;
  const landscape = window.matchMedia("(orientation: landscape)").matches;
  if (landscape && focusSection.requestFullscreen) focusSection.requestFullscreen({ navigationUI: "hide" }).catch(() => {});
}

function closeFocus(restoreFocus = true) {
  const tile = state.focus;
  if (!tile) return;
  state.focus = null;
  tile.stop();
  tile.root.remove();
  focusSection.hidden = true;
  document.body.classList.remove("focus-open");
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  if (state.mode === "sub") upgrade(); // the grid shows sub streams anyway
  if (restoreFocus) state.tiles.get(tile.camera.id)?.open?.focus();
}

document.getElementById("focus-close").addEventListener("click", () => closeFocus());
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && state.focus) closeFocus(); });
window.matchMedia("(orientation: landscape)").addEventListener("change", (ev) => {
  if (ev.matches) fullscreenIfLandscape();
  else if (document.fullscreenElement === focusSection) document.exitFullscreen().catch(() => {});
});

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
  return JSON.stringify(grants.map((g) => [g.id, g.cameras, g.expires, g.action || "", g.held || []]).sort());
}

async function loadEmergency(id) {
  try {
    const e = await api(`/api/v1/emergencies/${encodeURIComponent(id)}`, { passive: true, timeoutMs: 4000 });
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
    const action = g.action || (e && e.action) || "";
    const where = e ? (buildingName[e.building] || e.building) : "";
    const title = action ? `${action}${where ? ` · ${where}` : ""}` : "Emergency";
    const countdown = el("strong", { class: "countdown", "data-expires": g.expires }, "");
    emergenciesBox.append(el("section", { class: "card emergency-card", "data-emergency": g.emergency, "data-action": action },
      el("h1", {}, title, e && e.drill ? [" ", el("span", { class: "badge drill" }, "Drill")] : null),
      el("p", {}, e ? `${words(e.incident_type)} · declared ${fmtTime(e.declared_at)} · ` : "",
        `${g.cameras.length} camera${g.cameras.length === 1 ? "" : "s"} shared with you`),
      el("p", { class: "expiry" }, "Access ends in ", countdown, el("span", { class: "expiry-at" }, ` (${fmtTime(g.expires)})`))));
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

/**
 * The banner naming the cameras that left the officer's view and why (the action
 * changed, a privacy hold, access ended), and the granted cameras that are offline now.
 * An entry goes when its camera comes back, after two minutes, or when dismissed.
 */
function renderLeft() {
  const now = Date.now();
  for (const [id, entry] of state.left) {
    if (state.tiles.has(id) || now - entry.at > LEFT_BANNER_MS) state.left.delete(id);
  }
  const offline = [...state.tiles.values()].filter((t) => t.problem && t.problem.kind === "camera");
  const lines = [];
  const byWhy = new Map();
  for (const entry of state.left.values()) {
    if (!byWhy.has(entry.why)) byWhy.set(entry.why, []);
    byWhy.get(entry.why).push(entry.name);
  }
  for (const [why, names] of byWhy) {
    lines.push(`${names.join(", ")}: no longer shown — ${why}.`);
  }
  if (offline.length) lines.push(`${offline.map((t) => t.camera.name).join(", ")}: camera offline; its video returns by itself when it is back.`);
  const text = lines.join(" ");
  leftBanner.hidden = !text;
  if (leftBanner.dataset.text === text) return;
  leftBanner.dataset.text = text;
  clear(leftBanner);
  if (!text) return;
  leftBanner.append(el("span", {}, text), " ",
    state.left.size ? el("button", { type: "button", class: "button secondary", id: "cameras-left-ok" }, "OK") : null);
  document.getElementById("cameras-left-ok")?.addEventListener("click", () => { state.left.clear(); renderLeft(); });
}

function whyLeft(cameraId, before, after) {
  const was = before.find((g) => g.cameras.includes(cameraId));
  const now = was && after.find((g) => g.id === was.id);
  if (after.some((g) => (g.held || []).includes(cameraId))) return "privacy hold (a time-out or restraint in progress)";
  if (was && now && was.action && now.action && was.action !== now.action) return `the action changed from ${was.action} to ${now.action}`;
  if (was && !now) return "access to it ended";
  return "it is no longer shared with you";
}

function endAccess(message) {
  closeFocus(false);
  for (const tile of state.tiles.values()) { tile.stop(); tile.root.remove(); }
  state.tiles.clear();
  state.cameras.clear();
  state.left.clear();
  clear(emergenciesBox);
  renderPlan([]);
  forgetPlanImages();
  probe.stop();
  state.mode = "video";
  linkStatus.hidden = true;
  renderLeft();
  endedBanner.hidden = false;
  endedBanner.textContent = message;
  statusLine.textContent = "No camera access now. This page will show new access by itself.";
  statusLine.classList.remove("has-video");
}

// ------------------------------------------------------------------ the poll (and the gateway's reachability)

function showNet() {
  const link = state.link;
  netStatus.hidden = link.state === "ok";
  netStatus.dataset.state = link.state;
  if (link.state === "offline") {
    netStatus.textContent = "No network on this device. Video comes back by itself when the network returns.";
  } else if (link.state === "unreachable") {
    netStatus.textContent = `Cannot reach the Sightline gateway (${link.detail}). Trying again by itself; ` +
      "video comes back when it answers.";
  }
}

function linkOk() {
  const was = state.link.state;
  state.link = { state: "ok", okAt: Date.now(), failures: 0, detail: "" };
  if (was !== "ok") {
    showNet();
    for (const tile of allTiles()) tile.recover();
  }
}

function linkDown(err) {
  const link = state.link;
  link.failures += 1;
  link.state = navigator.onLine === false ? "offline" : "unreachable";
  link.detail = err && err.status ? `it answered ${err.status}` : (err && err.message) || "no answer";
  showNet();
}

/** A request of a tile failed to reach the gateway: poll now to find out. */
function noteUnreachable() {
  if (state.link.state === "ok") pollSoon();
}

let pollTimer = null;
let polling = false;
let pollAgain = false;

function pollSoon() {
  if (polling) { pollAgain = true; return; }
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = setTimeout(pollLoop, 0);
}

async function pollLoop() {
  pollTimer = null;
  if (polling) { pollAgain = true; return; }
  polling = true;
  let ok = false;
  const began = Date.now();
  try {
    do {
      pollAgain = false;
      await refresh();
    } while (pollAgain);
    ok = true;
    linkOk();
  } catch (err) {
    if (err && err.status > 0 && err.status < 500) {
      ok = true; // the gateway answered; the error is about this request, not the link
      linkOk();
      statusLine.textContent = `Could not check your access: ${err.message}. Retrying…`;
    } else {
      linkDown(err);
    }
  } finally {
    polling = false;
  }
  // The backoff counts from the start of the failed try (a timeout already took its time).
  const wait = ok ? (document.hidden ? HIDDEN_POLL_MS : POLL_MS) :
    Math.max(100, backoff(state.link.failures - 1) - (Date.now() - began));
  if (!pollTimer) pollTimer = setTimeout(pollLoop, wait);
}

// Why nothing is shared, from the server: an officer whose agency has no camera agreement is
// told so and whom to call, instead of reading that there is no emergency.
async function explainNoAccess() {
  const access = await api("/api/v1/access/mine", { passive: true, timeoutMs: POLL_TIMEOUT_MS });
  const outside = access.access === "no_agreement";
  accessHelp.textContent = outside ? access.detail : "";
  accessHelp.hidden = !outside;
  statusLine.textContent = outside
    ? "No camera is shared with your agency. This page updates by itself."
    : `${access.detail} This page updates by itself.`;
}

function showStatusLine() {
  const n = state.tiles.size;
  statusLine.textContent = `${n} camera${n === 1 ? "" : "s"} shared with you. Tap a camera to enlarge it.`;
  statusLine.classList.toggle("has-video", n > 0);
}

async function refresh() {
  const before = state.grants;
  const grants = await api("/api/v1/grants/mine", { passive: true, timeoutMs: POLL_TIMEOUT_MS });
  if (!grants.length && !state.everHadAccess) await explainNoAccess();
  const key = grantKey(grants);
  if (key === state.grantKey) {
    if (grants.length) showStatusLine(); // clears an earlier "could not check" line
    renderLeft();
    return;
  }
  for (const g of grants) if (!state.emergencies.has(g.emergency)) await loadEmergency(g.emergency);
  const lost = before.filter((g) => !grants.some((n) => n.id === g.id));

  if (!grants.length) {
    state.grantKey = key;
    state.grants = grants;
    if (state.everHadAccess) {
      const e = lost.length ? await loadEmergency(lost[0].emergency) : null;
      endAccess(endedMessage(e));
    }
    return;
  }
  const cameras = await api("/api/v1/cameras", { passive: true, timeoutMs: 4000 });
  state.grantKey = key;
  state.grants = grants;
  state.everHadAccess = true;
  accessHelp.hidden = true;
  endedBanner.hidden = true;
  if (lost.length) {
    const e = await loadEmergency(lost[0].emergency);
    endedBanner.hidden = false;
    endedBanner.textContent = endedMessage(e);
  }
  const granted = new Set(grants.flatMap((g) => g.cameras));
  const visible = cameras.filter((c) => granted.has(c.id));
  const ids = new Set(visible.map((c) => c.id));
  for (const [id, tile] of state.tiles) {
    if (ids.has(id)) continue;
    state.left.set(id, { name: tile.camera.name, why: whyLeft(id, before, grants), at: Date.now() });
    tile.stop(); tile.root.remove(); state.tiles.delete(id);
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
  renderLeft();
  showStatusLine();
}

setInterval(() => {
  const now = Date.now();
  for (const tile of allTiles()) { tile.supervise(now); tile.renderBadge(); }
}, 250);
setInterval(tickCountdowns, 1000);
window.addEventListener("online", () => pollSoon());
window.addEventListener("offline", () => { linkDown(null); });
document.addEventListener("visibilitychange", () => { if (!document.hidden) pollSoon(); });
window.addEventListener("pagehide", () => {
  for (const tile of allTiles()) tile.stop();
  probe.stop();
});

// Diagnostics for support staff and the browser tests: read-only state, and a way to feed
// a link-quality sample as if WebRTC stats had measured it.
window.sightlineViewer = {
  get mode() { return state.mode; },
  get link() { return { ...state.link }; },
  tiles: () => [...state.tiles.values()],
  focus: () => state.focus,
  simulateQuality(sample) {
    const full = { lossRate: 0, kbps: 0, fps: 0, framesDecoded: 1, jitter: 0, packets: 100, ...sample };
    full.poor = true;
    const tile = state.focus || [...state.tiles.values()][0];
    if (tile && tile.view) { const v = tile.view; onQuality(tile, v, full); onQuality(tile, v, full); }
  },
};

pollLoop();
