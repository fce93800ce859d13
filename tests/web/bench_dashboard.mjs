// bench_dashboard.mjs - how long the bundle page takes to render in headless
// Chromium: from the navigation to the bundle until every image is drawn
// (the statement downloaded, hashed and decoded, the page built), N times.
// Run by bench_dashboard.py; prints one line "BENCH {...}".
import puppeteer from 'puppeteer-core';

const T = JSON.parse(process.env.DASH_BENCH);
const browser = await puppeteer.launch({ executablePath: T.chromium, headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run'] });
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  await page.goto(T.url, { waitUntil: 'load' });
  await page.waitForSelector('#signin:not([hidden])');
  await (await page.$('#keyfile')).uploadFile(T.keyfile);
  await page.type('#passphrase', T.passphrase);
  await page.click('#signin-button');
  await page.waitForFunction(() => /Signed in/.test(document.getElementById('status').textContent));
  const times = [];
  for (let i = 0; i < T.runs; i++) {
    await page.evaluate(() => { location.hash = '#/outbound'; });
    await page.waitForSelector('#bundles');
    const t0 = Date.now();
    await page.evaluate((id) => { location.hash = '#/bundle/' + id; }, T.bundle);
    await page.waitForFunction((n) => document.querySelectorAll('#images canvas').length === n,
      {}, T.images);
    times.push(Date.now() - t0);
  }
  const size = await page.$eval('#images canvas', (c) => c.width + 'x' + c.height);
  if (T.screenshot) await page.screenshot({ path: T.screenshot, fullPage: true });
  console.log('BENCH ' + JSON.stringify({ times, size }));
} finally {
  await browser.close();
}
