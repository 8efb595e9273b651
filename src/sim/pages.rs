//! The two HTML pages the simulator serves: a home page and a login form.

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
  if (r.ok) { location = "/"; } else { m.textContent = "Sign-in failed (" + r.status + ")"; }
};
</script>
"#;
