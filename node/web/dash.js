/*
 * dash.js - the dashboard page (docs/dashboard.md).
 *
 * The admin's key is opened here, in the browser, with libsodium compiled
 * to WebAssembly: the key file is read from disk by the page, the
 * passphrase goes through Argon2id into the secretbox key, and the
 * decrypted Ed25519 key stays in this page's memory until sign-out, session
 * expiry or the page closes.  Nothing of it is ever sent: the node gets a
 * signed challenge to open a session and, for a decision, the statement it
 * served with the admin's signature appended.
 *
 * What the bundle page shows of the images, labels and step sizes is
 * decoded from the very statement bytes that are hashed and signed
 * (dash-proto.js); the daemon's JSON view adds its own record (state,
 * deliveries, the privacy picture it drew), and the page says so when the
 * two disagree.  Every piece of text from the node goes into the page as
 * text (textContent), never as markup.
 */
'use strict';

(function () {
  const P = window.SlddProto;
  let sodium = null;
  let session = null; /* {node, admin, csrf} */
  let key = null;     /* {name, node, pk, sk}: in memory only */

  /* ---- small DOM helpers: text only */

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (v !== false && v !== null && v !== undefined) e.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      e.appendChild(typeof kid === 'string' || typeof kid === 'number' ?
        document.createTextNode(String(kid)) : kid);
    }
    return e;
  }
  const $ = (id) => document.getElementById(id);

  function status(msg, isError) {
    const s = $('status');
    s.textContent = msg || '';
    s.className = isError ? 'error' : '';
  }

  function when(unix) {
    if (!unix) return '-';
    return new Date(unix * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  }
  const fmt = (x, d) => (typeof x === 'number' && isFinite(x) ? x.toFixed(d) : '-');

  function verdictBadge(v) {
    const known = ['pass', 'warn', 'block'];
    return el('span', { class: 'verdict ' + (known.includes(v) ? v : 'other') },
      (v || 'not audited').toUpperCase());
  }

  /* ---- the node's API */

  class HttpError extends Error {
    constructor(st, text) { super(text.trim() || ('HTTP ' + st)); this.status = st; }
  }

  async function call(method, path, body, opts) {
    const headers = {};
    if (opts && opts.background) headers['X-Background'] = '1';
    if (method === 'POST') {
      headers['X-CSRF-Token'] = session ? session.csrf : '';
      headers['Content-Type'] = (opts && opts.type) || 'text/plain';
    }
    const r = await fetch('/api' + path, { method, body, headers, credentials: 'same-origin',
      cache: 'no-store' });
    if (r.status === 401 && path !== '/session') {
      signedOut('Your session ended (idle too long or signed out). Sign in again.');
      throw new HttpError(401, 'not signed in');
    }
    if (!r.ok) throw new HttpError(r.status, await r.text());
    const as = (opts && opts.as) || 'json';
    if (as === 'bytes') return new Uint8Array(await r.arrayBuffer());
    return as === 'text' ? r.text() : r.json();
  }

  /* ---- signing in */

  function wipeKey() {
    if (key && sodium) sodium.memzero(key.sk);
    key = null;
  }

  function signedOut(msg) {
    wipeKey();
    session = null;
    $('nav').hidden = true;
    $('who').hidden = true;
    $('page').hidden = true;
    $('page').replaceChildren();
    $('signin').hidden = false;
    status(msg || '', !!msg);
  }

  async function unlock(text, passphrase) {
    const f = P.parseKeyFile(text);
    const salt = sodium.from_base64(f.salt, sodium.base64_variants.ORIGINAL);
    const nonce = sodium.from_base64(f.nonce, sodium.base64_variants.ORIGINAL);
    const box = sodium.from_base64(f.box, sodium.base64_variants.ORIGINAL);
    const pk = sodium.from_base64(f.public, sodium.base64_variants.ORIGINAL);
    if (salt.length !== sodium.crypto_pwhash_SALTBYTES || pk.length !== 32)
      throw new Error('the key file is damaged');
    const k = sodium.crypto_pwhash(sodium.crypto_secretbox_KEYBYTES, passphrase, salt, f.ops,
      f.mem, sodium.crypto_pwhash_ALG_ARGON2ID13);
    let sk;
    try {
      sk = sodium.crypto_secretbox_open_easy(box, nonce, k);
    } catch (e) {
      throw new Error('wrong passphrase (or a damaged key file): the key did not open');
    } finally {
      sodium.memzero(k);
    }
    if (sk.length !== 64 || !sodium.memcmp(sk.subarray(32), pk)) {
      sodium.memzero(sk);
      throw new Error('the key file is damaged: its secret half does not match its public key');
    }
    return { name: f.name, node: f.node, pk, sk };
  }

  async function signIn(ev) {
    ev.preventDefault();
    const file = $('keyfile').files[0], pass = $('passphrase').value;
    $('signin-button').disabled = true;
    try {
      if (!file) throw new Error('choose your key file');
      status('Unlocking your key in this browser (Argon2id)...');
      await sodium.ready;
      const k = await unlock(await file.text(), pass);
      const ch = await call('GET', '/challenge');
      if (ch.node !== k.node) {
        sodium.memzero(k.sk);
        throw new Error('this key belongs to node ' + k.node + '; this is node ' + ch.node);
      }
      const msg = new TextEncoder().encode('node: ' + ch.node + '\nadmin: ' + k.name +
        '\nchallenge: ' + ch.challenge + '\n');
      const sig = sodium.crypto_sign_detached(P.pae(ch.type, msg), k.sk);
      const body = 'admin: ' + k.name + '\nchallenge: ' + ch.challenge + '\nsignature: ' +
        P.hex(sig) + '\n';
      try {
        session = await call('POST', '/login', body);
      } catch (e) {
        sodium.memzero(k.sk);
        throw e;
      }
      key = k;
      $('passphrase').value = '';
      $('keyfile').value = '';
      showSignedIn();
      status('Signed in as ' + session.admin + '.');
      route();
    } catch (e) {
      status('Sign-in failed: ' + e.message, true);
    } finally {
      $('signin-button').disabled = false;
    }
  }

  function showSignedIn() {
    $('signin').hidden = true;
    $('nav').hidden = false;
    $('who').hidden = false;
    $('who-name').textContent = 'admin ' + session.admin;
    $('node-id').textContent = '- node ' + session.node;
    $('page').hidden = false;
  }

  async function signOut() {
    try { await call('POST', '/logout', ''); } catch (e) { /* signed out anyway */ }
    signedOut('Signed out.');
  }

  /* ---- pages */

  function setNav(name) {
    for (const a of document.querySelectorAll('#nav a'))
      a.className = a.id === 'nav-' + name ? 'active' : '';
  }

  async function route() {
    if (!session) return;
    const h = location.hash || '#/outbound';
    const page = $('page');
    try {
      let m;
      if ((m = /^#\/bundle\/([0-9a-f]{1,32})$/.exec(h))) {
        setNav('outbound');
        await bundlePage(page, m[1]);
      } else if ((m = /^#\/inbound\/([0-9a-f]{1,32})$/.exec(h))) {
        setNav('inbound');
        await inboundBundlePage(page, m[1]);
      } else if (h === '#/inbound') {
        setNav('inbound');
        await inboundPage(page);
      } else if (h === '#/node') {
        setNav('node');
        await window.SlddPages.node(page, call, el);
      } else if (h === '#/audit') {
        setNav('audit');
        await window.SlddPages.audit(page, call, el);
      } else {
        setNav('outbound');
        await outboundPage(page);
      }
    } catch (e) {
      if (e.status !== 401) status(e.message, true);
    }
  }

  async function outboundPage(page) {
    const list = await call('GET', '/v1/bundles');
    const rows = list.filter((b) => b.direction === 'out');
    page.replaceChildren(
      el('h2', {}, 'Outbound bundles'),
      el('p', { class: 'note' }, 'Bundles made here. "pending" waits for an admin decision; ' +
        'open one to see exactly what would leave.'),
      rows.length ? el('table', { id: 'bundles' },
        el('tr', {}, ['Bundle', 'State', 'Recipients', 'Created', 'Size', 'Sender HM']
          .map((t) => el('th', {}, t))),
        rows.map((b) => el('tr', {},
          el('td', {}, el('a', { href: '#/bundle/' + b.id, class: 'hash' }, b.id.slice(0, 12))),
          el('td', {}, b.state),
          el('td', {}, b.audience),
          el('td', {}, when(b.created_unix)),
          el('td', { class: 'num' }, b.payload_size + ' B'),
          el('td', { class: 'num' }, fmt(b.sender_hm, 3)))))
        : el('p', {}, 'No outbound bundles yet.'));
  }

  const metricCells = (m) => (m ? [m.accuracy, m.sensitivity, m.specificity, m.hm, m.auc]
    .map((v) => el('td', { class: 'num' }, fmt(v, 3))) : [el('td', {}, '-')]);

  async function inboundPage(page) {
    const list = await call('GET', '/v1/bundles');
    const rows = list.filter((b) => b.direction === 'in');
    page.replaceChildren(
      el('h2', {}, 'Received bundles'),
      el('p', { class: 'note' }, 'Bundles other hospitals sent here. Each was verified on ' +
        'arrival (the sender\'s node signature and its admins\' approvals, against the keys ' +
        'pinned for that hospital); "available" means it was rebuilt and evaluated on our ' +
        'own labelled images.'),
      rows.length ? el('table', { id: 'inbound' },
        el('tr', {}, ['Bundle', 'From', 'State', 'Created', 'HM here', 'Sender\'s HM']
          .map((t) => el('th', {}, t))),
        rows.map((b) => el('tr', {},
          el('td', {}, el('a', { href: '#/inbound/' + b.id, class: 'hash' }, b.id.slice(0, 12))),
          el('td', {}, b.sender), el('td', {}, b.state), el('td', {}, when(b.created_unix)),
          el('td', { class: 'num' }, fmt(b.local_hm, 3)),
          el('td', { class: 'num' }, fmt(b.sender_hm, 3)))))
        : el('p', {}, 'Nothing received yet.'));
  }

  async function inboundBundlePage(page, id) {
    const view = await call('GET', '/v1/bundles/' + id);
    const payload = await call('GET', '/v1/bundles/' + view.id + '/payload', null,
      { as: 'bytes' });
    await sodium.ready;
    const sha = P.hex(sodium.crypto_hash_sha256(payload));
    const b = P.parseBundle(payload);
    const ev = view.evaluation;
    page.replaceChildren(el('div', {},
      el('h2', {}, 'Received bundle ' + view.id.slice(0, 12) + ' from ' + view.sender),
      el('table', { id: 'inbound-head' },
        row('State', view.state + (view.note ? ' - ' + view.note : '')),
        row('Verification', view.direction === 'in' ? 'accepted on arrival: node signature of ' +
          view.sender + ' and its admins\' approvals valid for the keys pinned for it' : '-'),
        row('Payload SHA-256', el('span', { class: 'hash' }, sha + (sha === view.payload_sha256 ?
          ' (as stored)' : ' - DIFFERS from the record ' + view.payload_sha256))),
        row('Sequence', String(view.sequence)),
        row('Sender\'s privacy verdict', verdictBadge(b.privacy ? b.privacy.verdict : ''))),
      el('h3', {}, 'Evaluation: the rebuilt model on our own labelled images, beside the ' +
        'sender\'s claim'),
      el('table', { id: 'evaluation' },
        el('tr', {}, ['', 'Accuracy', 'Sensitivity', 'Specificity', 'HM', 'AUC']
          .map((t) => el('th', {}, t))),
        el('tr', {}, el('th', {}, 'here' + (ev ? ' (' + ev.split + ', ' + ev.images +
          ' images)' : '')), metricCells(ev)),
        el('tr', {}, el('th', {}, 'sender'), metricCells(b.metrics))),
      view.state === 'available' ? detectSection(view) : null,
      el('h2', {}, 'The received images (' + b.images.length + ') with soft labels and step sizes'),
      imageGrid(b, b.privacy),
      ...modelSection(b)));
  }

  /* Detection with this bundle's model on a PNG chosen on the admin's
   * computer: uploaded to the node (16 MiB at most), which answers with its
   * heat map and the result in headers; the map is decoded here into a
   * canvas (no image URL: the CSP allows images from the node only). */
  function detectSection(view) {
    const file = el('input', { type: 'file', id: 'detect-file', accept: 'image/png' });
    const out = el('p', { id: 'detect-result' });
    const map = el('div', { id: 'detect-map', class: 'detect-map' });
    const run = async () => {
      const f = file.files[0];
      out.className = '';
      if (!f) { out.textContent = 'Choose a PNG image first.'; return; }
      go.disabled = true;
      out.textContent = 'Running detection on the node...';
      map.replaceChildren();
      try {
        const r = await fetch('/api/v1/inbound/' + view.id + '/detect', { method: 'POST',
          body: await f.arrayBuffer(), credentials: 'same-origin', cache: 'no-store',
          headers: { 'X-CSRF-Token': session ? session.csrf : '', 'Content-Type': 'image/png',
            'X-Sldd-Image-Name': f.name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64) } });
        if (r.status === 401) signedOut('Your session ended. Sign in again.');
        if (!r.ok) throw new HttpError(r.status, await r.text());
        const dec = r.headers.get('X-Sldd-Decision') || '?', rv = Number(r.headers.get('X-Sldd-R'));
        const pn = (r.headers.get('X-Sldd-Patches') || '- - -').split(' ');
        const bmp = await createImageBitmap(await r.blob());
        const cv = el('canvas', { width: bmp.width, height: bmp.height, id: 'detect-canvas' });
        cv.getContext('2d').drawImage(bmp, 0, 0);
        out.textContent = f.name + ': decision ' + dec.toUpperCase() + (Number.isFinite(rv) ?
          ', r = ' + rv.toFixed(4) + ' (gastritis when r >= 0.4)' : '') + '; patches classified ' +
          'I ' + pn[0] + ', N ' + pn[1] + ', P ' + pn[2] + '. Recorded in the audit log with ' +
          'the image\'s SHA-256.';
        map.replaceChildren(cv);
      } catch (e) {
        out.textContent = 'Refused: ' + e.message;
        out.className = 'check-bad';
      }
      go.disabled = false;
    };
    const go = el('button', { type: 'button', id: 'detect-run', onclick: run },
      'Run detection with this bundle\'s model');
    return [el('h2', { id: 'detect-head' }, 'Detection on a local image'),
      el('p', { class: 'note' }, 'Choose a whole image (PNG) on your computer: the node runs ' +
        'the model rebuilt from this bundle over its patches and draws the heat map. Each patch ' +
        'is classified I (irrelevant), N (negative) or P (positive for gastritis); r = P / ' +
        '(N + P), and the image is positive when r >= 0.4 (undetermined without N or P ' +
        'patches).'),
      el('div', { class: 'detect' }, file, ' ', go), out, map];
  }

  /* One image (C x H x W, normalised values) on a canvas, each image
   * stretched from its own min..max to black..white, as the node's own
   * pictures draw them; shown at least 220 px wide. */
  function toCanvas(img, b) {
    const { c, h, w } = b.model, n = h * w;
    const cv = el('canvas', { width: w, height: h });
    const px = Math.max(220, Math.min(w, 320));
    cv.style.width = px + 'px';
    cv.style.height = Math.round(px * h / w) + 'px';
    if (w > 64) cv.className = 'smooth';
    const ctx = cv.getContext('2d');
    const out = ctx.createImageData(w, h);
    let lo = Infinity, hi = -Infinity;
    for (let k = 0; k < c * n; k++) { lo = Math.min(lo, img[k]); hi = Math.max(hi, img[k]); }
    for (let k = 0; k < n; k++) {
      for (let ch = 0; ch < 3; ch++) {
        const v = img[(c === 3 ? ch : 0) * n + k];
        out.data[k * 4 + ch] = hi > lo ? Math.round(255 * (v - lo) / (hi - lo)) : 0;
      }
      out.data[k * 4 + 3] = 255;
    }
    ctx.putImageData(out, 0, 0);
    return cv;
  }

  function softLabels(b, i) {
    const k = b.model.classes, y = b.labels.slice(i * k, i * k + k);
    if (b.model.labelParam === 2) return { raw: true, p: y };
    const mx = Math.max(...y), e = y.map((v) => Math.exp(v - mx)), z = e.reduce((a, v) => a + v, 0);
    return { raw: false, p: e.map((v) => v / z) };
  }

  function labelBars(b, i) {
    const { raw, p } = softLabels(b, i);
    return p.map((v, j) => {
      const fill = el('div', { class: 'fill' });
      fill.style.width = (raw ? 0 : Math.round(100 * Math.min(1, Math.max(0, v)))) + '%';
      return el('div', { class: 'bar' },
        el('span', { class: 'name' }, b.classNames[j] || 'class ' + j),
        el('span', { class: 'track' }, fill),
        el('span', { class: 'val' }, raw ? fmt(v, 2) : (100 * v).toFixed(0) + '%'));
    });
  }

  function stepSizes(b, i) {
    const s = Math.floor(i / b.perStep), out = [];
    for (let e = 0; e < b.epochs; e++) out.push(b.stepSizes[e * b.steps + s]);
    return 'step ' + (s + 1) + ' of ' + b.steps + ', step size ' +
      out.map((v) => fmt(v, 4)).join(', ');
  }

  function imageGrid(b, audit) {
    return el('div', { class: 'grid', id: 'images' }, b.images.map((img, i) => {
      const a = audit && audit.images.find((x) => x.index === i);
      const tile = el('div', { class: 'tile' },
        el('div', { class: 'cap' }, 'image ' + (i + 1) + ' of ' + b.images.length),
        toCanvas(img, b),
        labelBars(b, i),
        el('div', {}, stepSizes(b, i)),
        a ? el('div', {}, 'held-out closer ' + (100 * a.heldout).toFixed(1) + '%, SSIM ' +
          fmt(a.ssim, 3)) : null);
      tile.style.width = (Math.max(220, Math.min(b.model.w, 320)) + 16) + 'px';
      return tile;
    }));
  }

  /* The release's differential privacy and the node's ledger (docs/privacy.md) */
  function ledgerRows(l) {
    const eps = (x, u) => (x === null || x === undefined || u) ? 'unbounded (no epsilon can be ' +
      'stated)' : fmt(x, 3);
    return [
      ['Differential privacy', l.dp ? 'epsilon ' + fmt(l.epsilon, 3) + ' at delta ' +
        Number(l.epsilon_delta).toExponential(0) + ' per training ' + (l.record_unit === 'image' ? 'patch' : 'sample') +
        ' (noise multiplier ' + fmt(l.noise_multiplier, 4) + ', sampling rate ' +
        fmt(l.sampling_rate, 4) + ', ' + l.iterations + ' iterations)'
        : 'none: made without differential privacy'],
      ['Spent before', l.prior_releases + ' approved release(s) share its ' + l.records +
        ' training ' + l.record_unit + '(s): epsilon ' + eps(l.spent_epsilon,
          l.prior_without_dp > 0)],
      ['With this release', 'epsilon ' + eps(l.total_epsilon, l.unbounded) + ' (delta ' +
        Number(l.delta).toExponential(0) + ')'],
      ['Budget', l.budget_epsilon === null ? 'none set (node.conf max-epsilon)'
        : fmt(l.budget_epsilon, 3) + (l.over_budget ? ': OVER BUDGET' : ', ' +
          fmt(l.left_epsilon, 3) + ' left after this one')],
    ];
  }

  function privacySection(id, b, view) {
    const pr = b.privacy, extra = [];
    /* figures of a privacy accountant, when the node's view carries them */
    const walk = (o, pre) => {
      for (const [k, v] of Object.entries(o || {})) {
        if (k === 'ledger') continue; /* its own table below */
        if (v && typeof v === 'object' && !Array.isArray(v)) walk(v, pre + k + '.');
        else if (/epsilon|delta|budget|^dp_/i.test(k)) extra.push([pre + k, String(v)]);
      }
    };
    walk(view, '');
    if (view.ledger) extra.unshift(...ledgerRows(view.ledger));
    for (const [k, v] of b.hyperParams)
      if (/epsilon|delta|budget|^dp_/i.test(k)) extra.push([k + ' (in the payload)', v]);
    return [
      el('h2', {}, 'Privacy evidence'),
      pr && pr.verdict === 'not-audited' ? el('p', {}, 'Verdict ', verdictBadge(pr.verdict),
        view.ledger && view.ledger.dp ? ' - not in the payload: a differentially private ' +
        'release carries no audit of its training data. The node\'s local audit, for you ' +
        'only, is the line below and the picture.' : ' - the audit could not run.') :
      pr ? el('p', {}, 'Verdict ', verdictBadge(pr.verdict), ' - membership-inference AUC ',
        fmt(pr.membershipAuc, 3), ' (0.5 = chance)') : el('p', {}, 'Not audited.'),
      pr ? el('p', { class: 'note' }, 'Policy: ' + (pr.policy || '(none stated)')) : null,
      view.note ? el('p', { class: 'note' }, view.note) : null,
      pr && pr.images.length ? el('table', { id: 'privacy-table' },
        el('tr', {}, ['Image', 'Nearest training patch (RMS)', 'Held-out closer',
          'Best SSIM'].map((t) => el('th', {}, t))),
        pr.images.map((a) => el('tr', {},
          el('td', {}, 'image ' + (a.index + 1)),
          el('td', { class: 'num' }, fmt(a.distance, 4)),
          el('td', { class: 'num' }, (100 * a.heldout).toFixed(1) + '%'),
          el('td', { class: 'num' }, fmt(a.ssim, 3))))) : null,
      pr && pr.images.length ? el('p', { class: 'note' }, '"Held-out closer" is the share of held-out patches ' +
        '(never trained on) whose own nearest training patch is closer than this image is. ' +
        'Near 0% means the image sits closer to a training patch than real unseen patches do.')
        : null,
      extra.length ? el('table', { id: 'dp' }, extra.map(([k, v]) =>
        el('tr', {}, el('th', {}, k), el('td', {}, v)))) : null,
      view.privacy_picture ? el('div', { class: 'evidence' },
        el('h3', {}, 'Each synthetic image beside its nearest training patches ' +
          '(by pixel distance and by SSIM), drawn by the node'),
        el('img', { src: '/api/v1/bundles/' + id + '/privacy.png',
          alt: 'nearest training patches of each synthetic image' })) : null,
    ];
  }

  function modelSection(b) {
    const m = b.model, mt = b.metrics;
    return [
      el('h2', {}, 'Model and sender metrics'),
      el('table', { id: 'model' },
        el('tr', {}, el('th', {}, 'Model'), el('td', {}, m.arch + (m.bn ? ' with batch norm' : '') +
          (m.depth ? ', depth ' + m.depth : '') + (m.width ? ', width ' + m.width : ''))),
        el('tr', {}, el('th', {}, 'Input'), el('td', {}, m.c + ' x ' + m.h + ' x ' + m.w +
          ', ' + m.classes + ' classes' + (b.classNames.length ? ' (' + b.classNames.join(', ') +
          ')' : ''))),
        el('tr', {}, el('th', {}, 'Initial weights (theta 0)'), el('td', {}, m.initScheme +
          ', seed ' + m.initSeed, el('br'), el('span', { class: 'hash' }, 'SHA-256 ' + m.theta0))),
        el('tr', {}, el('th', {}, 'Distilled set'), el('td', {}, b.steps + ' steps x ' +
          b.perStep + ' images, ' + b.epochs + ' epoch(s); data: ' + (b.dataSource || '-'))),
        b.hyperParams.length ? el('tr', {}, el('th', {}, 'Hyper-parameters'),
          el('td', { id: 'hyper' }, b.hyperParams.map(([k, v]) => k + ' ' + v).join(', ')))
          : null),
      el('h3', {}, 'Sender metrics: the model rebuilt from this bundle on this hospital\'s ' +
        'validation images (what partners will see as our claim)'),
      mt && mt.split === 'none' ? el('p', { id: 'metrics' }, 'None in the payload: a ' +
        'differentially private release carries no statistic of the training data outside ' +
        'the mechanism (the node\'s own figures are in its bundle view, not sent).') :
      mt ? el('table', { id: 'metrics' },
        el('tr', {}, ['Split', 'Accuracy', 'Sensitivity', 'Specificity', 'HM', 'AUC']
          .map((t) => el('th', {}, t))),
        el('tr', {}, el('td', {}, mt.split || '-'), [mt.accuracy, mt.sensitivity,
          mt.specificity, mt.hm, mt.auc].map((v) => el('td', { class: 'num' }, fmt(v, 3)))))
        : el('p', {}, 'No sender metrics.'),
    ];
  }

  async function bundlePage(page, id) {
    status('Loading bundle ' + id + '...');
    const view = await call('GET', '/v1/bundles/' + id);
    const st = await call('GET', '/v1/bundles/' + view.id + '/statement', null, { as: 'bytes' });
    await sodium.ready;
    const s = P.parseStatement(st);
    const sha = P.hex(sodium.crypto_hash_sha256(s.payload));
    const b = P.parseBundle(s.payload);
    const problems = [];
    if (sha !== view.payload_sha256) problems.push('the node\'s view names payload SHA-256 ' +
      view.payload_sha256 + ' but the bytes served hash to ' + sha);
    if (b.bundleId !== view.id) problems.push('the bytes served are bundle ' + b.bundleId);
    if (b.sender !== session.node) problems.push('the bytes served come from ' + b.sender);
    const verdict = b.privacy ? b.privacy.verdict : '';
    page.replaceChildren(el('div', {},
      el('h2', {}, 'Bundle ' + view.id.slice(0, 12) + ' - ' + view.state),
      el('div', { class: 'leaves', id: 'leaves' },
        el('h3', {}, 'Exactly what leaves (computed in this browser from the bytes downloaded)'),
        el('table', {},
          row('Payload SHA-256', el('span', { class: 'hash', id: 'sha' }, sha)),
          row('Same as the node\'s record', problems.length ? el('span',
            { class: 'check-bad', id: 'match' }, 'NO: ' + problems.join('; ')) :
            el('span', { class: 'check-ok', id: 'match' }, 'yes')),
          row('Size', s.payload.length + ' bytes of payload (' + st.length +
            ' with signatures)'),
          row('Recipients', el('span', { id: 'recipients' }, b.audience.join(', '))),
          row('Bundle id', el('span', { class: 'hash' }, b.bundleId)),
          row('Created / expires', when(b.created) + ' / ' + when(b.expires) + ', sequence ' +
            b.sequence),
          row('Privacy verdict', verdictBadge(verdict)))),
      el('p', { class: 'note' }, 'Look at the images and the privacy evidence below; your ' +
        'decision is at the end of the page.'),
      el('h2', {}, 'The distilled images (' + b.images.length + ') with soft labels and step sizes'),
      el('p', { class: 'note' }, 'Decoded in this browser from the payload above; each image ' +
        'is stretched from its own darkest to its brightest value.'),
      imageGrid(b, b.privacy),
      privacySection(view.id, b, view),
      modelSection(b),
      decisionsSection(view),
      decisionBox(view, st, sha, verdict, problems)));
    status('');
  }

  const row = (k, v) => el('tr', {}, el('th', {}, k), el('td', {}, v));

  function decisionsSection(view) {
    const ap = view.approvals || [], dl = view.deliveries || [];
    return [
      el('h2', {}, 'Decisions and deliveries'),
      ap.length ? el('table', { id: 'approvals' },
        el('tr', {}, ['Admin', 'Decision', 'Time'].map((t) => el('th', {}, t))),
        ap.map((a) => el('tr', {}, el('td', {}, a.admin), el('td', {}, a.decision),
          el('td', {}, when(a.time_unix))))) : el('p', {}, 'No decision yet.'),
      dl.length ? el('table', { id: 'deliveries' },
        el('tr', {}, ['Recipient', 'State', 'Attempts', 'Envelope', 'Signed receipt',
          'Last error', ''].map((t) => el('th', {}, t))),
        dl.map((d) => el('tr', {}, el('td', {}, d.peer),
          el('td', { class: d.state === 'refused' ? 'check-bad' : '' }, d.state),
          el('td', { class: 'num' }, d.attempts), el('td', { class: 'num' }, d.envelope_size + ' B'),
          el('td', {}, d.receipt ? when(d.delivered_unix) : '-'),
          el('td', {}, d.last_error || ''), el('td', {}, resendButton(view, d))))) : null,
      dl.some((d) => d.state === 'refused' && d.envelope_size) ? el('p', { class: 'note' },
        'A recipient refused this bundle (its reason is under Last error). Once that is fixed ' +
        'on its side, Re-send sends it the same envelope that was sealed at approval: nothing ' +
        'is signed again, and the node refuses if its policy or budget no longer allow the ' +
        'release or the recipient has since taken a later bundle.') : null,
      el('p', { id: 'resend-result' }),
    ];
  }

  /* A delivery the peer refused, once the cause is fixed: the node sends the
   * envelope sealed at approval again (no new signature; the node checks
   * the policy, the budget and the peer's sequence order first). */
  function resendButton(view, d) {
    if (d.state !== 'refused' || !d.envelope_size) return '';
    const b = el('button', { type: 'button', class: 'resend', 'data-peer': d.peer,
      onclick: async () => {
        b.disabled = true;
        const out = $('resend-result');
        try {
          const r = await call('POST', '/v1/bundles/' + view.id + '/resend?peer=' +
            encodeURIComponent(d.peer), '', { as: 'text' });
          if (location.hash === '#/bundle/' + view.id) await route();
          const o = $('resend-result');
          if (o) { o.textContent = r.trim(); o.className = 'check-ok'; }
        } catch (e) {
          out.textContent = 'Refused: ' + e.message;
          out.className = 'check-bad';
          b.disabled = false;
        }
      } }, 'Re-send to ' + d.peer);
    return b;
  }

  function decisionBox(view, st, sha, verdict, problems) {
    const pending = view.state === 'pending';
    const overBudget = !!(view.ledger && view.ledger.over_budget);
    const blocked = verdict === 'block' || overBudget;
    const reason = el('textarea', { id: 'reason', maxlength: 400,
      placeholder: 'Reason (recorded in the audit log; required to reject)' });
    const out = el('p', { id: 'decision-result' });
    const go = async (decision) => {
      if (decision === 'reject' && !reason.value.trim()) {
        out.textContent = 'Give a reason to reject.';
        return;
      }
      for (const bt of box.querySelectorAll('button')) bt.disabled = true;
      try {
        out.textContent = 'Signing in this browser...';
        const r = await decide(view.id, st, sha, decision, reason.value.trim());
        status('Decision recorded.');
        if (location.hash === '#/bundle/' + view.id) await route();
        /* the page is drawn again from the node's new state; keep its answer */
        const o = $('decision-result');
        if (o) o.textContent = r.trim();
      } catch (e) {
        out.textContent = 'Refused: ' + e.message;
        out.className = 'check-bad';
        for (const bt of box.querySelectorAll('button')) bt.disabled = false;
      }
    };
    const box = el('div', { class: 'decide' + (blocked ? ' blocked' : ''), id: 'decide',
      'data-bundle': view.id },
      el('h3', {}, 'Your decision, signed with your key as admin ' + session.admin),
      blocked ? el('p', { class: 'check-bad' }, (overBudget ? 'OVER the privacy budget'
        : 'BLOCKED by the privacy policy') + ': this bundle cannot be approved. You can still ' +
        'reject it.') : null,
      problems.length ? el('p', { class: 'check-bad' }, 'The node\'s record and the bytes ' +
        'disagree: do not approve.') : null,
      pending ? [reason,
        el('button', { class: 'approve', id: 'approve', type: 'button',
          disabled: blocked || problems.length > 0, onclick: () => go('approve') },
        'Approve: sign SHA-256 ' + sha.slice(0, 16) + '...'),
        el('button', { class: 'reject', id: 'reject', type: 'button',
          onclick: () => go('reject') }, 'Reject')]
        : el('p', {}, 'This bundle is ' + view.state + '; no decision is open.'),
      out);
    return box;
  }

  /* Sign the decision over SHA-256 of the payload in st (recomputed here)
   * and post the statement with the signature appended. */
  async function decide(id, st, sha, decision, reason) {
    if (!key) throw new Error('your key is not unlocked; sign in again');
    const d = P.signDecision(sodium, st, key, decision, Math.floor(Date.now() / 1000));
    if (d.sha !== sha) throw new Error('the bytes changed since they were shown');
    const signed = d.signed;
    const q = reason ? '?reason=' + encodeURIComponent(reason) : '';
    return call('POST', '/v1/bundles/' + id + '/decision' + q, signed,
      { type: 'application/octet-stream', as: 'text' });
  }

  /* ---- start */

  async function start() {
    $('signin-form').addEventListener('submit', signIn);
    $('signout').addEventListener('click', signOut);
    window.addEventListener('hashchange', route);
    window.addEventListener('pagehide', wipeKey);
    sodium = window.sodium;
    try {
      session = await call('GET', '/session');
    } catch (e) {
      session = null;
    }
    if (session && !session.admin) session = null;
    if (session && !key) {
      /* a reload keeps the session but not the key: read-only until the
       * admin signs in again */
      await call('POST', '/logout', '').catch(() => {});
      session = null;
    }
    signedOut('');
  }

  document.addEventListener('DOMContentLoaded', start);
})();
