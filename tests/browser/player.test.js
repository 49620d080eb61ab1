// Drives the HTML step player in headless Chromium (Debian's chromium
// package through playwright-core; playwright never downloads a browser).
//   node player.test.js BPVIZ MODEL.bp OUTDIR
// Writes OUTDIR/train.html, the JSON trace and a screenshot; exits 0 when
// every check passes, 1 on a failure, 77 when Chromium is missing.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');

const CHROMIUM = process.env.BPV_CHROMIUM || '/usr/bin/chromium';
const [bpviz, model, outdir] = process.argv.slice(2);
if (!bpviz || !model || !outdir) {
  console.error('usage: node player.test.js BPVIZ MODEL.bp OUTDIR');
  process.exit(2);
}
if (!fs.existsSync(CHROMIUM)) {
  console.log(`skip: no Chromium at ${CHROMIUM}`);
  process.exit(77);
}
const { chromium } = require('playwright-core');

let failures = 0;
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
}
function same(a, b, what) {
  const ok = JSON.stringify(a) === JSON.stringify(b);
  check(ok, what + (ok ? '' : `\n     got:      ${JSON.stringify(a)}\n     expected: ${JSON.stringify(b)}`));
}

fs.mkdirSync(outdir, { recursive: true });
const html = path.join(outdir, 'train.html');
const sigmoid = path.join(outdir, 'sigmoid.html');
const trace = path.join(outdir, 'train.json');
execFileSync(bpviz, [model, '--steps', 'all', '-o', html]);
execFileSync(bpviz, [model, '--steps', 'all', '-o', trace]);
const T = JSON.parse(fs.readFileSync(trace, 'utf8'));
const size = fs.statSync(html).size;
check(size < 1024 * 1024, `train.html is ${(size / 1024).toFixed(0)} KiB, under 1 MiB`);

// bpv_fig_number (src/figure.c) for the precision-4 default
const SUP = '⁰¹²³⁴⁵⁶⁷⁸⁹';
function fmt(v) {
  if (v === null) return '—';
  if (v === 'nan') return 'NaN';
  if (v === 'inf' || v === '-inf') return (v[0] === '-' ? '−' : '') + '∞';
  if (v === 0) return '0';
  const sign = v < 0 ? '−' : '', a = Math.abs(v), p = 4;
  const trim = (t) => (t.includes('.') ? t.replace(/0+$/, '').replace(/\.$/, '') : t);
  const [m, e] = a.toExponential(p - 1).split('e');
  const x = +e;
  if (x >= -4 && x < 6) return sign + trim(a.toFixed(Math.max(0, p - 1 - x)));
  const ex = (x < 0 ? '⁻' : '') + String(Math.abs(x)).split('').map((c) => SUP[+c]).join('');
  return sign + trim(m) + '×10' + ex;
}

// A static figure of one step, as bpviz draws it on its own: its texts
// (sorted) and the fills of its stroke-less polygons but white ones
// (heatmap cells and colour bars), in document order.
const staticCache = new Map();
function staticFigure(step, m = model, extra = []) {
  const key = JSON.stringify([step, m, extra]);
  if (staticCache.has(key)) return staticCache.get(key);
  const svg = execFileSync(bpviz, [m, ...extra, '--step', String(step), '-T', 'svg']).toString();
  const texts = [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((t) =>
    t[1].replace(/&#45;/g, '-').replace(/&lt;/g, '<').replace(/&gt;/g, '>')
      .replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&'));
  texts.sort();
  const fills = [...svg.matchAll(/<polygon fill="([^"]*)" stroke="transparent"/g)].map((f) => f[1])
    .filter((f) => f !== 'white'); // backgrounds: the player's page has its own

  const fig = { texts, fills };
  staticCache.set(key, fig);
  return fig;
}
const staticTexts = (step) => staticFigure(step).texts;

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'bpv-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1600, height: 1000 },
  });
  const errors = [], requests = [];
  ctx.on('request', (r) => requests.push(r.url()));
  const page = await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  const url = 'file://' + path.resolve(html);

  // What the page shows now: step, loss, table, figure texts, fragment.
  const shown = () => page.evaluate(() => ({
    step: +document.getElementById('bpv-step').textContent,
    epoch: +document.getElementById('bpv-epoch').textContent,
    loss: document.getElementById('bpv-loss').textContent,
    hash: location.hash,
    slider: +document.getElementById('bpv-slider').value,
    params: [...document.querySelectorAll('#bpv-params tbody tr')].map((tr) =>
      [...tr.children].map((td) => td.textContent)),
    texts: [...document.querySelectorAll('#bpv-figure svg text')].map((t) => t.textContent).sort(),
    samples: document.getElementById('bpv-samples').textContent,
  }));
  async function expectStep(step, how) {
    const s = await shown();
    check(s.texts.some((t) => t.startsWith('step ') && t.includes(` · ${s.samples} `)),
      `${how}: the header's "${s.samples}" is numbered as in the caption`);
    const t = T.steps[step - 1];
    same(s.step, step, `${how}: shows step ${step}`);
    same(s.hash, `#step=${step}`, `${how}: the fragment is #step=${step}`);
    same(s.epoch, t.epoch, `${how}: epoch`);
    same(s.loss, fmt(t.loss), `${how}: loss as in the JSON trace`);
    const params = t.nodes.filter((nd) => nd.kind === 'param');
    same(s.params.map((r) => [r[1], r[2]]), params.map((nd) => [fmt(nd.value), fmt(nd.grad)]),
      `${how}: parameter values and gradients as in the JSON trace`);
    same(s.texts, staticTexts(step), `${how}: every text of the figure as in a static figure of step ${step}`);
  }

  await page.goto(url);
  await page.waitForFunction(() => document.getElementById('bpv-step').textContent !== '');
  await expectStep(1, 'opened');

  for (let i = 0; i < 5; i++) await page.keyboard.press('ArrowRight');
  await expectStep(6, 'after 5 × →');
  await page.keyboard.press('ArrowLeft');
  await expectStep(5, 'after ←');
  await page.keyboard.press('Shift+ArrowRight');
  await expectStep(15, 'after Shift+→');

  // Drag the slider's thumb from its place to three quarters of the track.
  const box = await page.locator('#bpv-slider').boundingBox();
  const n = T.steps.length;
  const before = await shown();
  const x0 = box.x + 8 + (box.width - 16) * before.slider / (n - 1), y = box.y + box.height / 2;
  await page.mouse.move(x0, y);
  await page.mouse.down();
  await page.mouse.move(x0 + (box.width - x0 + box.x) / 2, y, { steps: 5 });
  await page.mouse.move(box.x + 8 + (box.width - 16) * 0.75, y, { steps: 5 });
  await page.mouse.up();
  const dragged = await shown();
  check(Math.abs(dragged.slider - 0.75 * (n - 1)) < n * 0.02,
    `dragging the slider to 3/4 shows step ${dragged.step} (about ${Math.round(0.75 * n)})`);
  await expectStep(dragged.step, 'after dragging the slider');

  await page.keyboard.press('End');
  await expectStep(n, 'after End');
  await page.keyboard.press('Home');
  await expectStep(1, 'after Home');

  // Space plays and pauses.
  await page.keyboard.press(' ');
  await page.waitForTimeout(700);
  await page.keyboard.press(' ');
  const played = await shown();
  check(played.step > 1, `space plays and pauses (stopped at step ${played.step})`);
  await page.waitForTimeout(400);
  same((await shown()).step, played.step, 'paused: the step stays');

  // A click on the loss curve jumps there.
  await page.locator('#bpv-plot svg').scrollIntoViewIfNeeded(); // below the fitted figure
  const plot = await page.locator('#bpv-plot svg').boundingBox();
  await page.mouse.click(plot.x + plot.width * 0.5, plot.y + plot.height * 0.5);
  const clicked = await shown();
  check(clicked.step > n * 0.3 && clicked.step < n * 0.7,
    `a click mid-way on the loss plot jumps to step ${clicked.step}`);

  // The fragment opens a given step, and changing it moves there.
  await page.goto(url + '#step=37');
  await page.waitForFunction(() => document.getElementById('bpv-step').textContent !== '');
  await expectStep(37, 'opened at #step=37');
  await page.evaluate(() => { location.hash = '#step=400'; });
  await page.waitForFunction(() => document.getElementById('bpv-step').textContent === '400');
  await expectStep(400, 'after setting #step=400');

  await page.screenshot({ path: path.join(outdir, 'player.png'), fullPage: true });

  // Printing shows the figure alone.
  await page.emulateMedia({ media: 'print' });
  const printed = await page.evaluate(() => ['header', 'nav', '#bpv-panels', '#bpv-figure']
    .map((s) => getComputedStyle(document.querySelector(s)).display));
  same(printed, ['none', 'none', 'none', 'block'], 'print: only the figure');
  await page.emulateMedia({ media: 'screen', colorScheme: 'dark' });
  const dark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await page.emulateMedia({ media: 'screen', colorScheme: 'light' });
  const light = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  check(dark !== light, `the page follows the system's dark (${dark}) and light (${light}) styles`);
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: path.join(outdir, 'player-dark.png'), fullPage: true });

  // Heatmaps (--tensors heatmap) are recoloured at every step: every cell,
  // and the range printed beside it, as in a static figure of that step.
  const heat = path.join(outdir, 'heatmap.html');
  const sigmoidModel = path.join(path.dirname(model), 'two_layer_sigmoid.bp');
  execFileSync(bpviz, [sigmoidModel, '--tensors', 'heatmap', '--steps', '1-20', '-o', heat]);
  const heatUrl = 'file://' + path.resolve(heat);
  const heatShown = () => page.evaluate(() => ({
    step: +document.getElementById('bpv-step').textContent,
    groups: document.querySelectorAll('#bpv-figure svg g[data-heat]').length,
    fills: [...document.querySelectorAll('#bpv-figure svg polygon[stroke="transparent"]')]
      .map((p) => p.getAttribute('fill')).filter((f) => f !== 'white'),
    texts: [...document.querySelectorAll('#bpv-figure svg text')].map((t) => t.textContent).sort(),
  }));
  await page.goto(heatUrl);
  await page.waitForFunction(() => document.getElementById('bpv-step').textContent !== '');
  const heatFills = {};
  for (const step of [1, 8, 20]) {
    if (step !== 1) {
      await page.evaluate((st) => { location.hash = '#step=' + st; }, step);
      await page.waitForFunction((st) => document.getElementById('bpv-step').textContent === String(st), step);
    }
    const h = await heatShown();
    const want = staticFigure(step, sigmoidModel, ['--tensors', 'heatmap']);
    check(h.groups > 0, `heatmap player, step ${step}: ${h.groups} heatmaps recoloured by step`);
    same(h.fills, want.fills, `heatmap player, step ${step}: every cell's colour as in a static figure of step ${step}`);
    same(h.texts, want.texts, `heatmap player, step ${step}: every text (the ranges too) as in a static figure`);
    heatFills[step] = h.fills;
  }
  const changed = heatFills[1].filter((c, i) => c !== heatFills[20][i]).length;
  check(changed > 10, `heatmap player: ${changed} cells change colour from step 1 to step 20`);
  await page.keyboard.press('Home');
  same((await heatShown()).fills, heatFills[1], 'heatmap player: back at step 1, the colours of step 1');

  // At 1280x720 the figure fits the window: no horizontal scrollbar, the
  // whole drawing visible; +, −, fit and Ctrl+wheel zoom, dragging pans.
  // Also two_layer_sigmoid.bp (7:1 as a plain figure), whose parameter
  // table shows its 3x2 matrix as a matrix.
  await page.emulateMedia({ media: 'screen', colorScheme: 'light' });
  await page.setViewportSize({ width: 1280, height: 720 });
  execFileSync(bpviz, [path.join(path.dirname(model), 'two_layer_sigmoid.bp'), '--steps', '1-20',
    '-o', sigmoid]);
  const linear2 = path.join(outdir, 'two_layer_linear.html');
  execFileSync(bpviz, [path.join(path.dirname(model), 'two_layer_linear.bp'), '--steps', '1-20',
    '-o', linear2]);
  const measure = () => page.evaluate(() => {
    const svg = document.querySelector('#bpv-view svg'), r = svg.getBoundingClientRect();
    const k = r.width / svg.viewBox.baseVal.width;
    const sizes = [...svg.querySelectorAll('text')].map((t) => parseFloat(t.getAttribute('font-size')) * k)
      .sort((a, b) => a - b);
    const view = document.getElementById('bpv-view');
    return { scrollW: document.documentElement.scrollWidth, clientW: document.documentElement.clientWidth,
      left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width,
      viewBottom: view.getBoundingClientRect().bottom, median: sizes[sizes.length >> 1], smallest: sizes[0],
      scrollLeft: view.scrollLeft,
      mats: [...document.querySelectorAll('#bpv-params table.mat')].map((t) =>
        [...t.rows].map((row) => [...row.cells].map((c) => c.textContent))) };
  });
  for (const [file, name] of [[url, 'quadratic'], ['file://' + path.resolve(sigmoid), 'two_layer_sigmoid'],
    ['file://' + path.resolve(linear2), 'two_layer_linear']]) {
    await page.goto(file);
    await page.waitForFunction(() => document.getElementById('bpv-step').textContent !== '');
    const m = await measure();
    console.log(`     ${name} at 1280x720: drawing ${Math.round(m.width)} px wide, median text ${m.median.toFixed(2)} px, smallest ${m.smallest.toFixed(2)} px`);
    check(m.scrollW <= m.clientW, `${name} at 1280x720: no horizontal scrollbar (${m.scrollW} <= ${m.clientW})`);
    check(m.left >= 0 && m.right <= 1280 && m.bottom <= 720 + 1, `${name} at 1280x720: the figure fits the window`);
    check(m.median >= 9, `${name} at 1280x720: median text ${m.median.toFixed(2)} px, at least 9`);
    await page.click('#bpv-zoom-in');
    const zin = await measure();
    check(zin.width > m.width * 1.2, `${name}: + zooms in (${Math.round(m.width)} -> ${Math.round(zin.width)} px)`);
    const c = await page.locator('#bpv-view').boundingBox();
    await page.mouse.move(c.x + c.width / 2, c.y + c.height / 2);
    await page.mouse.down();
    await page.mouse.move(c.x + c.width / 2 - 150, c.y + c.height / 2, { steps: 4 });
    await page.mouse.up();
    check((await measure()).scrollLeft > 50, `${name}: dragging pans`);
    await page.click('#bpv-zoom-out');
    await page.click('#bpv-zoom-out');
    check((await measure()).width < zin.width * 0.7, `${name}: − zooms out`);
    await page.keyboard.down('Control');
    await page.mouse.move(c.x + c.width / 2, c.y + c.height / 2);
    await page.mouse.wheel(0, -300);
    await page.keyboard.up('Control');
    await page.waitForTimeout(100);
    check((await measure()).width > m.width * 0.9, `${name}: Ctrl+wheel zooms in`);
    await page.click('#bpv-zoom-fit');
    const back = await measure();
    check(Math.abs(back.width - m.width) < 2 && back.scrollW <= back.clientW, `${name}: fit restores the fitted figure`);
    if (name === 'two_layer_sigmoid') {
      check(m.mats.length >= 1 && m.mats[0].length === 3 && m.mats[0].every((r) => r.length === 2),
        `the 3x2 matrix W₁ shows as a 3x2 matrix in the table (${JSON.stringify(m.mats[0])})`);
      await page.screenshot({ path: path.join(outdir, 'player-1280x720.png') });
    }
  }

  await ctx.close();
  fs.rmSync(profile, { recursive: true, force: true });

  same(errors, [], 'no console errors or warnings');
  check(requests.some((u) => u.startsWith(url.split('#')[0])), 'requests are observed');
  const mine = [url.split('#')[0], 'file://' + path.resolve(sigmoid), heatUrl,
    'file://' + path.resolve(linear2)];
  const foreign = requests.filter((u) => !mine.some((m) => u.startsWith(m)));
  same(foreign, [], 'no request but the file itself');
  console.log(failures ? `${failures} check(s) failed` : 'all checks passed');
  process.exit(failures ? 1 : 0);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
