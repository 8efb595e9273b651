// Drives Debian's chromium through the gateway for tests/gateway/browser.rs
// and prints one JSON report on stdout (diagnostics go to stderr).
//
// Sign in on the simulator's login page, run the dashboard (fetch of
// /api/v1/usersession, WebSocket to /dashboardhub), screenshot it, then let
// pages of two other origins try to use the session. Every response the
// pages receive (headers, bodies, WebSocket handshakes and frames) is
// scanned for the app token. The token itself is never printed.
//
// Environment (all set by the Rust test):
//   E2E_GATEWAY_URL     https://localhost:PORT, the gateway
//   E2E_CROSS_SITE_URL  http://127.0.0.1:PORT, the simulator itself (another site)
//   E2E_SAME_SITE_URL   https://localhost:PORT2, another TLS server (same site, other origin)
//   E2E_TOKEN           the app token the gateway injects
//   E2E_CERTS           PEM certificates to trust, separated by the path delimiter
//   E2E_SCREENSHOT      where the dashboard's PNG goes
//   E2E_CHROMIUM        the browser (default /usr/bin/chromium)

import { createHash, X509Certificate } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { delimiter, dirname } from "node:path";
import { chromium } from "playwright-core";

const STEP_MS = 15_000;
const TOTAL_MS = 90_000;

function need(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`e2e: ${name} is not set`);
    process.exit(2);
  }
  return value;
}

const GATEWAY = need("E2E_GATEWAY_URL");
const CROSS_SITE = need("E2E_CROSS_SITE_URL");
const SAME_SITE = need("E2E_SAME_SITE_URL");
const TOKEN = need("E2E_TOKEN");
const CERTS = need("E2E_CERTS").split(delimiter);
const SCREENSHOT = need("E2E_SCREENSHOT");
const CHROMIUM = process.env.E2E_CHROMIUM || "/usr/bin/chromium";

// The whole token, and its signature alone (a JWT's unique part), in case a
// layer split or re-encoded it.
const NEEDLES = [TOKEN, TOKEN.split(".").pop()].filter((n) => n.length >= 16);
const hasToken = (text) => NEEDLES.some((n) => text.includes(n));
const redact = (text) => NEEDLES.reduce((t, n) => t.split(n).join("<TOKEN>"), String(text));
const log = (...parts) => console.error("e2e:", ...parts.map(redact));

const report = {
  dashboard: {},
  foreign: [],
  api_requests: [],
  scanned: { responses: 0, bodies: 0, ws_handshakes: 0, ws_frames: 0 },
  unread_bodies: [],
  token_leaks: [],
  page_errors: [],
  errors: [],
};
const pending = [];

function leak(url, where) {
  report.token_leaks.push({ url, where });
  log(`TOKEN FOUND in ${where} of ${url}`);
}

// Chromium trusts exactly these certificates (by SPKI hash), nothing else.
function spkiHash(path) {
  const cert = new X509Certificate(readFileSync(path));
  const spki = cert.publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(spki).digest("base64");
}

// Everything a page receives is scanned, through the DevTools protocol:
// every HTTP response (all headers, Set-Cookie included, and the body) is
// paused on its way in, before CORS decides what the script may read, so
// responses hidden from the page or navigated away from are scanned too
// (page.on("response") misses both); then WebSocket handshakes and frames.
// The API requests are logged with their status and whether the browser
// attached the session cookie.
async function watch(context, page, label) {
  page.on("pageerror", (err) => report.page_errors.push(`${label}: ${redact(err.message)}`));
  page.on("console", (msg) => log(`[${label} console.${msg.type()}]`, msg.text()));
  const cdp = await context.newCDPSession(page);
  const urls = new Map();
  // The API requests' facts arrive on separate events whose order is not
  // guaranteed: a loaded CI run delivered a response's status (on
  // Fetch.requestPaused) before the request's own
  // Network.requestWillBeSent. So each fact is kept by request id, the
  // request is noted by whichever of the two names it first, and the facts
  // are joined when the page closes.
  const api = new Map();
  const statuses = new Map();
  // Whether the browser attached a Cookie field: from the paused response's
  // request when there is one, else from the request's ExtraInfo (a
  // request aborted before its response is never paused).
  const pausedCookies = new Map();
  const cookies = new Map();
  const failures = new Map();
  const noteApi = (id, href) => {
    const url = new URL(href);
    if (url.pathname === "/api/v1/usersession" && !api.has(id)) {
      api.set(id, { page: label, url: href, via: url.searchParams.get("via") });
    }
  };
  cdp.on("Network.requestWillBeSent", (e) => {
    urls.set(e.requestId, e.request.url);
    noteApi(e.requestId, e.request.url);
  });
  cdp.on("Network.requestWillBeSentExtraInfo", (e) => {
    cookies.set(e.requestId, Object.keys(e.headers).some((n) => n.toLowerCase() === "cookie"));
  });
  cdp.on("Network.responseReceivedExtraInfo", (e) => {
    if (hasToken(e.headersText || JSON.stringify(e.headers))) {
      leak(urls.get(e.requestId) || "?", "raw response head");
    }
  });
  cdp.on("Network.loadingFailed", (e) => {
    failures.set(e.requestId, e.corsErrorStatus ? `CORS ${e.corsErrorStatus.corsError}` : e.errorText);
  });
  cdp.on("Network.webSocketHandshakeResponseReceived", (e) => {
    report.scanned.ws_handshakes += 1;
    report.dashboard.ws_handshake_status = e.response.status;
    if (hasToken(e.response.headersText || JSON.stringify(e.response.headers))) {
      leak(urls.get(e.requestId) || "WebSocket", "WebSocket handshake");
    }
  });
  cdp.on("Network.webSocketFrameReceived", (e) => {
    report.scanned.ws_frames += 1;
    if (hasToken(e.response.payloadData)) leak(urls.get(e.requestId) || "WebSocket", "WebSocket frame");
  });
  cdp.on("Fetch.requestPaused", (e) => {
    pending.push(
      (async () => {
        const url = e.request.url;
        try {
          // Every response is paused here, so the status is the one the
          // gateway sent, there even when the page never sees the
          // response (CORS, navigation).
          if (e.networkId) {
            noteApi(e.networkId, url);
            if (e.responseStatusCode) statuses.set(e.networkId, e.responseStatusCode);
            const names = Object.keys(e.request.headers);
            pausedCookies.set(e.networkId, names.some((n) => n.toLowerCase() === "cookie"));
          }
          report.scanned.responses += 1;
          for (const { name, value } of e.responseHeaders || []) {
            if (hasToken(`${name}: ${value}`)) leak(url, `header ${name}`);
          }
          if (e.responseStatusCode >= 300 && e.responseStatusCode < 400) return;
          const { body, base64Encoded } = await cdp.send("Fetch.getResponseBody", {
            requestId: e.requestId,
          });
          const text = base64Encoded ? Buffer.from(body, "base64").toString("latin1") : body;
          report.scanned.bodies += 1;
          if (hasToken(text)) leak(url, "body");
        } catch (err) {
          report.unread_bodies.push(`${url}: ${redact(err.message)}`);
        } finally {
          await cdp.send("Fetch.continueRequest", { requestId: e.requestId }).catch((err) => {
            report.errors.push(`continue ${url}: ${redact(err.message)}`);
          });
        }
      })(),
    );
  });
  await cdp.send("Network.enable");
  await cdp.send("Fetch.enable", { patterns: [{ urlPattern: "*", requestStage: "Response" }] });
  // Read when the page closes, after every event for it has arrived.
  return () => {
    for (const [id, r] of api) {
      report.api_requests.push({
        ...r,
        status: statuses.get(id) ?? null,
        cookie_sent: pausedCookies.get(id) ?? cookies.get(id) ?? null,
        failure: failures.get(id) ?? null,
      });
    }
  };
}

// What a page's own script can see beyond responses: its DOM and cookies.
async function pageView(page) {
  return page.evaluate(() => ({
    html: document.documentElement.outerHTML,
    cookie: document.cookie,
  }));
}

async function untilSettled(page, ids) {
  try {
    await page.waitForFunction(
      (ids) => ids.every((id) => document.getElementById(id).textContent !== "pending"),
      ids,
      { timeout: STEP_MS },
    );
  } catch (err) {
    report.errors.push(`${page.url()}: ${ids.join(", ")} still pending: ${redact(err.message)}`);
  }
  const text = {};
  for (const id of ids) text[id] = await page.textContent(`#${id}`);
  return text;
}

async function dashboard(context) {
  const page = await context.newPage();
  const done = await watch(context, page, "dashboard");
  await page.goto(`${GATEWAY}/login`, { timeout: STEP_MS });
  await page.fill("#username", "admin");
  await page.fill("#password", "admin");
  await Promise.all([
    page.waitForURL(`${GATEWAY}/dashboard`, { timeout: STEP_MS }),
    page.click("#submit"),
  ]);
  const status = await untilSettled(page, ["usersession-status", "ws-status"]);
  const view = await pageView(page);
  Object.assign(report.dashboard, {
    url: page.url(),
    usersession_status: status["usersession-status"],
    ws_status: status["ws-status"],
    ws_echo: await page.textContent("#ws-echo"),
    sessions: await page.locator("#sessions li").allTextContents(),
    script_sees_cookie: view.cookie !== "",
    token_in_dom: hasToken(view.html),
  });
  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  report.dashboard.screenshot = SCREENSHOT;
  await Promise.allSettled(pending);
  await page.close();
  done();
}

async function foreign(context, name, origin) {
  const page = await context.newPage();
  const done = await watch(context, page, name);
  const url = `${origin}/sim/other-origin?gateway=${encodeURIComponent(GATEWAY)}`;
  await page.goto(url, { timeout: STEP_MS });
  const status = await untilSettled(page, ["cors-status", "no-cors-status"]);
  const view = await pageView(page);
  report.foreign.push({
    name,
    origin: new URL(page.url()).origin,
    cors_status: status["cors-status"],
    no_cors_status: status["no-cors-status"],
    token_in_dom: hasToken(view.html),
  });
  await Promise.allSettled(pending);
  await page.close();
  done();
}

async function main() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: STEP_MS,
    // A fresh temporary profile is Playwright's default (--user-data-dir).
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--ignore-certificate-errors-spki-list=${CERTS.map(spkiHash).join(",")}`,
    ],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 900, height: 600 } });
    context.setDefaultTimeout(STEP_MS);
    try {
      await dashboard(context);
    } catch (err) {
      report.errors.push(`dashboard: ${redact(err.message)}`);
    }
    for (const [name, origin] of [
      ["cross-site", CROSS_SITE],
      ["same-site", SAME_SITE],
    ]) {
      try {
        await foreign(context, name, origin);
      } catch (err) {
        report.errors.push(`${name}: ${redact(err.message)}`);
      }
    }
    await Promise.allSettled(pending);
    await context.close();
  } finally {
    await browser.close();
  }
  console.log(redact(JSON.stringify(report)));
}

const deadline = setTimeout(() => {
  console.error(`e2e: gave up after ${TOTAL_MS} ms`);
  process.exit(3);
}, TOTAL_MS);
main()
  .catch((err) => {
    console.error("e2e:", redact(err.stack || err));
    process.exitCode = 1;
  })
  .finally(() => clearTimeout(deadline));
