// "Give a mutual-aid responder access": a guest pass (link + PIN) for an active emergency,
// shown once in large type, and the passes given so far with a button to end each.
import { api, clear, el, fmtTime, showError, words } from "/static/common.js";

const section = document.getElementById("guest-pass");
const select = document.getElementById("guest-pass-emergency");
const give = document.getElementById("guest-pass-give");
const phone = document.getElementById("guest-pass-phone");
const error = document.getElementById("guest-pass-error");
const result = document.getElementById("guest-pass-result");
const list = document.getElementById("guest-pass-list");

function buildingNames() {
  try {
    const data = JSON.parse(document.getElementById("page-data").textContent);
    return Object.fromEntries((data.buildings || []).map((b) => [b.id, b.name]));
  } catch {
    return {};
  }
}
const names = buildingNames();

async function refresh() {
  let open = [];
  try {
    open = (await api("/api/v1/emergencies", { params: { open_only: true }, passive: true })).filter((e) => e.state === "active");
  } catch {
    return;
  }
  section.hidden = open.length === 0;
  const chosen = select.value;
  clear(select);
  for (const e of open) select.append(el("option", { value: e.id }, `${names[e.building] || e.building} — ${e.action}`));
  if (open.some((e) => e.id === chosen)) select.value = chosen;
  select.hidden = open.length < 2;
  document.getElementById("guest-pass-emergency-label").hidden = open.length < 2;
  if (select.value) await listPasses(select.value);
}

async function listPasses(emergency) {
  let passes = [];
  try {
    passes = await api(`/api/v1/emergencies/${emergency}/guest-passes`, { passive: true });
  } catch {
    passes = [];
  }
  clear(list);
  for (const p of passes) {
    const who = p.guest ? `${p.guest.name} (badge ${p.guest.badge}, ${p.guest.shown_as})` : "not used yet";
    const item = el("li", { class: "guest-pass-item" }, `${words(p.state)} · ${who} · made ${fmtTime(p.created_at)}`);
    if (p.state === "open" || p.state === "redeemed") {
      const end = el("button", { type: "button", class: "button secondary" }, "End this pass");
      end.addEventListener("click", async () => {
        try {
          await api(`/api/v1/guest-passes/${p.id}/end`, { method: "POST" });
          await listPasses(emergency);
        } catch (err) {
          showError(error, err);
        }
      });
      item.append(" ", end);
    }
    list.append(item);
  }
}

give.addEventListener("click", async () => {
  error.hidden = true;
  give.disabled = true;
  try {
    const body = phone.value.trim() ? { send_to: phone.value.trim() } : {};
    const p = await api(`/api/v1/emergencies/${select.value}/guest-passes`, { method: "POST", json: body });
    document.getElementById("guest-pass-pin").textContent = p.pin.replace(/(\d{3})(\d{3})/, "$1 $2");
    const link = document.getElementById("guest-pass-link");
    link.textContent = p.link;
    link.href = p.link;
    document.getElementById("guest-pass-note").textContent =
      `${p.instructions}${p.sent_to ? ` The link is being texted to ${p.sent_to}.` : ""} Expires ${fmtTime(p.expires_at)} if unused.`;
    result.hidden = false;
    await listPasses(select.value);
  } catch (err) {
    showError(error, err);
  } finally {
    give.disabled = false;
  }
});

select.addEventListener("change", () => listPasses(select.value));
refresh();
setInterval(refresh, 5000);
