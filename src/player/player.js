/* The step player. The figure was laid out once for every step; each text
 * that changes between steps is a <tspan data-k="K">, and S[D.text[i][K]]
 * is its text at step i, formatted by bpviz exactly as a figure of that
 * step prints it (S: D.strings, every distinct text once). Nothing here
 * loads anything. */
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('bpv-data').textContent);
  var n = D.step.length, S = D.strings;
  var SVGNS = 'http://www.w3.org/2000/svg';
  var $ = function (id) { return document.getElementById(id); };
  var figure = document.querySelector('#bpv-figure svg');
  var slider = $('bpv-slider'), playButton = $('bpv-play'), speed = $('bpv-speed');
  var cur = -1, timer = null;

  /* ---- the figure's varying texts ---- */
  var slots = [];
  Array.prototype.forEach.call(figure.querySelectorAll('tspan[data-k]'), function (t) {
    var k = +t.getAttribute('data-k');
    (slots[k] = slots[k] || []).push(t);
  });
  /* Heatmaps recoloured at every step: S[D.text[i][K]] is 'v' or 'g' (the
   * value or gradient scale) and one character a cell, '!' + its level
   * (D.heatColors[scale][level]); the cells are the polygons without a
   * stroke, in order. */
  var heats = [];
  Array.prototype.forEach.call(figure.querySelectorAll('g[data-heat]'), function (g) {
    var k = +g.getAttribute('data-heat');
    (heats[k] = heats[k] || []).push(g.querySelectorAll('polygon[stroke="transparent"]'));
  });
  function paint(cells, codes) {
    var pal = D.heatColors[codes.charAt(0) === 'g' ? 1 : 0];
    for (var c = 1; c < codes.length && c <= cells.length; c++)
      cells[c - 1].setAttribute('fill', pal[codes.charCodeAt(c) - 33] || pal[pal.length - 1]);
  }

  /* Each text was laid out with its widest value and starts at x. Anchor it
   * where a figure of any one step would put it: centred in its cell, or
   * right-aligned for matrix entries (padded with thin spaces). */
  Array.prototype.forEach.call(figure.querySelectorAll('text'), function (t) {
    if (!t.querySelector('tspan[data-k]')) return;
    var x = +t.getAttribute('x'), w = t.getComputedTextLength();
    var right = t.textContent.indexOf('\u2009') >= 0;
    t.setAttribute('text-anchor', right ? 'end' : 'middle');
    t.setAttribute('x', String(right ? x + w : x + w / 2));
  });

  /* ---- zoom and pan ----
   * The figure fits the window by default (never wider than it: no
   * scrollbar, and at most 1.5 times its natural size); +, − and
   * Ctrl+wheel zoom, dragging pans. Natural size: Graphviz's points at
   * 96 pixels per inch. */
  var view = $('bpv-view');
  /* The drawing without Graphviz's pad (its margin, and the room that gave
   * the page the --fit shape): the window has a shape of its own, and the
   * fitted text comes out larger. */
  var bg = figure.querySelector('g.graph > polygon');
  if (bg && figure.getBBox && figure.viewBox && figure.viewBox.baseVal) {
    bg.style.display = 'none';
    var bb = figure.getBBox(), m = 6;
    bg.style.display = '';
    if (bb.width > 0 && bb.height > 0)
      figure.setAttribute('viewBox', [bb.x - m, bb.y - m, bb.width + 2 * m, bb.height + 2 * m].join(' '));
  }
  var vb = figure.viewBox && figure.viewBox.baseVal;
  var natW = vb && vb.width ? vb.width * 4 / 3 : 800, natH = vb && vb.height ? vb.height * 4 / 3 : 600;
  figure.removeAttribute('width');
  figure.removeAttribute('height');
  var scale = 1, fitted = true, fitScaleNow = 1;
  function fitScale() {
    var w = view.clientWidth || natW;
    var top = view.getBoundingClientRect().top + (window.scrollY || 0);
    var h = Math.max(200, window.innerHeight - Math.min(top, window.innerHeight / 2) - 12);
    return Math.min(w / natW, h / natH, 1.5);
  }
  /* zooms to s keeping the figure's point under (cx, cy) (view pixels) in place */
  function zoom(s, cx, cy) {
    s = Math.max(0.05, Math.min(8, s));
    var fx = (view.scrollLeft + (cx === undefined ? view.clientWidth / 2 : cx)) / (natW * scale);
    var fy = (view.scrollTop + (cy === undefined ? view.clientHeight / 2 : cy)) / (natH * scale);
    scale = s;
    figure.style.width = Math.round(natW * s) + 'px';
    figure.style.height = Math.round(natH * s) + 'px';
    view.scrollLeft = fx * natW * s - (cx === undefined ? view.clientWidth / 2 : cx);
    view.scrollTop = fy * natH * s - (cy === undefined ? view.clientHeight / 2 : cy);
  }
  function fit() {
    fitted = true;
    fitScaleNow = fitScale();
    /* the view keeps the fitted height while zooming */
    view.style.height = Math.round(natH * fitScaleNow) + 'px';
    zoom(fitScaleNow);
    view.scrollLeft = 0;
    view.scrollTop = 0;
  }
  function zoomBy(k, cx, cy) {
    fitted = false;
    zoom(scale * k, cx, cy);
  }
  $('bpv-zoom-in').addEventListener('click', function () { zoomBy(1.25); });
  $('bpv-zoom-out').addEventListener('click', function () { zoomBy(1 / 1.25); });
  $('bpv-zoom-fit').addEventListener('click', fit);
  view.addEventListener('wheel', function (ev) {
    if (!ev.ctrlKey && !ev.metaKey) return; /* the page scrolls as usual */
    ev.preventDefault();
    var r = view.getBoundingClientRect();
    zoomBy(Math.pow(1.0015, -ev.deltaY), ev.clientX - r.left, ev.clientY - r.top);
  }, {passive: false});
  var drag = null;
  view.addEventListener('pointerdown', function (ev) {
    if (ev.button !== 0) return;
    ev.preventDefault(); /* a drag pans; it does not select the figure's text */
    drag = {x: ev.clientX, y: ev.clientY, l: view.scrollLeft, t: view.scrollTop};
    view.classList.add('dragging');
    if (view.setPointerCapture) view.setPointerCapture(ev.pointerId);
  });
  view.addEventListener('pointermove', function (ev) {
    if (!drag) return;
    view.scrollLeft = drag.l - (ev.clientX - drag.x);
    view.scrollTop = drag.t - (ev.clientY - drag.y);
  });
  function endDrag() { drag = null; view.classList.remove('dragging'); }
  view.addEventListener('pointerup', endDrag);
  view.addEventListener('pointercancel', endDrag);
  window.addEventListener('resize', function () { if (fitted) fit(); });
  fit();

  /* ---- the parameter table ---- */
  var tbody = document.querySelector('#bpv-params tbody'), cells = [];
  D.params.forEach(function (name) {
    var tr = document.createElement('tr'), row = [];
    ['name', 'fwd', 'bwd', 'after'].forEach(function (cls) {
      var td = document.createElement('td');
      td.className = cls;
      tr.appendChild(td);
      row.push(td);
    });
    row[0].textContent = name;
    tbody.appendChild(tr);
    cells.push(row);
  });
  if (!D.params.length) tbody.parentNode.parentNode.style.display = 'none';
  $('bpv-lossname').textContent = D.lossName;

  /* ---- the loss plot ---- */
  function el(name, attrs, parent) {
    var e = document.createElementNS(SVGNS, name);
    for (var a in attrs) e.setAttribute(a, attrs[a]);
    if (parent) parent.appendChild(e);
    return e;
  }

  /* 1, 2, 5 × 10^k ticks covering [lo, hi] */
  function niceTicks(lo, hi, want) {
    var span = hi - lo, raw = span / want, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var stepv = [1, 2, 5, 10].map(function (m) { return m * mag; })
      .filter(function (s) { return span / s <= want; })[0] || 10 * mag;
    var ticks = [];
    for (var v = Math.ceil(lo / stepv - 1e-9) * stepv; v <= hi + stepv * 1e-9; v += stepv)
      ticks.push(Math.abs(v) < stepv * 1e-9 ? 0 : v);
    return ticks;
  }

  function tickLabel(v) {
    if (v === 0) return '0';
    var a = Math.abs(v);
    var s = a >= 1e5 || a < 1e-3 ? v.toExponential(0).replace('e+', 'e') : String(+v.toPrecision(6));
    return s.replace('-', '\u2212');
  }

  var SUP = '\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079';
  function decadeLabel(e) {
    if (e >= -2 && e <= 2) return tickLabel(Math.pow(10, e));
    var s = String(Math.abs(e)).split('').map(function (c) { return SUP[+c]; }).join('');
    return '10' + (e < 0 ? '\u207b' : '') + s;
  }

  function lossPlot(box) {
    var W = 640, H = 220, L = 62, R = 16, T = 12, B = 42;
    var svg = el('svg', {viewBox: '0 0 ' + W + ' ' + H, role: 'img',
                         'aria-label': 'loss by training step'}, box);
    var xs = D.step, ys = D.loss;
    var fin = ys.filter(function (v) { return v !== null; });
    var x0 = xs[0], x1 = xs[n - 1];
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    var lo = fin.length ? Math.min.apply(null, fin) : 0, hi = fin.length ? Math.max.apply(null, fin) : 1;
    /* a log scale once the loss spans two decades or more */
    var log = lo > 0 && hi / lo >= 100;
    var ylo, yhi, ty;
    if (log) {
      ylo = Math.floor(Math.log10(lo)); yhi = Math.ceil(Math.log10(hi));
      ty = function (v) { return Math.log10(v); };
    } else {
      ylo = Math.min(0, lo); yhi = hi > ylo ? hi : ylo + 1;
      ty = function (v) { return v; };
    }
    var sx = function (v) { return L + (v - x0) / (x1 - x0) * (W - L - R); };
    var sy = function (v) { return T + (1 - (ty(v) - ylo) / (yhi - ylo)) * (H - T - B); };
    var sylin = function (u) { return T + (1 - (u - ylo) / (yhi - ylo)) * (H - T - B); };

    /* y grid, ticks and labels */
    if (log) {
      var every = Math.max(1, Math.ceil((yhi - ylo) / 6));
      for (var e = ylo; e <= yhi; e++) {
        for (var m = 2; m < 10 && e < yhi; m++) {
          var ym = sylin(e + Math.log10(m));
          el('line', {x1: L - 3, x2: L, y1: ym, y2: ym, 'class': 'axis'}, svg);
        }
        if ((e - ylo) % every) continue;
        var y = sylin(e);
        el('line', {x1: L, x2: W - R, y1: y, y2: y, 'class': 'grid'}, svg);
        el('text', {x: L - 7, y: y + 4, 'text-anchor': 'end'}, svg).textContent = decadeLabel(e);
      }
    } else {
      niceTicks(ylo, yhi, 5).forEach(function (v) {
        var y = sylin(v);
        el('line', {x1: L, x2: W - R, y1: y, y2: y, 'class': 'grid'}, svg);
        el('text', {x: L - 7, y: y + 4, 'text-anchor': 'end'}, svg).textContent = tickLabel(v);
      });
    }
    /* x ticks: whole steps */
    niceTicks(x0, x1, 7).filter(function (v) { return v === Math.round(v); }).forEach(function (v) {
      var x = sx(v);
      el('line', {x1: x, x2: x, y1: H - B, y2: H - B + 5, 'class': 'axis'}, svg);
      el('text', {x: x, y: H - B + 18, 'text-anchor': 'middle'}, svg).textContent = tickLabel(v);
    });
    el('line', {x1: L, x2: W - R, y1: H - B, y2: H - B, 'class': 'axis'}, svg);
    el('line', {x1: L, x2: L, y1: T, y2: H - B, 'class': 'axis'}, svg);
    el('text', {x: (L + W - R) / 2, y: H - 4, 'text-anchor': 'middle', 'class': 'label'}, svg)
      .textContent = 'training step';
    el('text', {x: 14, y: (T + H - B) / 2, 'text-anchor': 'middle', 'class': 'label',
                transform: 'rotate(-90 14 ' + (T + H - B) / 2 + ')'}, svg)
      .textContent = D.lossName + (log ? ' (log scale)' : '');

    /* the curve, broken where the loss is not a finite number */
    function line(px, py, cls) {
      var d = '', pen = false;
      for (var i = 0; i < px.length; i++) {
        if (py[i] === null || (log && py[i] <= 0)) { pen = false; continue; }
        d += (pen ? 'L' : 'M') + sx(px[i]).toFixed(1) + ',' + sy(py[i]).toFixed(1);
        pen = true;
      }
      return el('path', {d: d || 'M0,0', 'class': cls}, svg);
    }
    /* With several steps per epoch the loss of single samples jumps about;
     * the mean over each epoch shows the trend. */
    var ex = [], ey = [], many = false;
    for (var a = 0, b; a < n; a = b) {
      var sum = 0, cnt = 0, at = 0;
      for (b = a; b < n && D.epoch[b] === D.epoch[a]; b++)
        if (ys[b] !== null) { sum += ys[b]; at += xs[b]; cnt++; }
      many = many || b - a > 1;
      ex.push(cnt ? at / cnt : xs[a]); ey.push(cnt ? sum / cnt : null);
    }
    line(xs, ys, many ? 'curve raw' : 'curve');
    if (many) {
      line(ex, ey, 'curve');
      var lg = el('g', {'class': 'legend'}, svg);
      el('line', {x1: W - R - 212, x2: W - R - 192, y1: T + 8, y2: T + 8, 'class': 'curve raw'}, lg);
      el('text', {x: W - R - 186, y: T + 12}, lg).textContent = 'each step';
      el('line', {x1: W - R - 112, x2: W - R - 92, y1: T + 8, y2: T + 8, 'class': 'curve'}, lg);
      el('text', {x: W - R - 86, y: T + 12}, lg).textContent = 'epoch mean';
    }
    var cursor = el('line', {y1: T, y2: H - B, 'class': 'cursor'}, svg);
    var dot = el('circle', {r: 5, 'class': 'dot'}, svg);

    /* click or drag on the plot: the nearest chosen step */
    function pick(ev) {
      var p = svg.createSVGPoint();
      p.x = ev.clientX; p.y = ev.clientY;
      var u = p.matrixTransform(svg.getScreenCTM().inverse());
      var step = x0 + (u.x - L) / (W - L - R) * (x1 - x0);
      show(nearest(step));
    }
    var dragging = false;
    svg.addEventListener('pointerdown', function (ev) {
      dragging = true; pause(); pick(ev);
      if (svg.setPointerCapture) svg.setPointerCapture(ev.pointerId);
    });
    svg.addEventListener('pointermove', function (ev) { if (dragging) pick(ev); });
    svg.addEventListener('pointerup', function () { dragging = false; });

    return function mark(i) {
      var x = sx(xs[i]);
      cursor.setAttribute('x1', x); cursor.setAttribute('x2', x);
      var ok = ys[i] !== null && !(log && ys[i] <= 0);
      dot.style.display = ok ? '' : 'none';
      if (ok) { dot.setAttribute('cx', x); dot.setAttribute('cy', sy(ys[i])); }
    };
  }

  /* the index of the chosen step closest to a step number */
  function nearest(step) {
    var a = 0, b = n - 1;
    while (a < b) {
      var m = (a + b) >> 1;
      if (D.step[m] < step) a = m + 1; else b = m;
    }
    return a > 0 && step - D.step[a - 1] < D.step[a] - step ? a - 1 : a;
  }

  /* A value for the table: a matrix's rows come separated by newlines and
   * its entries by tabs (player.c), drawn as a bracketed grid. */
  function setTensor(td, text) {
    if (text.indexOf('\n') < 0 && text.indexOf('\t') < 0) { td.textContent = text; return; }
    var t = document.createElement('table');
    t.className = 'mat';
    text.split('\n').forEach(function (line) {
      var tr = t.insertRow();
      line.split('\t').forEach(function (v) { tr.insertCell().textContent = v; });
    });
    td.textContent = '';
    td.appendChild(t);
  }

  /* ---- showing a step ---- */
  function show(i) {
    i = Math.max(0, Math.min(n - 1, i | 0));
    if (i === cur) return;
    var prev = cur >= 0 ? D.text[cur] : null, T = D.text[i];
    for (var k = 0; k < slots.length; k++) {
      if (!slots[k] || (prev && prev[k] === T[k])) continue;
      for (var j = 0; j < slots[k].length; j++) slots[k][j].textContent = S[T[k]];
    }
    for (k = 0; k < heats.length; k++) {
      if (!heats[k] || (prev && prev[k] === T[k])) continue;
      for (j = 0; j < heats[k].length; j++) paint(heats[k][j], S[T[k]]);
    }
    cur = i;
    $('bpv-step').textContent = D.step[i];
    $('bpv-epoch').textContent = D.epoch[i];
    $('bpv-samples').textContent = S[D.samples[i]];
    $('bpv-loss').textContent = S[D.lossText[i]];
    $('bpv-position').textContent = (i + 1) + ' / ' + n;
    slider.value = i;
    var pv = D.pv[i];
    cells.forEach(function (row, p) {
      for (var c = 0; c < 3; c++) setTensor(row[c + 1], S[pv[3 * p + c]]);
    });
    plot(i);
    var hash = '#step=' + D.step[i];
    if (location.hash !== hash) {
      try { history.replaceState(null, '', hash); } catch (e) { location.replace(hash); }
    }
  }

  function fromHash() {
    var m = /^#step=(\d+)$/.exec(location.hash);
    return m ? nearest(+m[1]) : 0;
  }

  /* ---- playing ---- */
  function play() {
    if (timer !== null) return;
    if (cur >= n - 1) show(0);
    playButton.textContent = '\u275a\u275a';
    playButton.setAttribute('aria-label', 'pause');
    var last = performance.now(), owed = 0;
    function tick(now) {
      owed += (now - last) * +speed.value / 1000;
      last = now;
      if (owed >= 1) {
        var by = Math.floor(owed);
        owed -= by;
        show(cur + by);
        if (cur >= n - 1) { pause(); return; }
      }
      timer = requestAnimationFrame(tick);
    }
    timer = requestAnimationFrame(tick);
  }
  function pause() {
    if (timer === null) return;
    cancelAnimationFrame(timer);
    timer = null;
    playButton.textContent = '\u25b6';
    playButton.setAttribute('aria-label', 'play');
  }
  function toggle() { if (timer === null) play(); else pause(); }

  /* ---- controls ---- */
  slider.max = n - 1;
  slider.addEventListener('input', function () { pause(); show(+slider.value); });
  $('bpv-first').addEventListener('click', function () { pause(); show(0); });
  $('bpv-prev').addEventListener('click', function () { pause(); show(cur - 1); });
  $('bpv-next').addEventListener('click', function () { pause(); show(cur + 1); });
  playButton.addEventListener('click', toggle);
  document.addEventListener('keydown', function (ev) {
    if (ev.altKey || ev.ctrlKey || ev.metaKey || ev.target.tagName === 'SELECT') return;
    var by = ev.shiftKey ? 10 : 1;
    switch (ev.key) {
    case 'ArrowRight': case 'ArrowDown': pause(); show(cur + by); break;
    case 'ArrowLeft': case 'ArrowUp': pause(); show(cur - by); break;
    case 'Home': pause(); show(0); break;
    case 'End': pause(); show(n - 1); break;
    case ' ': toggle(); break;
    default: return;
    }
    ev.preventDefault(); /* the slider and buttons would act on it a second time */
  });
  window.addEventListener('hashchange', function () { pause(); show(fromHash()); });

  var plot = lossPlot($('bpv-plot'));
  show(fromHash());
})();
