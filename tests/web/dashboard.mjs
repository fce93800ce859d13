// dashboard.mjs - the dashboard in a real browser: headless Chromium (the
// system's, no download) driven by puppeteer-core.  Run by
// test_dashboard.py, which set up the nodes and passes what to do in the
// environment variable DASH_TEST (JSON); this prints one JSON line of
// findings ("RESULT {...}") that the Python side asserts on, and exits 1 on
// a step that could not be done.
import puppeteer from 'puppeteer-core';

const T = JSON.parse(process.env.DASH_TEST);
const out = { requests: [], foreign: [], leaks: [], steps: {} };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function leakCheck(req) {
  const body = req.postData() || '';
  const url = req.url();
  for (const [what, s] of Object.entries(T.secrets)) {
    if (s && (body.includes(s) || url.includes(encodeURIComponent(s)) || url.includes(s)))
      out.leaks.push(what + ' in ' + req.method() + ' ' + url);
  }
}

async function text(page, sel) {
  return page.$eval(sel, (e) => e.textContent);
}

async function waitText(page, sel, re, ms = 15000) {
  const end = Date.now() + ms;
  let last = '';
  while (Date.now() < end) {
    last = await page.$eval(sel, (e) => e.textContent).catch(() => '');
    if (re.test(last)) return last;
    await sleep(100);
  }
  throw new Error('waiting for ' + sel + ' to match ' + re + '; last: ' + last);
}

// Click sel as a person would, once it is on screen: a page that is still
// being drawn (slow under the sanitizers) can replace the element between
// finding and clicking it, which puppeteer reports as "not clickable".
async function clickReady(page, sel, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      await page.waitForSelector(sel, { visible: true, timeout: Math.max(1, end - Date.now()) });
      await page.click(sel);
      return;
    } catch (e) {
      if (Date.now() >= end || !/not clickable|not an Element|detached/.test(e.message)) throw e;
      await sleep(100);
    }
  }
}

async function signIn(page, pass, url = T.url, keyfile = T.keyfile) {
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('#signin:not([hidden])');
  const input = await page.$('#keyfile');
  await input.uploadFile(keyfile);
  await page.$eval('#passphrase', (e) => { e.value = ''; });
  await page.type('#passphrase', pass);
  await clickReady(page, '#signin-button');
  return waitText(page, '#status', /Signed in|failed/);
}

// The roster runs (test_dash_roster.py): an admin the recipient does not
// know yet approves (refused before sealing, the page names the admin);
// later, the recipient knowing the admin, a refused delivery is re-sent
// from the bundle page and the same approval is accepted.
async function rosterSteps(page) {
  const R = T.roster;
  out.steps.signin = await signIn(page, T.passphrase);
  if (R.resend) {
    await page.evaluate((id) => { location.hash = '#/bundle/' + id; }, R.resend);
    await page.waitForSelector('#decide[data-bundle="' + R.resend + '"]');
    out.steps.deliveries_before = await text(page, '#deliveries');
    const sel = 'button.resend[data-peer="' + R.peer + '"]';
    out.steps.resend_buttons = await page.$$eval('button.resend', (b) => b.length);
    if (T.screenshot_resend) {
      await page.$eval('#deliveries', (e) => e.scrollIntoView({ block: 'center' }));
      await page.screenshot({ path: T.screenshot_resend });
    }
    await clickReady(page, sel);
    out.steps.resend = await waitText(page, '#resend-result', /re-sending|Refused/);
    out.steps.deliveries_after = await text(page, '#deliveries');
  }
  await page.evaluate((id) => { location.hash = '#/bundle/' + id; }, R.approve);
  await page.waitForSelector('#decide[data-bundle="' + R.approve + '"] #approve');
  await clickReady(page, '#approve');
  out.steps.approve = await waitText(page, '#decision-result', /APPROVED|Refused|recorded/);
  out.steps.approve_class = await page.$eval('#decision-result', (e) => e.className);
  if (T.screenshot) {
    await page.$eval('#decide', (e) => e.scrollIntoView({ block: 'center' }));
    await page.screenshot({ path: T.screenshot });
  }
}

// The Inbound page's detection on a local image (test_dash_roster.py).
async function detectSteps(page) {
  out.steps.signin = await signIn(page, T.passphrase);
  await page.evaluate((id) => { location.hash = '#/inbound/' + id; }, T.detect.bundle);
  await page.waitForSelector('#detect-file');
  await page.click('#detect-run');
  out.steps.detect_empty = await waitText(page, '#detect-result', /Choose/);
  const input = await page.$('#detect-file');
  await input.uploadFile(T.detect.image);
  await page.click('#detect-run');
  out.steps.detect = await waitText(page, '#detect-result', /decision|Refused/, 60000);
  out.steps.detect_map = await page.$eval('#detect-canvas', (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const colours = new Set();
    for (let i = 0; i < d.length; i += 4 * 97) colours.add(d[i] + ',' + d[i + 1] + ',' + d[i + 2]);
    return { w: c.width, h: c.height, colours: colours.size };
  }).catch(() => null);
  if (T.screenshot) {
    await page.$eval('#detect-head', (e) => e.scrollIntoView({ block: 'start' }));
    await sleep(300);
    await page.screenshot({ path: T.screenshot });
  }
}

// The Node page's curves: which job, and what each chart drew.
async function curvesSeen(page) {
  await page.waitForSelector('#curves');
  return page.$eval('#curves', (c) => {
    const chart = (id) => {
      const svg = c.querySelector('#' + id);
      if (!svg) return null;
      const pts = svg.querySelector('polyline').getAttribute('points').trim().split(/\s+/)
        .map((p) => p.split(',').map(Number));
      return { title: svg.querySelector('.chart-title').textContent, n: pts.length,
        finite: pts.every((p) => p.length === 2 && p.every(Number.isFinite)),
        w: svg.getBoundingClientRect().width };
    };
    return { job: c.dataset.job, loss: chart('loss-chart'), roc: chart('roc-chart'),
      text: c.textContent };
  });
}

async function main() {
  const browser = await puppeteer.launch({
    executablePath: T.chromium, headless: true,
    // node-b's dashboard is served with its certificate from the test CA
    acceptInsecureCerts: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-extensions',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-default-apps'],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await page.setRequestInterception(true);
    page.on('request', (req) => {
      const u = req.url();
      out.requests.push(req.method() + ' ' + u);
      leakCheck(req);
      if (!T.origins.some((o) => u.startsWith(o)) && !u.startsWith('data:')) {
        out.foreign.push(u);
        req.abort();
      } else req.continue();
    });

    if (T.detect) {
      await detectSteps(page);
      out.errors = errors;
      return;
    }

    if (T.roster) {
      await rosterSteps(page);
      out.errors = errors;
      return;
    }

    if (T.over) {
      // a second run: the bundle over the privacy budget shows its epsilon
      // and the ledger, and approve is disabled
      out.steps.signin = await signIn(page, T.passphrase);
      await page.evaluate((id) => { location.hash = '#/bundle/' + id; }, T.over);
      await page.waitForSelector('#decide[data-bundle="' + T.over + '"]');
      out.steps.over_text = await text(page, '#decide');
      out.steps.over_disabled = await page.$eval('#approve', (b) => b.disabled);
      out.steps.over_dp = await text(page, '#dp');
      if (T.screenshot) await page.screenshot({ path: T.screenshot, fullPage: true });
      out.errors = errors;
      return;
    }

    // a wrong passphrase: refused in the browser, no sign-in attempt sent
    const before = out.requests.length;
    out.steps.wrong_pass = await signIn(page, T.passphrase + 'x');
    out.steps.wrong_pass_login_posts = out.requests.slice(before)
      .filter((r) => r.startsWith('POST ') && r.includes('/api/login')).length;

    // the real sign-in, then the pending bundle
    const t0 = Date.now();
    out.steps.signin = await signIn(page, T.passphrase);
    out.steps.signin_ms = Date.now() - t0;
    const t1 = Date.now();
    await page.evaluate((id) => { location.hash = '#/bundle/' + id; }, T.approve);
    await page.waitForSelector('#images canvas');
    out.steps.bundle_page_ms = Date.now() - t1;
    out.steps.sha = await text(page, '#sha');
    out.steps.match = await text(page, '#match');
    out.steps.recipients = await text(page, '#recipients');
    out.steps.canvases = await page.$$eval('#images canvas', (cs) => cs.map((c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let lo = 255, hi = 0;
      for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]); }
      return { w: c.width, h: c.height, lo, hi };
    }));
    out.steps.bars = await page.$$eval('#images .bar', (b) => b.length);
    out.steps.privacy_rows = await page.$$eval('#privacy-table tr', (r) => r.length);
    out.steps.hyper = await text(page, '#hyper');
    if (T.screenshot) await page.screenshot({ path: T.screenshot, fullPage: true });
    await clickReady(page, '#approve');
    out.steps.approve = await waitText(page, '#decision-result', /APPROVED|Refused|recorded/);

    // the second bundle: rejected with a reason that is markup
    await page.evaluate((id) => { location.hash = '#/bundle/' + id; }, T.reject);
    await page.waitForSelector('#decide[data-bundle="' + T.reject + '"] #reject');
    await page.type('#reason', T.reason);
    await clickReady(page, '#reject');
    out.steps.reject = await waitText(page, '#decision-result', /REJECTED|Refused/);

    // the audit page shows the reason as text
    await page.evaluate(() => { location.hash = '#/audit'; });
    await page.waitForSelector('#audit');
    await waitText(page, '#chain', /Hash chain/);
    out.steps.chain = await text(page, '#chain');
    out.steps.audit_has_reason = (await text(page, '#audit')).includes(T.reason);
    out.steps.audit_imgs = await page.$$eval('#audit img', (i) => i.length);
    out.steps.xss = await page.evaluate(() => window.__xss === 1);

    // the bundle the policy blocks: shown as blocked, approve disabled
    await page.evaluate((id) => { location.hash = '#/bundle/' + id; }, T.blocked);
    await page.waitForSelector('#decide[data-bundle="' + T.blocked + '"]');
    out.steps.blocked_text = await text(page, '#decide');
    out.steps.blocked_disabled = await page.$eval('#approve', (b) => b.disabled);

    // the node page: the long job is running, its progress refreshes, and
    // it is canceled from the page
    await page.evaluate(() => { location.hash = '#/node'; });
    await page.waitForSelector('#jobs');
    await waitText(page, '#jobs', /running/, 60000);
    out.steps.node_jobs = await page.$$eval('#jobs tr', (r) => r.length);
    out.steps.node_status = await page.$$eval('#node-status tr:nth-child(2) td',
      (td) => td.map((x) => x.textContent));
    if (T.screenshot_node) await page.screenshot({ path: T.screenshot_node, fullPage: true });
    const before_bg = out.requests.length;
    await sleep(2500);
    out.steps.refreshes = out.requests.slice(before_bg).filter((r) => r.includes('/api/v1/jobs'))
      .length;
    await clickReady(page, '#jobs button.cancel-button');
    out.steps.cancel = await waitText(page, '#jobs', /canceled/, 30000);
    // the curves of finished jobs: the latest by default, another on request
    out.steps.curves = await curvesSeen(page);
    const other = await page.$$eval('button.curves-button', (b) => b.map((x) => x.dataset.job));
    out.steps.curves_buttons = other.length;
    const pick = other.find((j) => j !== out.steps.curves.job);
    await clickReady(page, 'button.curves-button[data-job="' + pick + '"]');
    await page.waitForSelector('#curves[data-job="' + pick + '"]');
    out.steps.curves_other = await curvesSeen(page);
    if (T.screenshot_curves) {
      await page.$eval('#curves', (e) => e.scrollIntoView({ block: 'center' }));
      await page.screenshot({ path: T.screenshot_curves });
    }
    await page.evaluate(() => { location.hash = '#/audit'; });
    await page.waitForSelector('#audit');
    if (T.screenshot_audit) await page.screenshot({ path: T.screenshot_audit, fullPage: false });
    // the receiving node's dashboard: the bundle approved above, decoded and evaluated
    await signIn(page, T.passphrase, T.inbound_url, T.inbound_keyfile);
    // the import (rebuild, evaluation) may still be running: look again
    for (let i = 0; i < 100; i++) {
      await page.evaluate((n) => { location.hash = '#/inbound?' + n; }, i);
      await page.evaluate(() => { location.hash = '#/inbound'; });
      await page.waitForSelector('#inbound').catch(() => {});
      out.steps.inbound_list = await text(page, '#inbound').catch(() => '');
      if (out.steps.inbound_list.includes(T.approve.slice(0, 12)) &&
          out.steps.inbound_list.includes('available')) break;
      await sleep(300);
    }
    await page.evaluate((id) => { location.hash = '#/inbound/' + id; }, T.approve);
    await page.waitForSelector('#images canvas');
    out.steps.inbound_canvases = await page.$$eval('#images canvas', (cs) => cs.length);
    out.steps.inbound_eval = await text(page, '#evaluation');
    out.steps.inbound_head = await text(page, '#inbound-head');
    if (T.screenshot_inbound) await page.screenshot({ path: T.screenshot_inbound, fullPage: true });
    out.errors = errors;
  } finally {
    await browser.close();
  }
}

main().then(() => {
  console.log('RESULT ' + JSON.stringify(out));
}, (e) => {
  console.log('RESULT ' + JSON.stringify(out));
  console.error('dashboard.mjs: ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});
