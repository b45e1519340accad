import { chromium } from 'playwright-core';
const b = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu'] });
const page = await b.newPage({ viewport: { width: 1600, height: 900 } });
await page.goto('http://127.0.0.1:4078/');
await new Promise((r) => setTimeout(r, 2500));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// call tree of the teller
const tel = await page.evaluate(() => window.cinema.lanes()[1]);
await page.mouse.click(60, 74 + tel.y + 20);
await page.evaluate(() => document.querySelector('[data-tab="tree"]').click());
await sleep(800);
await page.screenshot({ path: '/tmp/tour_tree.png' });
// state diff
const st = await page.evaluate(() => window.cinema.stateEvents());
await page.evaluate(() => { document.querySelector('[data-tab="diff"]').click(); window.cinema.fit(); });
for (const [which, t] of [['a', st[0].t + 1], ['b', st[st.length - 1].t + 1]]) {
  const p = await page.evaluate((t) => window.cinema.rulerPos(t), t);
  await page.mouse.click(p.x, p.y);
  await sleep(200);
  await page.click('#diff-set-' + which);
}
await page.click('#diff-run');
await sleep(800);
await page.screenshot({ path: '/tmp/tour_diff.png' });
// search
await page.fill('#search', 'insufficient');
await page.press('#search', 'Enter');
await sleep(900);
await page.screenshot({ path: '/tmp/tour_search.png' });
await b.close();
