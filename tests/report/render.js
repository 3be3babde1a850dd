// Opens an HTML report of `plan report --format html` in headless Chromium (Debian's, through
// playwright-core) from file:// and prints what a reader would see of it, as JSON on stdout:
//   node render.js NODE_MODULES_DIR REPORT.html
// {"bars": {STEP: count of rect.bar}, "rollbacks": {STEP: count of rect.rollback},
//  "windows": [{name, width, height, over}], "bar_boxes": [{step, attempt, x, width}],
//  "zero_width": [shapes drawn with no width], "requests": [URLs other than the report's own],
//  "console": [errors], "tables": {steps, windows, compare: row counts}, "title": ...}
// PLAN_REPORT_SCREENSHOT=PATH also saves a PNG of the whole page. Exits 2 when the browser cannot
// start (a missing chromium or playwright-core fails the test, never skips it).
'use strict';
const path = require('path');
const { pathToFileURL } = require('url');

async function main() {
  const modules = path.resolve(process.argv[2] || '');
  const file = path.resolve(process.argv[3] || '');
  let browser;
  try {
    const { chromium } = require(path.join(modules, 'playwright-core'));
    const args = process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [];
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args });
  } catch (e) {
    console.log('cannot start chromium through ' + modules + '/playwright-core: ' + e.message);
    return 2;
  }
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const own = pathToFileURL(file).href;
    const requests = [];
    const errors = [];
    // Every request the page makes but its own load is a network access a report must not make.
    page.on('request', (r) => {
      if (r.url() !== own) requests.push(r.url());
    });
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(own, { waitUntil: 'load' });
    const seen = await page.evaluate(() => {
      const count = (selector, attr) => {
        const out = {};
        for (const el of document.querySelectorAll(selector)) {
          const k = el.getAttribute(attr);
          out[k] = (out[k] || 0) + 1;
        }
        return out;
      };
      const zero = [];
      const boxes = [];
      for (const el of document.querySelectorAll('rect.bar, rect.rollback, rect.window')) {
        const b = el.getBoundingClientRect();
        if (!(b.width > 0) || !(b.height > 0)) zero.push(el.outerHTML.slice(0, 120));
        if (el.classList.contains('bar'))
          boxes.push({ step: el.dataset.step, attempt: Number(el.dataset.attempt), x: b.x, width: b.width });
      }
      const windows = [...document.querySelectorAll('rect.window')].map((el) => {
        const b = el.getBoundingClientRect();
        return { name: el.dataset.window, width: b.width, height: b.height, over: el.classList.contains('over') };
      });
      const rows = (cls) => Math.max(0, document.querySelectorAll('table.' + cls + ' tr').length - 1);
      return {
        title: document.title,
        bars: count('rect.bar', 'data-step'),
        rollbacks: count('rect.rollback', 'data-step'),
        windows,
        bar_boxes: boxes,
        zero_width: zero,
        ticks: [...document.querySelectorAll('text.tick')].map((t) => t.textContent),
        tooltips: document.querySelectorAll('svg title').length,
        tables: { steps: rows('steps'), windows: rows('windows'), compare: rows('compare') },
        text: document.body.innerText,
      };
    });
    seen.requests = requests;
    seen.console = errors;
    if (process.env.PLAN_REPORT_SCREENSHOT)
      await page.screenshot({ path: process.env.PLAN_REPORT_SCREENSHOT, fullPage: true });
    console.log(JSON.stringify(seen));
    return 0;
  } finally {
    await browser.close();
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.log('error: ' + (e && e.stack ? e.stack : e));
    process.exit(1);
  }
);
