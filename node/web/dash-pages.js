/*
 * dash-pages.js - the dashboard's Node and Audit pages (read-only views of
 * the admin API, plus a job's cancel; a finished job's loss and ROC curves
 * drawn by dash-charts.js).  Text from the node goes into the page as text
 * only.  SlddPages is the one global it defines.
 */
'use strict';

(function () {
  const when = (u) => (u ? new Date(u * 1000).toISOString().replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC') : '-');

  function table(el, id, head, rows) {
    return el('table', { id }, el('tr', {}, head.map((t) => el('th', {}, t))),
      rows.map((r) => el('tr', {}, r.map((c) => (c instanceof Node ? el('td', {}, c) :
        el('td', {}, c === null || c === undefined ? '-' : String(c)))))));
  }

  let refresh = null;
  let curvesJob = null;          /* the finished job whose curves are shown */
  const curvesCache = new Map(); /* job id -> its curves (a done job's do not change) */

  /* The loss and ROC curves of finished job id (GET /v1/jobs/N/curves). */
  async function curvesSection(id, call, el, bg) {
    if (!curvesCache.has(id)) curvesCache.set(id, await call('GET', '/v1/jobs/' + id +
      '/curves', null, bg));
    const c = curvesCache.get(id), C = window.SlddCharts;
    const box = el('div', { class: 'curves', id: 'curves', 'data-job': id });
    box.append(c.loss.length >= 2 ? C.lineChart(c.loss, { id: 'loss-chart',
      title: 'Distillation loss, job ' + id, xLabel: 'iteration', yLabel: 'loss',
      xInteger: true })
      : el('p', {}, 'No loss curve recorded for job ' + id + '.'));
    box.append(c.roc ? C.lineChart(c.roc.points, { id: 'roc-chart', square: true, diagonal: true,
      markers: true,
      title: 'ROC, job ' + id + ' (AUC ' + c.roc.auc.toFixed(3) + ')', x0: 0, x1: 1, y0: 0,
      y1: 1, xLabel: 'false positive rate (1 - Spe)', yLabel: 'true positive rate (Sen)' })
      : el('p', {}, 'No ROC curve for job ' + id + ' (it needs validation images with and ' +
        'without cancer).'));
    return [el('h2', {}, 'Curves of job ' + id),
      el('p', { class: 'note' }, 'The loss of the distillation as it ran, and the image-level ' +
        'ROC of the model rebuilt from the job\'s bundle on this node\'s validation images ' +
        '(the AUC the bundle page reports as a sender metric). The dashed line is chance.'),
      box];
  }

  function duration(s) {
    s = Math.round(s);
    if (s < 90) return s + ' s';
    if (s < 5400) return Math.round(s / 60) + ' min';
    return Math.floor(s / 3600) + ' h ' + Math.round((s % 3600) / 60) + ' min';
  }

  /* The status route's counts by state ({"pending": 1, ...}). */
  const n = (counts, state) => (counts && typeof counts[state] === 'number' ? counts[state] : 0);
  const sum = (counts) => Object.values(counts || {}).reduce((a, v) => a + (+v || 0), 0);

  /* Cancel for a queued or running job, Curves for a done one. */
  function jobButton(j, active, redraw, call, el) {
    if (active)
      return el('button', { type: 'button', class: 'cancel-button', onclick: async () => {
        await call('POST', '/v1/jobs/' + j.id + '/cancel', '', { as: 'text' });
        await redraw();
      } }, 'Cancel job ' + j.id);
    if (j.state !== 'done') return '';
    return el('button', { type: 'button', class: 'curves-button', 'data-job': j.id,
      onclick: async () => {
        curvesJob = j.id;
        await redraw();
        const c = document.getElementById('curves');
        if (c) c.scrollIntoView({ block: 'center' });
      } }, 'Curves of job ' + j.id);
  }

  /* background: a refresh of the page by itself, which does not count as
   * the admin's use of the session (X-Background) */
  async function node(page, call, el, background) {
    const bg = { background: !!background };
    clearTimeout(refresh);
    const st = await call('GET', '/v1/status', null, bg);
    const peers = await call('GET', '/v1/peers', null, bg);
    const jobs = await call('GET', '/v1/jobs', null, bg);
    const peerRows = peers.map((p) => [p.id, p.url || '(no address)', p.sign_fingerprint,
      p.admins, p.delivered_to, p.received_from]);
    const jobRows = (Array.isArray(jobs) ? jobs : jobs.jobs || []).map((j) => {
      const pct = typeof j.percent === 'number' ? j.percent : null;
      const bar = el('span', { class: 'progress' }, el('span', { class: 'fill' }));
      bar.firstChild.style.width = (pct === null ? 0 : Math.max(0, Math.min(100, pct))) + '%';
      const active = j.state === 'queued' || j.state === 'running';
      const cancel = jobButton(j, active, () => node(page, call, el), call, el);
      return [j.id, j.kind, j.state, el('span', {}, bar, ' ', pct === null ? '' :
        pct.toFixed(0) + '%' + (active && j.eta_seconds ? ', about ' + duration(j.eta_seconds) +
        ' left' : '')), typeof j.loss === 'number' ? j.loss.toFixed(4) : '-',
      j.bundle ? j.bundle.slice(0, 12) : '-', j.error || '', cancel];
    });
    const jobList = Array.isArray(jobs) ? jobs : jobs.jobs || [];
    const done = jobList.filter((j) => j.state === 'done').map((j) => j.id);
    if (!done.includes(curvesJob)) curvesJob = done.length ? Math.max(...done) : null;
    const curves = curvesJob === null ? [] : await curvesSection(curvesJob, call, el, bg);
    page.replaceChildren(
      el('h2', {}, 'Node ' + st.node),
      table(el, 'node-status', ['Pending approval', 'Outbound', 'Inbound', 'Queued deliveries',
        'Refused deliveries', 'Active jobs', 'Audit entries', 'Privacy policy'],
      [[n(st.bundles_out, 'pending'), sum(st.bundles_out), sum(st.bundles_in),
        n(st.deliveries, 'queued'), n(st.deliveries, 'refused'),
        n(st.jobs, 'queued') + n(st.jobs, 'running'), st.audit_entries, st.privacy_policy]]),
      el('h2', {}, 'Peers'),
      table(el, 'peers', ['Peer', 'Address', 'Signing key', 'Admins', 'Bundles delivered to',
        'Bundles received from'], peerRows),
      el('h2', {}, 'Jobs'),
      table(el, 'jobs', ['Job', 'Kind', 'State', 'Progress', 'Loss', 'Bundle', 'Error', ''],
        jobRows), ...curves);
    /* live progress: every 2 s while a job is active and this page is shown */
    if (jobs.some((j) => j.state === 'queued' || j.state === 'running'))
      refresh = setTimeout(() => {
        if (location.hash === '#/node') node(page, call, el, true).catch(() => {});
      }, 2000);
  }

  async function audit(page, call, el) {
    const verify = await call('GET', '/v1/audit/verify', null, { as: 'text' })
      .catch((e) => 'AUDIT LOG DAMAGED: ' + e.message);
    const log = await call('GET', '/v1/audit?limit=500');
    const entries = log;
    const filter = el('input', { type: 'text', id: 'audit-filter',
      placeholder: 'filter: admin, bundle id, action, outcome...' });
    const body = el('div', {});
    const keys = ['seq', 'time', 'actor', 'action', 'bundle', 'peer', 'outcome', 'detail'];
    const draw = () => {
      const f = filter.value.trim().toLowerCase();
      const rows = entries.filter((e) => !f || JSON.stringify(e).toLowerCase().includes(f))
        .reverse().map((e) => keys.map((k) => (k === 'time' ? when(e[k]) :
          k === 'bundle' && e[k] ? String(e[k]).slice(0, 12) : e[k])));
      body.replaceChildren(table(el, 'audit', ['#', 'Time', 'Who', 'Action', 'Bundle', 'Peer',
        'Outcome', 'Detail'], rows));
    };
    filter.addEventListener('input', draw);
    const ok = /audit log intact/.test(verify);
    page.replaceChildren(
      el('h2', {}, 'Audit log'),
      el('p', { id: 'chain', class: ok ? 'check-ok' : 'check-bad' },
        'Hash chain: ' + verify.trim().split('\n').pop()),
      el('div', { class: 'filter' }, filter), body);
    draw();
  }

  window.SlddPages = { node, audit };
})();
