// Drives Debian's chromium (through playwright-core) against a running cinema.
// usage: node cinema.mjs URL [--screenshot FILE] [--checks] [--views] [--opening] [--plain-shot FILE]
// Prints one JSON object on stdout with what it saw; the ExUnit test asserts on it.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { inflateSync } from 'node:zlib';

const args = process.argv.slice(2);
const url = args[0];
const shotIdx = args.indexOf('--screenshot');
const shot = shotIdx >= 0 ? args[shotIdx + 1] : null;
const checks = args.includes('--checks');
const tabIdx = args.indexOf('--tab');
const tab = tabIdx >= 0 ? args[tabIdx + 1] : 'inspector';
const exe = process.env.CHROMIUM || '/usr/bin/chromium';
const out = { ok: false, errors: [] };

// waitForFunction evaluates strings, which the page's CSP forbids: poll with evaluate instead
async function waitFor(page, fn, arg, timeout = 10000) {
  const until = Date.now() + timeout;
  for (;;) {
    if (await page.evaluate(fn, arg)) return;
    if (Date.now() > until) throw new Error('timed out waiting for ' + fn.toString().slice(0, 160));
    await new Promise((r) => setTimeout(r, 50));
  }
}

// the pixels of an 8-bit, non-interlaced RGB(A) PNG (what chromium writes): {width, height, rgb(x, y)}
function decodePng(buf) {
  let pos = 8, width = 0, height = 0, channels = 0;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos), type = buf.toString('ascii', pos + 4, pos + 8), data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0); height = data.readUInt32BE(4);
      if (data[8] !== 8 || data[12] !== 0 || ![2, 6].includes(data[9])) throw new Error('unsupported PNG');
      channels = data[9] === 6 ? 4 : 3;
    } else if (type === 'IDAT') idat.push(data);
    pos += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat)), stride = width * channels, px = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)], row = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? px[y * stride + i - channels] : 0, b = y ? px[(y - 1) * stride + i] : 0;
      const c = y && i >= channels ? px[(y - 1) * stride + i - channels] : 0;
      const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
      const pred = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][f];
      px[y * stride + i] = (row[i] + pred) & 255;
    }
  }
  return { width, height, rgb: (x, y) => [0, 1, 2].map((k) => px[y * stride + x * channels + k]) };
}

// a plain headless screenshot, the way a script or CI would take one: no virtual-time budget,
// taken when the page has loaded. Counts the bright (drawn) pixels where the lanes are.
const plainIdx = args.indexOf('--plain-shot');
if (plainIdx >= 0) {
  const file = args[plainIdx + 1];
  execFileSync(exe, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1600,900',
    '--hide-scrollbars', `--screenshot=${file}`, url], { stdio: 'ignore', timeout: 60000 });
  const png = decodePng(readFileSync(file));
  let bright = 0;
  for (let y = 110; y < Math.min(png.height, 800); y++) {
    for (let x = 200; x < Math.min(png.width, 1100); x++) { const [r, g, b] = png.rgb(x, y); if (r + g + b > 160) bright++; }
  }
  out.plainShot = { file, width: png.width, height: png.height, lanePixels: bright };
}

const browser = await chromium.launch({
  executablePath: exe, headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--force-color-profile=srgb'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 }, deviceScaleFactor: 1 });
  page.on('pageerror', (e) => out.errors.push('pageerror: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error') out.errors.push('console: ' + m.text()); });
  page.on('dialog', (d) => { out.errors.push('dialog: ' + d.message()); d.dismiss(); });
  const loadStart = Date.now();
  await page.goto(url, { waitUntil: 'load' });
  await waitFor(page, () => window.cinema && window.cinema.ready && window.cinema.events() > 0, null, 15000);
  await page.waitForTimeout(300);
  out.load_ms = Date.now() - loadStart;
  out.events = await page.evaluate(() => window.cinema.events());
  out.lanes = await page.evaluate(() => window.cinema.lanes());
  out.arrows = await page.evaluate(() => window.cinema.arrows());

  if (args.includes('--views') || args.includes('--opening')) {
    // the opening view, before anything is touched: framed on the first crash (its call readable),
    // else on the busiest moment; with the on-screen widths of the calls it shows
    out.opening = await page.evaluate(() => {
      const c = window.cinema, exc = c.findEvent('exception'), v = c.view();
      const callPx = c.eventsBetween(v.start, v.end, 'call').map((id) => c.spanPx(id));
      return { view: v, opening: c.opening(), exception: exc && c.eventInfo(exc), spanPx: exc && c.spanPx(exc), callPx };
    });
  }

  if (args.includes('--views')) {
    // zoomed in around the crash: every ruler label tells its tick apart
    out.rulers = await page.evaluate(() => {
      const c = window.cinema, res = [];
      c.fit();
      for (let i = 0; i < 60 && res.length < 3; i++) {
        c.timeZoom(0.5);
        const v = c.view(), span = v.end - v.start;
        if ((res.length === 0 && span < 60000) || (res.length === 1 && span < 3000) || (res.length === 2 && span < 200)) res.push({ span, labels: c.rulerLabels() });
      }
      return res;
    });
    // the crash in the inspector: its expressions (source above value, the value column wide) and its source lines
    const exc = await page.evaluate(() => window.cinema.findEvent('exception'));
    const p = await page.evaluate((id) => window.cinema.eventPos(id), exc);
    await page.mouse.click(p.x, p.y);
    await page.waitForSelector(`#panel-inspector[data-event-id="${exc}"]`, { timeout: 15000 });
    out.inspector = await page.evaluate(() => {
      const cards = Array.from(document.querySelectorAll('#panel-inspector .card'));
      const exprs = cards.find((c) => c.querySelector('h4').textContent === 'Expressions');
      const src = cards.find((c) => c.querySelector('.src'));
      const values = exprs ? Array.from(exprs.querySelectorAll('pre.term')) : [];
      return {
        exprValueWidths: values.map((v) => Math.round(v.getBoundingClientRect().width)),
        exprs: exprs ? exprs.textContent : null,
        sourceTitle: src ? src.querySelector('h4').textContent : null,
        sourceLines: src ? Array.from(src.querySelectorAll('.src div')).map((d) => d.textContent) : [],
        sourceHighlighted: src && src.querySelector('.src div.hl') ? src.querySelector('.src div.hl').textContent : null,
      };
    });
  }

  if (checks) {
    // lanes drawn: count coloured (non-background) pixels inside each lane's band, everything shown
    await page.evaluate(() => window.cinema.fit());
    out.lanePixels = await page.evaluate(() => {
      const cv = document.querySelector('#timeline');
      const ctx = cv.getContext('2d');
      const dpr = window.devicePixelRatio || 1;
      return window.cinema.lanes().map((l) => {
        const img = ctx.getImageData(200 * dpr, l.y * dpr, cv.width - 200 * dpr, Math.max(1, l.h * dpr)).data;
        let n = 0;
        for (let i = 0; i < img.length; i += 4) if (img[i] + img[i + 1] + img[i + 2] > 160) n++;
        return n;
      });
    });

    // click a handle_call span: its args must show in the inspector
    const callId = await page.evaluate(() => window.cinema.findEvent('call', 'handle_call'));
    const pos = await page.evaluate((id) => window.cinema.eventPos(id), callId);
    out.clickAt = pos;
    out.hitBefore = await page.evaluate((p) => window.cinema.hitAt(p.x, p.y), pos);
    await page.mouse.click(pos.x, pos.y);
    out.selectedAfterClick = await page.evaluate(() => window.cinema.view().selected);
    await page.waitForSelector(`#panel-inspector[data-event-id="${callId}"]`, { timeout: 15000 });
    out.clicked = { id: callId, args: await page.textContent('#args'), head: await page.textContent('#panel-inspector .ev-head') };

    // scrub: drag the ruler to just after the first and the last state change of the GenServer
    const states = await page.evaluate(() => window.cinema.stateEvents());
    out.stateEvents = states.length;
    await page.evaluate(() => { document.querySelector('[data-tab="instant"]').click(); window.cinema.fit(); });
    // drag the scrubber in the ruler to t; the Instant panel must then show that instant
    // (a drag whose events were lost by a busy headless browser is retried, and counted)
    out.scrubRetries = 0;
    const readState = async (t) => {
      for (let attempt = 1; ; attempt++) {
        const a = await page.evaluate((t) => window.cinema.rulerPos(t), t);
        await page.mouse.move(a.x - 30, a.y);
        await page.mouse.down();
        await page.mouse.move(a.x - 10, a.y, { steps: 3 });
        await page.mouse.move(a.x, a.y, { steps: 2 });
        await page.mouse.up();
        try {
          await waitFor(page, (t) => {
            const p = document.querySelector('#panel-instant');
            const v = window.cinema.view();
            const px = (v.end - v.start) / 1000;
            return p.dataset.t && Math.round(v.scrub) === Number(p.dataset.t) && Math.abs(v.scrub - t) < 4 * px;
          }, t, 5000);
          break;
        } catch (e) {
          out.scrubFail = await page.evaluate((t) => ({ t, view: window.cinema.view(), panelT: document.querySelector('#panel-instant').dataset.t }), t);
          if (attempt >= 3) throw e;
          out.scrubRetries++;
        }
      }
      return page.evaluate(() => Array.from(document.querySelectorAll('#panel-instant .state-value')).map((e) => e.textContent).join('\n---\n'));
    };
    const first = states[0], last = states[states.length - 1];
    const pxNs = await page.evaluate(() => { const v = window.cinema.view(); return (v.end - v.start) / 1000; });
    out.stateA = await readState(first.t + pxNs * 2);
    out.stateB = await readState(last.t + pxNs * 2);

    // the captured XSS string: open the init call, its argument must be shown as text
    const initId = await page.evaluate(() => window.cinema.findEvent('call', '.init'));
    const ipos = await page.evaluate((id) => window.cinema.eventPos(id), initId);
    await page.mouse.click(ipos.x, ipos.y);
    await page.waitForSelector(`#panel-inspector[data-event-id="${initId}"]`, { timeout: 15000 });
    out.xss = await page.evaluate(() => ({
      shown: document.querySelector('#panel-inspector').textContent,
      executed: window.__xss === undefined ? null : window.__xss,
      scripts: document.querySelectorAll('body script').length,
      dataBlocks: Array.from(document.querySelectorAll('body script[type="application/json"]')).map((s) => s.id),
      imgs: document.querySelectorAll('#side img, #panel-inspector img').length,
    }));
  }

  const liveIdx = args.indexOf('--live');
  if (liveIdx >= 0) {
    // live mode: a second page on a live server; events recorded after it loaded must appear without reload
    const live = await browser.newPage({ viewport: { width: 1200, height: 700 } });
    live.on('pageerror', (e) => out.errors.push('live pageerror: ' + e.message));
    await live.goto(args[liveIdx + 1], { waitUntil: 'load' });
    await waitFor(live, () => window.cinema && window.cinema.ready && window.cinema.events() > 0, null, 15000);
    const first = await live.evaluate(() => window.cinema.events());
    await waitFor(live, (n) => window.cinema.events() > n + 3, first, 10000);
    out.live = { first, later: await live.evaluate(() => window.cinema.events()), badge: await live.textContent('#title') };
    await live.close();
  }

  if (args.includes('--bench')) {
    // zoom in 12 steps around the middle, pan 12 steps, zoom back out: time each full redraw
    const times = await page.evaluate(() => {
      const c = window.cinema, t = [];
      t.push(c.fit());
      window.__parts = [];
      for (let i = 0; i < 12; i++) { t.push(c.timeZoom(0.6)); window.__parts.push(JSON.stringify(c.parts())); }
      for (let i = 0; i < 12; i++) t.push(c.timePan(0.2));
      for (let i = 0; i < 12; i++) t.push(c.timeZoom(1 / 0.6));
      t.push(c.fit());
      return t;
    });
    out.parts = await page.evaluate(() => window.__parts);
    const sorted = times.slice().sort((a, b) => a - b);
    out.bench = { times: times.map((x) => Math.round(x * 10) / 10), frames: times.length, median_ms: sorted[sorted.length >> 1], p90_ms: sorted[Math.floor(sorted.length * 0.9)], max_ms: sorted[sorted.length - 1], fit_ms: times[0] };
  }

  if (checks) {
    // keyboard stepping: → and ← move the selection event by event
    const sel0 = await page.evaluate(() => window.cinema.view().selected);
    await page.focus('#timeline');
    await page.keyboard.press('ArrowRight');
    const sel1 = await page.evaluate(() => window.cinema.view().selected);
    await page.keyboard.press('ArrowRight');
    const sel2 = await page.evaluate(() => window.cinema.view().selected);
    await page.keyboard.press('ArrowLeft');
    const sel3 = await page.evaluate(() => window.cinema.view().selected);
    out.steps = [sel0, sel1, sel2, sel3];
    // the call tree and the state diff panels
    await page.evaluate(() => document.querySelector('[data-tab="tree"]').click());
    await waitFor(page, () => document.querySelectorAll('#panel-tree .tree-row').length > 0, null, 5000);
    out.treeRows = await page.evaluate(() => Array.from(document.querySelectorAll('#panel-tree .tree-row')).map((r) => r.textContent));
  }

  if (shot) {
    // a rich view: select the exception (the crash) and show the instant panel
    const exc = await page.evaluate(() => window.cinema.findEvent('exception'));
    if (exc) {
      const p = await page.evaluate((id) => window.cinema.eventPos(id), exc);
      await page.mouse.click(p.x, p.y);
      await page.waitForTimeout(400);
      await page.evaluate((tab) => document.querySelector(`[data-tab="${tab}"]`).click(), tab);
      await page.waitForTimeout(300);
    }
    await page.mouse.move(5, 5);
    await page.waitForTimeout(300);
    await page.screenshot({ path: shot });
    out.screenshot = shot;
  }
  out.ok = true;
} catch (e) {
  out.errors.push(String(e && e.stack || e));
} finally {
  await browser.close();
  process.stdout.write(JSON.stringify(out) + '\n');
}
