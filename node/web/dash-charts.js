/*
 * dash-charts.js - line charts as inline SVG for the Node page (a job's
 * loss and ROC curves), drawn with the DOM (createElementNS, attributes
 * and classes from dash.css): no markup strings, nothing the CSP forbids,
 * no chart library.  SlddCharts is the one global it defines.
 */
'use strict';

(function () {
  const NS = 'http://www.w3.org/2000/svg';

  function svg(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /* A short label for a tick value. */
  function fmt(v) {
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(1);
    return String(Math.round(v * 1000) / 1000);
  }

  /* points: [[x, y], ...]; opts: title, xLabel, yLabel, x0/x1/y0/y1 (fixed
   * ranges, else from the data), square, diagonal (the chance line of a
   * ROC), xInteger (ticks on whole numbers), markers (a dot per point), id.  Returns an <svg> with
   * role img and the title as its label. */
  function lineChart(points, opts) {
    const W = opts.square ? 360 : 520, H = 300;
    const L = 62, R = 16, T = 34, B = 48;
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    let x0 = opts.x0 ?? Math.min(...xs), x1 = opts.x1 ?? Math.max(...xs);
    let y0 = opts.y0 ?? Math.min(...ys), y1 = opts.y1 ?? Math.max(...ys);
    if (!(x1 > x0)) x1 = x0 + 1;
    if (!(y1 > y0)) { y0 -= 0.5; y1 += 0.5; }
    const px = (x) => L + (x - x0) / (x1 - x0) * (W - L - R);
    const py = (y) => H - B - (y - y0) / (y1 - y0) * (H - T - B);
    const root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H,
      class: 'chart', role: 'img', 'aria-label': opts.title });
    if (opts.id) root.setAttribute('id', opts.id);
    root.append(svg('text', { x: W / 2, y: 20, class: 'chart-title', 'text-anchor': 'middle' },
      opts.title));
    root.append(svg('rect', { x: L, y: T, width: W - L - R, height: H - T - B,
      class: 'chart-frame' }));
    for (let i = 0; i <= 4; i++) {
      let xv = x0 + (x1 - x0) * i / 4;
      const yv = y0 + (y1 - y0) * i / 4;
      if (opts.xInteger) xv = Math.round(xv); /* iterations: whole numbers only */
      root.append(svg('line', { x1: px(xv), y1: T, x2: px(xv), y2: H - B, class: 'chart-grid' }));
      root.append(svg('line', { x1: L, y1: py(yv), x2: W - R, y2: py(yv), class: 'chart-grid' }));
      root.append(svg('text', { x: px(xv), y: H - B + 16, 'text-anchor': 'middle',
        class: 'chart-tick' }, fmt(xv)));
      root.append(svg('text', { x: L - 6, y: py(yv) + 4, 'text-anchor': 'end',
        class: 'chart-tick' }, fmt(yv)));
    }
    root.append(svg('text', { x: (L + W - R) / 2, y: H - 8, 'text-anchor': 'middle',
      class: 'chart-label' }, opts.xLabel));
    root.append(svg('text', { x: 14, y: (T + H - B) / 2, 'text-anchor': 'middle',
      class: 'chart-label', transform: 'rotate(-90 14 ' + (T + H - B) / 2 + ')' }, opts.yLabel));
    if (opts.diagonal)
      root.append(svg('line', { x1: px(x0), y1: py(y0), x2: px(x1), y2: py(y1),
        class: 'chart-chance' }));
    root.append(svg('polyline', { class: 'chart-line',
      points: points.map((p) => px(p[0]).toFixed(1) + ',' + py(p[1]).toFixed(1)).join(' ') }));
    /* a ROC often runs along the frame: dots keep its points visible */
    if (opts.markers)
      for (const p of points)
        root.append(svg('circle', { cx: px(p[0]).toFixed(1), cy: py(p[1]).toFixed(1), r: 4,
          class: 'chart-dot' }));
    return root;
  }

  window.SlddCharts = { lineChart };
})();
