// The dashboard: figures pushed over SignalR every second by the instance it is connected to (live.js), redrawn as
// figures, sparklines and tables. It reads /dashboard/data once on load, and every two seconds while the push is down.
(() => {
  'use strict';
  const $ = id => document.getElementById(id);
  const fmt = (v, digits = 0) => v === null || v === undefined ? '–' : Number(v).toLocaleString('en', { maximumFractionDigits: digits });
  const text = (id, v) => { const el = $(id); if (el) el.textContent = v; };

  function chart(id, series, label, bad) {
    const svg = $(id);
    if (!svg) return;
    const w = 240, h = 60, pad = 10;
    const lines = series.map((values, i) => {
      const max = Math.max(1e-9, ...values.flat().filter(v => v !== null));
      return { values, max, bad: bad && i === 1 };
    });
    const max = Math.max(...lines.map(l => l.max));
    const n = Math.max(2, ...series.map(s => s.length));
    svg.innerHTML = lines.map(l => {
      const pts = l.values.map((v, i) => v === null ? null : `${(i * w / (n - 1)).toFixed(1)},${(h - 2 - (v / max) * (h - pad - 2)).toFixed(1)}`).filter(p => p);
      return `<polyline class="${l.bad ? 'bad' : ''}" points="${pts.join(' ')}"></polyline>`;
    }).join('') + `<text x="4" y="9">${label} · max ${fmt(max, 1)}</text>`;
  }

  function rows(tableId, items, render) {
    const body = $(tableId).querySelector('tbody');
    body.innerHTML = items.map(render).join('');
  }

  const esc = s => String(s ?? '').replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

  // Figures the server reports as current values (signed-in sessions, queue depth) are charted from the polls seen here.
  const history = { sessions: [], depth: [], running: [] };
  const remember = (key, value) => { history[key].push(value); if (history[key].length > 120) history[key].shift(); };
  const count = (q, state) => q.capped && q[state] >= q.cap ? `≥ ${fmt(q.cap)}` : fmt(q[state]);
  const requeued = new Set();

  async function refresh() {
    try {
      const r = await fetch('/dashboard/data', { headers: { Accept: 'application/json' } });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      render(await r.json());
    } catch (e) {
      text('updated-at', `failed (${e.message}); retrying`);
    }
  }

  function render(d) {
    const last = d.latest || {};
    text('backend-cache', d.backends.cache);
    text('backend-sessions', d.backends.sessions);
    text('backend-ratelimit', d.backends.rateLimit);
    text('backend-queue', d.backends.queue);
    text('topology-pooler', d.topology.pooler);
    text('reads-from-cache', d.topology.readsFrom.cache);
    text('reads-from-sessions', d.topology.readsFrom.sessions);
    text('reads-from-ratelimit', d.topology.readsFrom.rateLimit);
    text('reads-from-queue', d.topology.readsFrom.queue);
    rows('replicas', d.topology.replicas.length ? d.topology.replicas : [null], r => r === null
      ? '<tr><td colspan="3">none configured</td></tr>'
      : `<tr><td>${esc(r.host)}</td><td>${r.available ? 'streaming' : esc('unavailable: ' + (r.error || ''))}</td><td>${r.lagSeconds === null || r.lagSeconds === undefined ? '–' : fmt(r.lagSeconds, 2) + ' s'}</td></tr>`);
    const gets = d.totals.cacheHits + d.totals.cacheMisses;
    const s = d.series;
    text('cache-hit-ratio', gets ? `${(100 * d.totals.cacheHits / gets).toFixed(1)} %` : '–');
    text('cache-ops', fmt(last.cacheOpsPerSecond, 1));
    text('cache-near-ratio', gets ? `${(100 * d.totals.cacheNearHits / gets).toFixed(1)} %` : '–');
    const lags = s.filter(p => p.invalidationLagP50Ms !== null && p.invalidationLagP50Ms !== undefined);
    text('cache-invalidation-lag', lags.length ? `${fmt(lags[lags.length - 1].invalidationLagP50Ms, 2)} ms` : '–');
    text('sessions-active', fmt(d.signedInSessions));
    text('session-loads', fmt(last.sessionLoadsPerSecond, 1));
    text('ratelimit-accepted', fmt(d.totals.accepted));
    text('ratelimit-rejected', fmt(d.totals.rejected));
    text('jobs-per-second', fmt(last.jobsPerSecond, 1));
    text('job-wait-p50', last.jobWaitP50Ms === null || last.jobWaitP50Ms === undefined ? '–' : `${fmt(last.jobWaitP50Ms, 1)} ms`);
    remember('sessions', d.signedInSessions);
    remember('depth', d.queues.reduce((sum, q) => sum + q.available + q.scheduled, 0));
    remember('running', d.queues.reduce((sum, q) => sum + q.running, 0));
    chart('chart-cache-ops', [s.map(p => p.cacheOpsPerSecond)], 'cache ops/s');
    chart('chart-cache-hits', [s.map(p => p.cacheHitRatio === null ? null : 100 * p.cacheHitRatio), s.map(p => p.nearHitRatio === null ? null : 100 * p.nearHitRatio)], 'hit / near-hit ratio % per s', true);
    chart('chart-sessions', [history.sessions], 'signed-in sessions');
    chart('chart-depth', [history.depth, history.running], 'waiting / running jobs', true);
    chart('chart-session-loads', [s.map(p => p.sessionLoadsPerSecond)], 'session loads/s');
    chart('chart-ratelimit', [s.map(p => p.acceptedPerSecond), s.map(p => p.rejectedPerSecond)], 'accepted / rejected per s', true);
    chart('chart-jobs', [s.map(p => p.jobsPerSecond)], 'jobs/s');
    chart('chart-wait', [s.map(p => p.jobWaitP50Ms)], 'enqueue→start p50 ms');
    rows('queue-depth', d.queues, q => `<tr data-queue="${esc(q.queue)}"><td>${esc(q.queue)}</td><td class="available">${count(q, 'available')}</td><td class="scheduled">${count(q, 'scheduled')}</td><td class="running">${count(q, 'running')}</td><td class="dead">${count(q, 'dead')}</td></tr>`);
    rows('dead-jobs', d.dead, j => `<tr class="dead-job" data-job-id="${j.id}"><td>${j.id}</td><td>${esc(j.queue)}</td><td>${esc(j.kind)}</td><td>${j.attempts}</td><td>${esc(j.error)}</td><td><button type="button" class="requeue" data-job-id="${j.id}"${requeued.has(String(j.id)) ? ' disabled' : ''}>Requeue</button></td></tr>`);
    rows('recent-orders', d.orders, o => `<tr data-order-id="${o.id}"><td>${o.id}</td><td>${esc(o.user)}</td><td>${esc(o.total)}</td><td class="confirmed ${o.confirmed ? 'done' : 'pending'}">${o.confirmed ? 'done' : 'pending'}</td><td class="invoiced ${o.invoiced ? 'done' : 'pending'}">${o.invoiced ? 'done' : 'pending'}</td></tr>`);
    text('updated-at', new Date(d.updatedAt).toLocaleTimeString('en-GB'));
  }

  // Posts JSON and returns { ok, body }; a reply that is not JSON (a 429 or 500 page) becomes { error: status text }.
  async function post(url, body) {
    const r = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    let d;
    try { d = await r.json(); } catch { d = { error: `HTTP ${r.status}` }; }
    return { ok: r.ok, body: d };
  }

  $('load').addEventListener('click', async e => {
    e.target.disabled = true;
    try {
      const r = await post('/dashboard/load', {});
      text('load-result', r.ok ? `${fmt(r.body.enqueued)} enqueued` : r.body.error);
    } finally {
      e.target.disabled = false;
    }
  });

  $('dead-jobs').addEventListener('click', async e => {
    const id = e.target.dataset && e.target.dataset.jobId;
    if (!id || requeued.has(id)) return;
    requeued.add(id);
    e.target.disabled = true;
    const r = await post('/dashboard/requeue', { id: Number(id) });
    if (!r.ok) text('load-result', r.body.error);
  });

  $('api-burst').addEventListener('click', async e => {
    const n = Number(e.target.dataset.count);
    const counts = {};
    let rejected = null;
    for (let i = 0; i < n; i++) {
      const r = await fetch('/api/products');
      counts[r.status] = (counts[r.status] || 0) + 1;
      if (r.status === 429 && !rejected) {
        rejected = { retryAfter: r.headers.get('Retry-After'), rateLimit: r.headers.get('RateLimit'), policy: r.headers.get('RateLimit-Policy') };
      }
    }
    const el = $('api-burst-result');
    el.dataset.rejected = counts[429] || 0;
    el.dataset.accepted = counts[200] || 0;
    el.textContent = Object.entries(counts).map(([s, c]) => `${c} × ${s}`).join(', ')
      + (rejected ? `. First 429: Retry-After ${rejected.retryAfter} s, RateLimit ${rejected.rateLimit}, RateLimit-Policy ${rejected.policy}` : '');
  });

  // Pushed figures; what happens on any instance (orders placed, products edited) goes to the activity list.
  let lastPush = 0;
  live.on('dashboard', d => { lastPush = Date.now(); text('dashboard-feed', 'live'); render(d); });
  const activity = (line, instance) => {
    const list = $('activity');
    const item = document.createElement('li');
    item.className = 'activity';
    item.dataset.instance = instance;
    item.textContent = `${new Date().toLocaleTimeString('en-GB')} · instance ${instance}: ${line}`;
    list.prepend(item);
    while (list.children.length > 20) list.lastChild.remove();
  };
  live.on('activity', a => activity(a.text, a.instance));
  live.on('productChanged', c => activity(`${c.name} edited (${c.price})`, c.instance));
  live.onConnected(() => live.invoke('WatchDashboard'));
  live.start();
  refresh();

  // While nothing is pushed (the hub unreachable, or reconnecting), poll, one request at a time.
  (async function fallback() {
    if (Date.now() - lastPush > 3000) {
      text('dashboard-feed', 'polling: no push for 3 s');
      await refresh();
    }
    setTimeout(fallback, 2000);
  })();
})();
