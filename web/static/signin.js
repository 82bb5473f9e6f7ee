import { CSRF } from "/static/common.js";

const form = document.getElementById("signin-form");
const error = document.getElementById("signin-error");
document.body.dataset.page = "signin";
// An agency's own sign-in first when the district set one up (one tap in a patrol car).
(document.querySelector(".provider-button") || document.getElementById("username")).focus();

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const data = new FormData(form);
  const payload = { username: String(data.get("username") || "").trim(), password: String(data.get("password") || "") };
  const code = String(data.get("totp") || "").replace(/\s+/g, "");
  if (code) payload.totp = code;
  if (!payload.username || !payload.password) {
    error.textContent = "Enter your username and password.";
    error.hidden = false;
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const res = await fetch("/api/v1/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", ...CSRF },
      body: JSON.stringify(payload),
      credentials: "same-origin",
    });
    if (res.ok) {
      location.assign(form.dataset.next || "/");
      return;
    }
    const body = await res.json().catch(() => ({}));
    error.textContent = res.status === 401
      ? "Wrong username, password or code. Check the code is the current one from your authenticator app."
      : body.detail || `Sign-in failed (${res.status}).`;
    error.hidden = false;
    document.getElementById("password").value = "";
    document.getElementById("totp").value = "";
    document.getElementById("password").focus();
  } catch (err) {
    error.textContent = "Cannot reach the Sightline server. Check the network and try again.";
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
});
