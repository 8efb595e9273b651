//! The HTML pages the simulator serves: home, login, a dashboard app that
//! calls the API and a hub, and a page meant to be loaded from another origin.

/// `GET /`: what the simulator is and where to go.
pub const HOME: &str = r#"<!doctype html>
<meta charset="utf-8"><title>PSU simulator</title>
<h1>PowerShell Universal simulator</h1>
<p><a href="/login">Sign in</a> (admin/admin or reader/reader by default).</p>
<ul>
<li>POST /api/v1/signin, POST /api/v1/signout</li>
<li>GET /api/v1/accessible (session cookie or app token)</li>
<li>GET /api/v1/usersession (app token with an allowed role)</li>
<li>GET /sim/echo, GET /sim/status/{code}?delay_ms=N</li>
</ul>
"#;

/// `GET /login`: posts JSON to `/api/v1/signin` as PSU's own login page does.
pub const LOGIN: &str = r#"<!doctype html>
<meta charset="utf-8"><title>PSU simulator - sign in</title>
<form id="f">
<input name="username" placeholder="username" autocomplete="username">
<input name="password" type="password" placeholder="password" autocomplete="current-password">
<button>Sign in</button>
</form>
<p id="m"></p>
<script>
f.onsubmit = async (e) => {
  e.preventDefault();
  const r = await fetch("/api/v1/signin", {method: "POST", headers: {"content-type": "application/json"},
    body: JSON.stringify({username: f.username.value, password: f.password.value})});
  if (r.ok) { location = "/dashboard"; } else { m.textContent = "Sign-in failed (" + r.status + ")"; }
};
</script>
"#;

/// `GET /dashboard`: a PSU app stand-in. Reads the user sessions through the
/// gateway with the browser's own cookie, and talks to `/dashboardhub`.
pub const DASHBOARD: &str = r#"<!doctype html>
<meta charset="utf-8"><title>PSU app - dashboard</title>
<h1>Dashboard</h1>
<p>User sessions: <span id="usersession-status">loading</span></p>
<ul id="sessions"></ul>
<p>Hub: <span id="ws-status">connecting</span></p>
<script>
(async () => {
  const r = await fetch("/api/v1/usersession", {credentials: "same-origin"});
  if (!r.ok) { document.getElementById("usersession-status").textContent = "failed " + r.status; return; }
  const list = await r.json();
  for (const s of list) {
    const li = document.createElement("li");
    li.textContent = s.identity + " from " + s.remoteIpAddress + " (" + s.userAgent.slice(0, 40) + ")";
    document.getElementById("sessions").appendChild(li);
  }
  document.getElementById("usersession-status").textContent = "ok " + list.length;
})();
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/dashboardhub");
ws.onopen = () => ws.send("ping from the dashboard");
ws.onmessage = (e) => { document.getElementById("ws-status").textContent = "echo: " + e.data; };
ws.onerror = () => { document.getElementById("ws-status").textContent = "error"; };
</script>
"#;

/// `GET /sim/other-origin?gateway=URL`: served from the simulator's own
/// origin, tries to read the API through the gateway with the user's cookie.
pub const OTHER_ORIGIN: &str = r#"<!doctype html>
<meta charset="utf-8"><title>another origin</title>
<p>Cross-origin read: <span id="result">pending</span></p>
<script>
(async () => {
  const gateway = new URLSearchParams(location.search).get("gateway");
  try {
    const r = await fetch(gateway + "/api/v1/usersession", {credentials: "include"});
    document.getElementById("result").textContent = "read " + r.status + " " + (await r.text()).slice(0, 200);
  } catch (e) {
    document.getElementById("result").textContent = "blocked";
  }
})();
</script>
"#;
