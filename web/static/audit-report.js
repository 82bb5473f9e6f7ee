import { api, clear, el, fmtDuration, fmtTime, loadVerifyBanner, row, showError, words } from "/static/common.js";

const form = document.getElementById("report-form");
const monthInput = document.getElementById("month");
const table = document.getElementById("accesses");
const status = document.getElementById("report-status");
const totals = document.getElementById("totals");

loadVerifyBanner();

const params = new URLSearchParams(location.search);
const now = new Date();
monthInput.value = params.get("month") || `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, "0")}`;

async function load(month) {
  status.classList.remove("error");
  status.textContent = `Loading ${month}…`;
  table.hidden = true;
  clear(totals);
  const tbody = clear(table.querySelector("tbody"));
  try {
    const report = await api("/api/v1/reports/monthly", { params: { month } });
    for (const [k, v] of Object.entries(report.totals || {})) {
      totals.append(el("dt", {}, words(k)), el("dd", {}, k.endsWith("seconds") ? fmtDuration(v) : String(v)));
    }
    for (const a of report.accesses || []) {
      const incident = a.emergency
        ? el("a", { href: `/audit/emergencies/${encodeURIComponent(a.emergency)}` }, a.emergency) : "—";
      tbody.append(row(table, [a.officer, a.agency || "—", a.camera, incident, fmtTime(a.start), fmtTime(a.end),
        a.kind === "snapshot" ? "snapshot" : fmtDuration(a.seconds)]));
    }
    const n = (report.accesses || []).length;
    table.hidden = n === 0;
    status.textContent = n ? `${n} access${n === 1 ? "" : "es"} in ${report.month}.` : `No access to video in ${report.month}.`;
  } catch (err) {
    showError(status, err);
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const month = monthInput.value;
  if (!/^\d{4}-\d{2}$/.test(month)) {
    status.textContent = "Choose a month.";
    return;
  }
  history.replaceState(null, "", `?month=${month}`);
  load(month);
});

load(monthInput.value);
