// A small WHEP client (RFC 9725) for one camera stream, plus what a responder needs to
// trust the picture: the camera's wall-clock time of the frame on screen, the measured
// delay, and the link quality from WebRTC stats.
//
// Wall clock: the gateway's session resource (GET on the WHEP Location) tells the RTP
// timestamp of the last frame it sent and the wall-clock time it sent it (which is when
// the gateway received it from the camera). requestVideoFrameCallback gives the RTP
// timestamp of every frame the browser presents; the earliest-sent sample maps it to a
// wall-clock time. Nothing here decodes pixels.

import { CSRF } from "/static/common.js";

const PASSIVE = { "X-Sightline-Activity": "passive" };
const CLOCK_RATE = 90000;
const MAX_SAMPLES = 20;
export const STALE_AFTER_MS = 2500; // no new frame for this long: not live any more
export const DELAYED_AFTER_MS = 1500;

export class WhepError extends Error {
  constructor(status, code, detail) {
    super(detail || `the camera could not be opened (${status})`);
    this.status = status;
    this.code = code;
  }
}

/** Signed difference of two 32-bit RTP timestamps. */
function rtpDiff(a, b) {
  return (a - b) | 0;
}

/** Maps RTP timestamps of one session to the gateway's wall clock (Unix ms). */
export class RtpWallClock {
  constructor() {
    this.samples = []; // {rtp, sentAt}
    this.offsetMs = 0; // server clock - device clock
    this.bestRtt = Infinity;
  }

  addSample(rtp, sentAt) {
    if (rtp === null || rtp === undefined || !sentAt) return;
    const last = this.samples[this.samples.length - 1];
    if (last && last.rtp === rtp) return;
    this.samples.push({ rtp, sentAt });
    if (this.samples.length > MAX_SAMPLES) this.samples.shift();
  }

  addServerTime(serverMs, sentLocal, gotLocal) {
    const rtt = gotLocal - sentLocal;
    // keep the least-delayed round trip, but let the estimate age so a changed clock is followed
    this.bestRtt = Math.min(this.bestRtt * 1.05 + 1, Infinity);
    if (rtt <= this.bestRtt) {
      this.bestRtt = rtt;
      this.offsetMs = serverMs - (sentLocal + gotLocal) / 2;
    }
  }

  /** The wall-clock time (Unix ms, gateway clock) a frame with RTP timestamp ``rtp`` arrived. */
  wallOf(rtp) {
    let best = null;
    for (const s of this.samples) {
      const t = s.sentAt + (rtpDiff(rtp, s.rtp) * 1000) / CLOCK_RATE;
      if (best === null || t < best) best = t; // a unit sent late (GOP catch-up) never wins
    }
    return best;
  }

  serverNow() {
    return Date.now() + this.offsetMs;
  }
}

// STUN/TURN servers from the gateway (TURN credentials are short-lived and made for this
// user), shared by every view on the page and fetched again a minute before they expire.
let iceCache = null; // {servers, renewAt}

export async function currentIceServers() {
  if (iceCache && Date.now() < iceCache.renewAt) return iceCache.servers;
  try {
    const res = await fetch("/api/v1/ice-servers", { headers: PASSIVE, credentials: "same-origin" });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const body = await res.json();
    const expires = Date.parse(body.expires) || Date.now() + 600_000;
    iceCache = { servers: body.iceServers || [], renewAt: Math.max(Date.now() + 30_000, expires - 60_000) };
  } catch (err) {
    // Without the list the direct path may still work (it does on the district network).
    console.warn("no STUN/TURN servers from the gateway:", err);
    return iceCache ? iceCache.servers : [];
  }
  return iceCache.servers;
}

function iceGatheringDone(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") finish();
    };
    const finish = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", done);
      resolve();
    };
    const timer = setTimeout(finish, timeoutMs);
    pc.addEventListener("icegatheringstatechange", done);
  });
}

/**
 * One WHEP view session rendered into a <video>.
 *   onEnded(reason)   the session ended on the gateway side (grant ended, camera gone)
 *   onQuality(sample) every stats interval: {lossRate, kbps, fps, framesDecoded, poor}
 */
export class WhepView {
  constructor({ camera, stream = "sub", video, iceServers = null, onEnded, onQuality }) {
    this.camera = camera;
    this.stream = stream;
    this.video = video;
    this.iceServers = iceServers;
    this.onEnded = onEnded || (() => {});
    this.onQuality = onQuality || (() => {});
    this.clock = new RtpWallClock();
    this.pc = null;
    this.location = null;
    this.stopped = false;
    this.lastFrame = null; // {wall, localAt}
    this.framesPresented = 0;
    this.timers = [];
    this.prevStats = null;
  }

  async start({ passive = true } = {}) {
    const iceServers = this.iceServers || await currentIceServers();
    if (this.stopped) return;
    const pc = new RTCPeerConnection({ iceServers });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addEventListener("track", (ev) => {
      this.video.srcObject = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
      this.video.play().catch(() => {});
    });
    pc.addEventListener("connectionstatechange", () => {
      if (!this.stopped && (pc.connectionState === "failed" || pc.connectionState === "closed")) {
        this._ended("connection lost");
      }
    });
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringDone(pc, 2000);
    if (this.stopped) return;
    const headers = { ...CSRF, "Content-Type": "application/sdp", ...(passive ? PASSIVE : {}) };
    const res = await fetch(`/whep/${encodeURIComponent(this.camera)}?stream=${encodeURIComponent(this.stream)}`,
      { method: "POST", headers, body: pc.localDescription.sdp, credentials: "same-origin" });
    if (res.status !== 201) {
      let data = null;
      try { data = await res.json(); } catch { /* not JSON */ }
      pc.close();
      throw new WhepError(res.status, data && data.error, data && data.detail);
    }
    this.location = res.headers.get("Location");
    const answer = await res.text();
    if (this.stopped) { this._delete(); return; }
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    this._watchFrames();
    this.timers.push(setInterval(() => this._pollTiming(), 1000));
    this.timers.push(setInterval(() => this._pollStats(), 2000));
    this._pollTiming();
  }

  _watchFrames() {
    const video = this.video;
    if (typeof video.requestVideoFrameCallback !== "function") {
      // Fallback: the RTP timestamp of the newest packet received (close to the frame shown).
      this.timers.push(setInterval(() => {
        const receiver = this.pc && this.pc.getReceivers()[0];
        const src = receiver && receiver.getSynchronizationSources ? receiver.getSynchronizationSources()[0] : null;
        if (src) this._frame(src.rtpTimestamp, Date.now());
      }, 100));
      return;
    }
    const onFrame = (now, meta) => {
      if (this.stopped) return;
      const shownAt = performance.timeOrigin + (meta.expectedDisplayTime || now);
      if (meta.rtpTimestamp !== undefined) this._frame(meta.rtpTimestamp, shownAt);
      else this._frame(null, shownAt);
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  _frame(rtp, localAt) {
    this.framesPresented += 1;
    this.lastRtp = rtp;
    const wall = rtp === null ? null : this.clock.wallOf(rtp);
    this.lastFrame = { wall, localAt: Math.min(localAt, Date.now()) };
  }

  /** What the LIVE badge shows: {state: "starting"|"live"|"delayed"|"stale", wall, delayMs, sinceFrameMs}. */
  liveness() {
    if (!this.lastFrame) return { state: "starting", wall: null, delayMs: null, sinceFrameMs: null };
    const sinceFrameMs = Date.now() - this.lastFrame.localAt;
    let wall = this.lastFrame.wall;
    if (wall === null && this.lastRtp !== null && this.lastRtp !== undefined) {
      wall = this.clock.wallOf(this.lastRtp); // the mapping arrived after the frame
      if (wall !== null) this.lastFrame.wall = wall;
    }
    const delayMs = wall === null ? null : Math.max(0, this.clock.serverNow() - wall);
    let state = "live";
    if (sinceFrameMs > STALE_AFTER_MS || delayMs === null || delayMs > 5000) state = wall === null && sinceFrameMs <= STALE_AFTER_MS ? "starting" : "stale";
    else if (delayMs > DELAYED_AFTER_MS) state = "delayed";
    return { state, wall, delayMs, sinceFrameMs };
  }

  async _pollTiming() {
    if (this.stopped || !this.location) return;
    const sent = Date.now();
    let res;
    try {
      res = await fetch(this.location, { headers: { Accept: "application/json", ...CSRF, ...PASSIVE }, credentials: "same-origin" });
    } catch {
      return; // network blip: the stats loop notices a bad link
    }
    const got = Date.now();
    if (res.status === 404) {
      this._ended("session ended by the gateway");
      return;
    }
    if (res.status === 401) {
      this._ended("signed out");
      return;
    }
    if (!res.ok) return;
    const t = await res.json();
    this.clock.addServerTime(t.server_time_ms, sent, got);
    this.clock.addSample(t.rtp_timestamp, t.sent_at_ms);
  }

  async _pollStats() {
    if (this.stopped || !this.pc) return;
    let report;
    try { report = await this.pc.getStats(); } catch { return; }
    let inbound = null;
    report.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") inbound = s; });
    if (!inbound) return;
    const now = inbound.timestamp;
    const cur = {
      at: now, lost: inbound.packetsLost || 0, received: inbound.packetsReceived || 0,
      bytes: inbound.bytesReceived || 0, decoded: inbound.framesDecoded || 0,
    };
    const prev = this.prevStats;
    this.prevStats = cur;
    this.framesDecoded = cur.decoded;
    if (!prev) return;
    const dt = Math.max(0.001, (cur.at - prev.at) / 1000);
    const dLost = Math.max(0, cur.lost - prev.lost);
    const dRecv = Math.max(0, cur.received - prev.received);
    const sample = {
      lossRate: dLost + dRecv ? dLost / (dLost + dRecv) : 0,
      kbps: ((cur.bytes - prev.bytes) * 8) / dt / 1000,
      fps: (cur.decoded - prev.decoded) / dt,
      framesDecoded: cur.decoded,
      jitter: inbound.jitter || 0,
    };
    sample.poor = classifyLink(sample);
    this.onQuality(sample, this);
  }

  _ended(reason) {
    if (this.stopped) return;
    this.stop({ deleteSession: false });
    this.onEnded(reason, this);
  }

  _delete() {
    if (!this.location) return;
    fetch(this.location, { method: "DELETE", headers: { ...CSRF, ...PASSIVE }, credentials: "same-origin", keepalive: true })
      .catch(() => {});
  }

  stop({ deleteSession = true } = {}) {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (deleteSession) this._delete();
    if (this.pc) this.pc.close();
    const stream = this.video.srcObject;
    if (stream) for (const track of stream.getTracks()) track.stop();
    this.video.srcObject = null;
    this.video.removeAttribute("src");
    this.video.load();
  }
}

/** A stats interval counts as a poor link on heavy loss or a frame rate that collapsed. */
export function classifyLink({ lossRate, fps }) {
  return lossRate > 0.05 || fps < 4;
}

/**
 * The page's video mode after a run of stats samples: "video" (sub grid, main when
 * focused) -> "sub" (sub everywhere) -> "snapshots" (still pictures). ``poorRuns`` is how
 * many consecutive intervals were poor in the current mode.
 */
export function nextMode(mode, poorRuns) {
  if (poorRuns < 2) return mode;
  if (mode === "video") return "sub";
  if (mode === "sub") return "snapshots";
  return mode;
}
