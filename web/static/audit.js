import { api, el, fmtTime, loadVerifyBanner, row, showError, words } from "/static/common.js";

const table = document.getElementById("incidents");
const status = document.getElementById("incidents-status");

loadVerifyBanner();

try {
  const incidents = await api("/api/v1/emergencies");
  incidents.sort((a, b) => String(b.declared_at).localeCompare(String(a.declared_at)));
  const tbody = table.querySelector("tbody");
  for (const e of incidents) {
    const link = el("a", { href: `/audit/emergencies/${encodeURIComponent(e.id)}` }, `${words(e.action)} · ${e.id}`);
    const threat = e.threat_basis_missing
      ? el("span", { class: "badge bad" }, "Missing")
      : el("span", {}, e.threat_basis ? e.threat_basis : "On record");
    tbody.append(row(table, [
      [link, e.drill ? [" ", el("span", { class: "badge drill" }, "Drill")] : null],
      e.building, e.action, words(e.incident_type), words(e.state),
      fmtTime(e.declared_at), fmtTime(e.ended_at), threat,
    ]));
  }
  if (incidents.length) {
    table.hidden = false;
    status.textContent = `${incidents.length} incident${incidents.length === 1 ? "" : "s"}.`;
  } else {
    status.textContent = "No emergencies have been declared yet.";
  }
} catch (err) {
  showError(status, err);
}
