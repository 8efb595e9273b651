//! The HTML pages the simulator serves: a home page, a login form, a
//! dashboard standing in for a PSU app, and a page playing a foreign site.
//!
//! Tiny on purpose: inline script, no external resources, every value put in
//! the DOM with `textContent`. The ids are what tests/browser/e2e.mjs reads;
//! each `*-status` line starts `pending`, then `ok: ...` or `failed: ...`.

/// `GET /`: what the simulator is and where to go.
pub const HOME: &str = r#"<!doctype html>
<meta charset="utf-8"><title>PSU simulator</title>
<h1>PowerShell Universal simulator</h1>
<p><a href="/login">Sign in</a> (admin/admin or reader/reader by default), then
<a href="/dashboard">the dashboard</a>.</p>
<ul>
<li>POST /api/v1/signin, POST /api/v1/signout</li>
<li>GET /api/v1/accessible (session cookie or app token)</li>
<li>GET /api/v1/usersession (app token with an allowed role)</li>
<li>GET /dashboardhub (WebSocket echo)</li>
<li>GET /sim/echo, GET /sim/status/{code}?delay_ms=N</li>
<li>GET /sim/other-origin?gateway=URL (a foreign page reading URL's API)</li>
</ul>
"#;

/// `GET /login`: posts JSON to `/api/v1/signin` as PSU's own login page
/// does, then opens the dashboard.
pub const LOGIN: &str = r#"<!doctype html>
<meta charset="utf-8"><title>PSU simulator - sign in</title>
<form id="signin">
<input id="username" name="username" placeholder="username" autocomplete="username">
<input id="password" name="password" type="password" placeholder="password" autocomplete="current-password">
<button id="submit">Sign in</button>
</form>
<p id="signin-status"></p>
<script>
const form = document.getElementById("signin");
form.onsubmit = async (e) => {
  e.preventDefault();
  const status = document.getElementById("signin-status");
  try {
    const r = await fetch("/api/v1/signin", {method: "POST", headers: {"content-type": "application/json"},
      body: JSON.stringify({username: form.username.value, password: form.password.value})});
    if (r.ok) { location = "/dashboard"; } else { status.textContent = "failed: sign-in answered " + r.status; }
  } catch (err) { status.textContent = "failed: " + err; }
};
</script>
"#;

/// `GET /dashboard`: what a PSU app does with the user's session alone:
/// reads the Management API and talks to its hub.
pub const DASHBOARD: &str = r#"<!doctype html>
<meta charset="utf-8"><title>PSU simulator - dashboard</title>
<style>body{font-family:sans-serif;margin:2em}.ok{color:#060}.failed{color:#b00}</style>
<h1>Dashboard</h1>
<h2>User sessions</h2>
<p>GET /api/v1/usersession: <b id="usersession-status">pending</b></p>
<ul id="sessions"></ul>
<h2>Hub</h2>
<p>WebSocket /dashboardhub: <b id="ws-status">pending</b></p>
<p>echo: <code id="ws-echo"></code></p>
<script>
const show = (id, text) => {
  const el = document.getElementById(id);
  el.textContent = text;
  el.className = text.split(":")[0];
};
(async () => {
  try {
    const r = await fetch("/api/v1/usersession", {credentials: "same-origin"});
    if (!r.ok) { show("usersession-status", "failed: HTTP " + r.status); return; }
    const sessions = await r.json();
    const list = document.getElementById("sessions");
    for (const s of sessions) {
      const li = document.createElement("li");
      li.textContent = s.identity + " (" + s.source + ", since " + s.timestamp + ")";
      list.append(li);
    }
    show("usersession-status", "ok: HTTP " + r.status + ", " + sessions.length + " session(s)");
  } catch (err) { show("usersession-status", "failed: " + err); }
})();
const sent = "hello from the dashboard";
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/dashboardhub");
ws.onopen = () => ws.send(sent);
ws.onmessage = (e) => {
  document.getElementById("ws-echo").textContent = e.data;
  show("ws-status", e.data === sent ? "ok: echoed" : "failed: unexpected echo");
  ws.close();
};
ws.onclose = (e) => {
  if (document.getElementById("ws-status").textContent === "pending") show("ws-status", "failed: closed (" + e.code + ")");
};
</script>
"#;

/// `GET /sim/other-origin?gateway=URL`: a page of another origin that tries
/// to use the visitor's session at URL: a CORS read (it must not see the
/// body) and a no-cors request (opaque; it must not reach PSU either).
pub const OTHER_ORIGIN: &str = r#"<!doctype html>
<meta charset="utf-8"><title>another site</title>
<h1>Another origin</h1>
<p>read GET /api/v1/usersession with the visitor's cookie: <b id="cors-status">pending</b></p>
<p>send it without reading (no-cors): <b id="no-cors-status">pending</b></p>
<script>
const show = (id, text) => { document.getElementById(id).textContent = text; };
const gateway = new URLSearchParams(location.search).get("gateway") || "";
const api = (via) => new URL("/api/v1/usersession?via=" + via, gateway).href;
(async () => {
  try {
    const r = await fetch(api("cors"), {credentials: "include"});
    const body = await r.text();
    show("cors-status", "read: HTTP " + r.status + ", " + body.length + " bytes");
  } catch (err) { show("cors-status", "blocked: " + err.name); }
  try {
    const r = await fetch(api("no-cors"), {credentials: "include", mode: "no-cors"});
    show("no-cors-status", "sent: " + r.type);
  } catch (err) { show("no-cors-status", "blocked: " + err.name); }
})();
</script>
"#;
