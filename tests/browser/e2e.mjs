// Drives Debian's Chromium headless through the gateway: sign in on the
// login page, run the dashboard (fetch + WebSocket), then try to read the
// API from another origin. Prints one JSON line for tests/gateway/browser.rs.
import { chromium } from 'playwright-core';

const { GATEWAY_URL, SIM_URL, APP_TOKEN, SCREENSHOT, USER_DATA_DIR } = process.env;
const TIMEOUT = 20000;

const browser = await chromium.launchPersistentContext(USER_DATA_DIR, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  ignoreHTTPSErrors: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

// Every response any page receives is searched for the app token.
const leaks = [];
const scans = [];
let responses = 0;
browser.on('response', (response) => {
  scans.push((async () => {
    responses += 1;
    const headers = JSON.stringify(await response.allHeaders().catch(() => ({})));
    const body = await response.body().then((b) => b.toString('latin1')).catch(() => '');
    if (headers.includes(APP_TOKEN) || body.includes(APP_TOKEN)) leaks.push(response.url());
  })());
});

const text = (page, selector) => page.textContent(selector, { timeout: TIMEOUT });
const settled = (page, selector, pending) => page
  .waitForFunction(([s, p]) => !document.querySelector(s).textContent.startsWith(p), [selector, pending], { timeout: TIMEOUT })
  .catch(() => {});

const page = browser.pages()[0] ?? await browser.newPage();
await page.goto(`${GATEWAY_URL}/login`, { timeout: TIMEOUT });
await page.fill('input[name=username]', 'admin');
await page.fill('input[name=password]', 'admin');
await page.click('button');
await page.waitForURL('**/dashboard', { timeout: TIMEOUT });
await settled(page, '#usersession-status', 'loading');
await settled(page, '#ws-status', 'connecting');
const usersession = await text(page, '#usersession-status');
const ws = await text(page, '#ws-status');
await page.screenshot({ path: SCREENSHOT, fullPage: true });

const other = await browser.newPage();
await other.goto(`${SIM_URL}/sim/other-origin?gateway=${encodeURIComponent(GATEWAY_URL)}`, { timeout: TIMEOUT });
await settled(other, '#result', 'pending');
const crossOrigin = await text(other, '#result');

await Promise.all(scans);
console.log(JSON.stringify({ usersession, ws, crossOrigin, leaks, responses }));
await browser.close();
