/* xpscale report page: draws the sweep described by the JSON in
 * script element #xpscale-data (its fields: report/web/DATA.md).
 *
 * Every string in the data is untrusted: it reaches the DOM only through
 * textContent / createTextNode / title attributes, and ECharts' HTML
 * tooltips only through echarts.format.encodeHTML. Canvas text (axis names,
 * labels, legends) is drawn, not parsed, so it needs no escaping.
 *
 * Sized for 10,000 trials: the leaderboard renders one page of rows, the
 * learning curves are one flat typed array per status (ECharts' `lines`
 * series in large mode), and no chart animates. When every chart has drawn
 * the page sets window.__xpscaleReady (the tests and measure_render.py wait
 * for it). */
'use strict';

(function () {
  const PAGE_SIZE = 100;
  // Above this many curves in one status, the curves are drawn as one path.
  const LARGE_CURVES = 300;
  // Labels on stop / exploit markers only while they stay readable.
  const MAX_MARKER_LABELS = 150;
  const MAX_FAILURES_SHOWN = 50;
  // Parallel coordinates draw one ECharts element per line: beyond this
  // many trials, this many spread over the ranking (brushing sees all).
  const MAX_PARALLEL_LINES = 2000;
  // The learning curves draw at most about this many points (report.h's
  // kCurvePointBudget; data within it is drawn as it is).
  const CURVE_POINT_BUDGET = 200000;
  const STDERR_LINES = 40;

  const STATUS_ORDER = ['completed', 'running', 'stopped', 'failed', 'queued', 'interrupted', 'lost'];
  const STATUS_COLOURS = {
    completed: '#2e7d32', stopped: '#d4a017', failed: '#c62828', running: '#1565c0',
    queued: '#8c959f', interrupted: '#8e24aa', lost: '#6d4c41',
  };
  const OTHER_COLOUR = '#8c959f';
  // Parallel coordinates: good values dark blue, bad ones red.
  const GOOD_TO_BAD = ['#2c4f9e', '#4a9bc7', '#a6d96a', '#fdae61', '#d7301f'];

  const hasOwn = (o, k) => o != null && typeof o === 'object' && Object.prototype.hasOwnProperty.call(o, k);
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  const arr = (v) => (Array.isArray(v) ? v : []);
  const obj = (v) => (v != null && typeof v === 'object' && !Array.isArray(v) ? v : {});
  const statusColour = (s) => (hasOwn(STATUS_COLOURS, s) ? STATUS_COLOURS[s] : OTHER_COLOUR);
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
  const statusRank = (s) => { const i = STATUS_ORDER.indexOf(s); return i < 0 ? STATUS_ORDER.length : i; };
  const byStatusOrder = (a, b) => statusRank(a) - statusRank(b) || collator.compare(a, b);

  // ---- formatting -------------------------------------------------------

  function truncate(value, n) {
    const s = String(value);
    if (s.length <= n) return s;
    let cut = n - 1;
    const c = s.charCodeAt(cut - 1);
    if (c >= 0xd800 && c <= 0xdbff) cut -= 1; // do not split a surrogate pair
    return s.slice(0, cut) + '\u2026';
  }

  // 12345 -> "12,345" (toLocaleString's first call initialises ICU: slow).
  function fmtInt(n) {
    return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }

  function fmtNum(v) {
    if (!isNum(v)) return '\u2014';
    if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-4 || a >= 1e7)) return Number(v.toPrecision(4)).toExponential();
    return String(Number(v.toPrecision(6)));
  }

  // A parameter value: number | string | bool | null.
  function fmtValue(v) {
    if (v === null || v === undefined) return '\u2014';
    if (typeof v === 'number') return fmtNum(v);
    return String(v);
  }

  function fmtDuration(s) {
    if (!isNum(s)) return '\u2014';
    if (s < 60) return (s < 10 ? s.toFixed(1) : Math.round(s)) + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + String(Math.round(s - m * 60)).padStart(2, '0') + 's';
    const h = Math.floor(m / 60);
    if (h < 48) return h + 'h ' + String(m - h * 60).padStart(2, '0') + 'm';
    return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
  }

  function fmtDate(unix) {
    if (!isNum(unix)) return '\u2014';
    const d = new Date(unix * 1000);
    const p = (n) => String(n).padStart(2, '0');
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' +
      p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
  }

  function fmtRate(bytesPerS) {
    if (!isNum(bytesPerS)) return '\u2014';
    const units = ['B/s', 'kB/s', 'MB/s', 'GB/s', 'TB/s'];
    let v = bytesPerS;
    let u = 0;
    while (Math.abs(v) >= 1000 && u < units.length - 1) { v /= 1000; u += 1; }
    return Number(v.toPrecision(3)) + ' ' + units[u];
  }

  // [lo, hi] around [min, max], rounded outwards to a step of the range.
  function niceBounds(min, max) {
    const range = max - min || Math.abs(max) || 1;
    const step = Math.pow(10, Math.floor(Math.log10(range))) / 2;
    return [Math.floor(min / step) * step, Math.ceil(max / step) * step];
  }

  function fmtPercent(f, digits) {
    return isNum(f) ? (f * 100).toFixed(digits === undefined ? 1 : digits) + '%' : '\u2014';
  }

  function fmtLoader(loader) {
    if (!loader || (!isNum(loader.stall_fraction) && !isNum(loader.bytes_per_s))) return '';
    return 'loader stall ' + fmtPercent(loader.stall_fraction) + ', ' + fmtRate(loader.bytes_per_s);
  }

  // ---- DOM --------------------------------------------------------------

  // h('td', {class: 'num', title: t}, 'text', node): strings become text nodes.
  function h(tag, props, ...kids) {
    const e = document.createElement(tag);
    if (props) {
      for (const k of Object.keys(props)) {
        const v = props[k];
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (k === 'title') e.title = v;
        else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? '' : v);
      }
    }
    for (const kid of kids) {
      if (kid === null || kid === undefined || kid === false) continue;
      e.append(typeof kid === 'string' ? document.createTextNode(kid) : kid);
    }
    return e;
  }

  const byId = (id) => document.getElementById(id);

  // A view with nothing to draw says why, in place of its chart.
  function showEmpty(sectionId, message) {
    const section = byId(sectionId);
    for (const c of section.querySelectorAll('.chart, .axis-key, .toolbar, .table-wrap')) c.hidden = true;
    for (const c of section.querySelectorAll('.chart, .table-wrap')) c.style.display = 'none';
    const p = section.querySelector(':scope > p.empty');
    p.textContent = message;
    p.hidden = false;
  }

  function setNote(sectionId, ...parts) {
    const n = byId(sectionId + '-note');
    if (n) n.replaceChildren(...parts.map((p) => (typeof p === 'string' ? document.createTextNode(p) : p)));
  }

  // A tooltip: a title and [key, value] rows, every piece escaped.
  function tip(title, rows) {
    const esc = echarts.format.encodeHTML;
    let html = '<div style="max-width:440px;white-space:normal;overflow-wrap:anywhere">';
    html += '<b>' + esc(String(title)) + '</b>';
    for (const [k, v] of rows) {
      if (v === undefined || v === null || v === '') continue;
      html += '<br><span style="color:#6e7781">' + esc(truncate(k, 60)) + '</span> ' + esc(truncate(v, 160));
    }
    return html + '</div>';
  }

  // ---- the data ---------------------------------------------------------

  function readData() {
    const node = byId('xpscale-data');
    return JSON.parse(node ? node.textContent : '');
  }

  const isPoint = (p) => Array.isArray(p) && Number.isFinite(p[0]) && Number.isFinite(p[1]);

  // A curve as the page draws it: [step, value] pairs of finite numbers
  // (the data's nulls, from non-finite values, are left out).
  function cleanCurve(c) {
    if (!Array.isArray(c)) return [];
    for (let i = 0; i < c.length; i++) if (!isPoint(c[i])) return c.filter(isPoint);
    return c;
  }

  function buildModel(data) {
    const sweep = obj(data.sweep);
    const trials = arr(data.trials).filter((t) => t && typeof t === 'object' && t.id !== undefined);
    const trialById = new Map();
    for (const t of trials) {
      t.params = obj(t.params);
      trialById.set(t.id, t);
    }
    // Curves are checked when first drawn: 10,000 trials hold up to a
    // million points, most of them only ever drawn from the flat arrays.
    const curvesIn = obj(data.curves);
    const clean = new Map();
    const rawCurve = (id) => {
      const key = String(id);
      return hasOwn(curvesIn, key) && Array.isArray(curvesIn[key]) ? curvesIn[key] : null;
    };
    const curve = (id) => {
      if (!clean.has(id)) clean.set(id, cleanCurve(rawCurve(id)));
      return clean.get(id);
    };
    const metric = typeof sweep.metric === 'string' ? sweep.metric : '';
    const best = data.best_trial;
    return {
      data,
      sweep,
      trials,
      trialById,
      rawCurve,
      curve,
      params: arr(data.params).map(String),
      metric,
      metricLabel: metric || 'the metric',
      maximize: sweep.goal === 'maximize',
      bestId: best !== null && best !== undefined && trialById.has(best) ? best : null,
    };
  }

  function param(t, name) {
    return hasOwn(t.params, name) ? t.params[name] : null;
  }

  // Trials whose value is a result: a best value, and the trial did not
  // fail (a failed trial's early value is none, as in `xpscale report`).
  function scoredTrials(m) {
    return m.trials.filter((t) => isNum(t.best) && t.status !== 'failed');
  }

  // ---- charts -----------------------------------------------------------

  const charts = [];
  const drawn = [];

  function newChart(elementId) {
    const el = byId(elementId);
    const chart = echarts.init(el, null, { renderer: 'canvas' });
    charts.push(chart);
    return chart;
  }

  // setOption, and a promise that settles once the chart has drawn.
  function draw(chart, option) {
    const done = new Promise((resolve) => {
      const f = () => { chart.off('finished', f); resolve(); };
      chart.on('finished', f);
    });
    chart.setOption(option);
    drawn.push(done);
  }

  const BASE = {
    animation: false,
    textStyle: { fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif' },
  };
  const TOOLTIP = {
    confine: true,
    enterable: false,
    borderColor: '#d8dee4',
    textStyle: { fontSize: 12, color: '#1f2328' },
  };
  const TOOLBOX = {
    right: 8,
    top: 0,
    feature: { restore: { title: 'reset zoom' }, saveAsImage: { title: 'save as PNG', pixelRatio: 2 } },
  };

  // ---- state shared by the views ---------------------------------------

  const selection = {
    id: null,
    listeners: [],
    set(id) {
      this.id = this.id === id ? null : id;
      for (const f of this.listeners) f(this.id);
    },
  };

  // ---- header -----------------------------------------------------------

  function renderSummary(m) {
    const name = typeof m.sweep.name === 'string' && m.sweep.name ? m.sweep.name : '';
    document.title = (name ? truncate(name, 80) + ' \u2014 ' : '') + 'xpscale report';
    byId('sweep-name').textContent = name || '(unnamed sweep)';
    byId('sweep-name').title = name;
    byId('live-badge').hidden = !m.data.live;

    const meta = byId('sweep-meta');
    const parts = [];
    const item = (label, value, title) => {
      const s = h('span', { title: title || null }, h('strong', null, label + ' '), value);
      parts.push(s);
    };
    if (m.metric) {
      const mspan = h('span', { id: 'metric-name', title: m.metric }, truncate(m.metric, 80));
      const s = h('span', null, h('strong', null, 'metric '), mspan,
        ' (' + (m.maximize ? 'maximize \u2191' : 'minimize \u2193') + ')');
      parts.push(s);
    } else {
      parts.push(h('span', { id: 'metric-name' }, 'no metric'));
    }
    if (m.sweep.method) item('method', String(m.sweep.method));
    if (m.sweep.scheduler) item('scheduler', String(m.sweep.scheduler));
    if (m.sweep.out_dir) item('out_dir', truncate(m.sweep.out_dir, 80), String(m.sweep.out_dir));
    if (isNum(m.sweep.stores) && m.sweep.stores > 1) item('stores', String(m.sweep.stores) + ' merged');
    if (isNum(m.sweep.created_at)) item('started', fmtDate(m.sweep.created_at));
    item('generated', fmtDate(m.data.generated_at));
    const nodes = [];
    parts.forEach((p, i) => {
      if (i) nodes.push(h('span', { class: 'sep' }, '\u00b7'));
      nodes.push(p);
    });
    meta.replaceChildren(...nodes);
    if (m.sweep.found === false) {
      meta.append(h('br'), 'No store in this out_dir holds a sweep yet.');
    }

    // Counts: from the data when it has them, else from the trials.
    const c = obj(m.data.counts);
    const n = (k) => (isNum(c[k]) ? c[k] : m.trials.filter((t) => t.status === k).length);
    const total = isNum(c.total) ? c.total : m.trials.length;
    const planned = m.sweep.unbounded ? 'unbounded' : isNum(m.sweep.planned) && m.sweep.planned > 0 ? m.sweep.planned : null;
    const chip = (cls, value, label, title) =>
      h('li', { class: cls, title: title || null }, h('span', { class: 'n' }, String(value)), h('span', { class: 'label' }, label));
    byId('counts').replaceChildren(
      chip('done', n('completed') + n('stopped'), 'done', 'completed ' + n('completed') + ', stopped early ' + n('stopped')),
      chip('running', n('running'), 'running'),
      chip('failed', n('failed'), 'failed'),
      chip('pending', n('queued'), 'pending', 'queued'),
      chip('total', total, planned === null ? 'trials' : 'of ' + planned + ' planned'),
    );

    const box = byId('best-trial');
    if (m.bestId === null) {
      let why = 'No best trial yet: no trial has a value of ' + truncate(m.metric, 80) + ' yet.';
      if (!m.metric) why = 'No best trial: the sweep has no metric.';
      else if (!m.trials.length) why = 'No best trial yet: the sweep has no trials.';
      else if (m.trials.every((t) => t.status === 'failed')) why = 'No best trial: every trial failed (a failed trial\u2019s value is no result).';
      box.replaceChildren(h('p', { class: 'headline' }, why));
      return;
    }
    const t = m.trialById.get(m.bestId);
    const headline = h('p', { class: 'headline', id: 'best-headline' },
      'Best trial #' + t.id + ': ' + truncate(m.metric, 80) + ' = ' + fmtNum(t.best) +
      (isNum(t.best_step) ? ' at step ' + t.best_step : '') + ' (' + String(t.status) + ')');
    const dl = h('dl');
    for (const p of m.params) {
      if (!hasOwn(t.params, p)) continue;
      const v = fmtValue(t.params[p]);
      dl.append(h('dt', { title: p }, truncate(p, 48)), h('dd', { title: v.length > 200 ? v : null }, truncate(v, 400)));
    }
    box.replaceChildren(headline, dl);
  }

  // ---- leaderboard ------------------------------------------------------

  function renderLeaderboard(m, hooks) {
    if (!m.trials.length) {
      showEmpty('leaderboard', m.data.sweep && m.sweep.found === false ?
        'No trials: no store in this out_dir holds a sweep yet.' : 'No trials yet: the sweep has not started one.');
      return;
    }
    const trials = m.trials;
    const anyLoader = trials.some((t) => fmtLoader(t.loader));
    const goalDir = m.maximize ? -1 : 1;

    // Columns: key, header, value for sorting, cell writer. The trial's
    // outcome first, then its parameters (a sweep may have dozens).
    const cols = [];
    // dir: the first click's direction (the goal's way for metric values).
    const numCol = (key, label, get, fmt, dir) => cols.push({
      key, label, num: true, get, dir,
      cell: (t, td) => { td.textContent = fmt(get(t), t); },
    });
    cols.push({
      key: 'id', label: '#', num: true, get: (t) => t.id,
      cell: (t, td) => {
        td.append(String(t.id));
        if (t.id === m.bestId) td.append(h('span', { class: 'star', title: 'best trial' }, '\u2605'));
      },
    });
    cols.push({
      key: 'status', label: 'status', get: (t) => String(t.status || ''),
      cell: (t, td) => {
        const s = String(t.status || '');
        td.append(h('span', { class: 'badge ' + (hasOwn(STATUS_COLOURS, s) ? s : '') }, s || '?'));
        if (t.stop && isNum(t.stop.rung)) td.append(' ', h('span', { class: 'missing' }, 'rung ' + t.stop.rung));
      },
    });
    numCol('best', 'best', (t) => (isNum(t.best) ? t.best : null), fmtNum, goalDir);
    numCol('final', 'final', (t) => (isNum(t.final) ? t.final : null), fmtNum, goalDir);
    m.params.forEach((p, i) => {
      cols.push({
        key: 'param:' + i, label: truncate(p, 24), title: p, get: (t) => param(t, p),
        cell: (t, td) => {
          const v = param(t, p);
          const text = fmtValue(v);
          td.textContent = text;
          if (typeof v === 'number') td.className = 'num';
          if (v === null) td.className = 'missing';
          if (text.length > 24 || (typeof v === 'number' && String(v) !== text)) td.title = String(v);
        },
      });
    });
    cols.push({
      key: 'steps', label: 'steps', num: true, get: (t) => (isNum(t.steps) ? t.steps : null),
      cell: (t, td) => {
        td.textContent = isNum(t.steps) ? String(t.steps) : '\u2014';
        if (isNum(t.last_step)) td.title = 'metric reports; last step ' + t.last_step;
      },
    });
    numCol('wall', 'wall time', (t) => (isNum(t.wall_s) ? t.wall_s : null), fmtDuration);
    numCol('retries', 'retries', (t) => (isNum(t.retries) ? t.retries : null), (v) => (v === null ? '\u2014' : String(v)));
    if (anyLoader) {
      cols.push({
        key: 'loader', label: 'loader stall', num: true,
        get: (t) => (t.loader && isNum(t.loader.stall_fraction) ? t.loader.stall_fraction : null),
        cell: (t, td) => {
          const l = t.loader;
          if (!l) { td.textContent = '\u2014'; return; }
          td.textContent = fmtPercent(l.stall_fraction) + ' \u00b7 ' + fmtRate(l.bytes_per_s);
          td.title = fmtLoader(l);
        },
      });
    }
    cols.push({
      key: 'reason', label: 'reason', get: (t) => (t.reason ? String(t.reason) : null),
      cell: (t, td) => {
        const r = t.reason ? String(t.reason) : '';
        td.className = 'reason';
        td.textContent = truncate(r, 200);
        if (r) td.title = truncate(r, 2000);
      },
    });

    const state = {
      sort: 'best', dir: goalDir, filter: '', brush: null, page: 0, view: [],
    };
    let searchText = null; // built on the first filter

    const head = byId('lb-head');
    const ths = cols.map((c) => {
      const cls = [c.num ? 'num' : '', c.key.startsWith('param:') ? 'param' : ''].join(' ').trim();
      const th = h('th', { class: cls || null, scope: 'col', 'data-key': c.key },
        h('button', { type: 'button', title: c.title ? c.title : 'sort by ' + c.label }, c.label));
      th.firstChild.addEventListener('click', () => {
        if (state.sort === c.key) state.dir = -state.dir;
        else { state.sort = c.key; state.dir = c.dir || 1; }
        state.page = 0;
        update();
      });
      return th;
    });
    head.replaceChildren(...ths);

    function matches(i, terms) {
      if (searchText === null) {
        searchText = trials.map((t) => {
          const bits = ['#' + t.id, String(t.status || ''), String(t.reason || '')];
          for (const p of m.params) {
            const v = param(t, p);
            if (v !== null) bits.push(String(v));
          }
          return bits.join('\n').toLowerCase();
        });
      }
      const s = searchText[i];
      for (const term of terms) if (!s.includes(term)) return false;
      return true;
    }

    function compute() {
      const terms = state.filter.toLowerCase().split(/\s+/).filter(Boolean);
      const idx = [];
      for (let i = 0; i < trials.length; i++) {
        if (state.brush && !state.brush.has(trials[i].id)) continue;
        if (terms.length && !matches(i, terms)) continue;
        idx.push(i);
      }
      const col = cols.find((c) => c.key === state.sort) || cols[0];
      const keys = trials.map(col.get);
      const dir = state.dir;
      idx.sort((a, b) => {
        const x = keys[a];
        const y = keys[b];
        const xn = x === null || x === undefined;
        const yn = y === null || y === undefined;
        if (xn || yn) return xn && yn ? trials[a].id - trials[b].id : xn ? 1 : -1; // missing: last
        let r;
        if (typeof x === 'number' && typeof y === 'number') r = x - y;
        else if (typeof x === 'number') r = -1;
        else if (typeof y === 'number') r = 1;
        else r = collator.compare(String(x), String(y));
        return r ? r * dir : trials[a].id - trials[b].id;
      });
      state.view = idx;
    }

    const body = byId('lb-body');
    const pages = () => Math.max(1, Math.ceil(state.view.length / PAGE_SIZE));

    function renderRows() {
      state.page = Math.min(Math.max(0, state.page), pages() - 1);
      const from = state.page * PAGE_SIZE;
      const to = Math.min(state.view.length, from + PAGE_SIZE);
      const frag = document.createDocumentFragment();
      for (let k = from; k < to; k++) {
        const t = trials[state.view[k]];
        const tr = document.createElement('tr');
        tr.dataset.id = String(t.id);
        if (t.id === m.bestId) tr.classList.add('best');
        if (t.id === selection.id) tr.classList.add('selected');
        for (const c of cols) {
          const td = document.createElement('td');
          if (c.num) td.className = 'num';
          c.cell(t, td);
          tr.append(td);
        }
        frag.append(tr);
      }
      if (from === to) {
        frag.append(h('tr', { class: 'none' }, h('td', { colspan: String(cols.length), class: 'missing' },
          'No trial matches' + (state.brush ? ' the parallel-coordinates selection' : '') +
          (state.filter ? (state.brush ? ' and' : '') + ' the filter' : '') + '.')));
      }
      body.replaceChildren(frag);
      for (const th of ths) {
        const key = th.dataset.key;
        if (key === state.sort) th.setAttribute('aria-sort', state.dir > 0 ? 'ascending' : 'descending');
        else th.removeAttribute('aria-sort');
      }
      const n = state.view.length;
      byId('lb-range').textContent = n ? fmtInt(from + 1) + '\u2013' + fmtInt(to) +
        ' of ' + fmtInt(n) + (n !== trials.length ? ' shown (' + fmtInt(trials.length) + ' trials)' : ' trials') :
        '0 of ' + fmtInt(trials.length) + ' trials';
      byId('lb-first').disabled = byId('lb-prev').disabled = state.page === 0;
      byId('lb-next').disabled = byId('lb-last').disabled = state.page >= pages() - 1;
      const brushNote = byId('lb-brush');
      brushNote.hidden = !state.brush;
      if (state.brush) byId('lb-brush-text').textContent = 'Selected in the parallel coordinates: ' + fmtInt(state.brush.size) + ' trials.';
    }

    function update() {
      compute();
      renderRows();
    }

    byId('lb-first').addEventListener('click', () => { state.page = 0; renderRows(); });
    byId('lb-prev').addEventListener('click', () => { state.page -= 1; renderRows(); });
    byId('lb-next').addEventListener('click', () => { state.page += 1; renderRows(); });
    byId('lb-last').addEventListener('click', () => { state.page = pages() - 1; renderRows(); });
    let filterTimer = 0;
    byId('lb-filter').addEventListener('input', (e) => {
      clearTimeout(filterTimer);
      const value = e.target.value;
      // Type-ahead on 10,000 trials: one pass when typing pauses.
      filterTimer = setTimeout(() => {
        state.filter = value.trim();
        state.page = 0;
        update();
      }, trials.length > 2000 ? 120 : 0);
    });
    byId('lb-brush-clear').addEventListener('click', () => hooks.clearBrush());
    body.addEventListener('click', (e) => {
      const tr = e.target.closest('tr[data-id]');
      if (!tr) return;
      const id = Number(tr.dataset.id);
      selection.set(m.trialById.has(id) ? id : tr.dataset.id);
    });
    selection.listeners.push((id) => {
      if (id !== null) {
        const k = state.view.findIndex((i) => trials[i].id === id);
        if (k >= 0) state.page = Math.floor(k / PAGE_SIZE);
      }
      renderRows();
    });

    hooks.setBrush = (ids) => {
      state.brush = ids;
      state.page = 0;
      update();
    };
    hooks.leaderboardIds = () => state.view.map((i) => trials[i].id);
    update();
  }

  // ---- learning curves --------------------------------------------------

  // Thins the n points (x, y pairs) at flat[off..] in place to at most cap:
  // the first and the last, and the lowest and the highest of each of
  // (cap - 2) / 2 slices between. Returns how many are left.
  function thinCurve(flat, off, n, cap) {
    const slices = Math.max(1, (cap - 2) >> 1);
    const inner = n - 2;
    const y = (i) => flat[off + 2 * i + 1];
    const copy = (from, to) => { flat[off + 2 * to] = flat[off + 2 * from]; flat[off + 2 * to + 1] = flat[off + 2 * from + 1]; };
    let w = 1;
    for (let b = 0; b < slices; b++) {
      const lo = 1 + Math.floor((b * inner) / slices);
      const hi = 1 + Math.floor(((b + 1) * inner) / slices);
      if (lo >= hi) continue;
      let mn = lo; let mx = lo;
      for (let i = lo + 1; i < hi; i++) { if (y(i) < y(mn)) mn = i; if (y(i) > y(mx)) mx = i; }
      // Written at w <= lo: nothing not yet read is overwritten.
      copy(Math.min(mn, mx), w++);
      if (mx !== mn) copy(Math.max(mn, mx), w++);
    }
    copy(n - 1, w++);
    return w;
  }

  function renderCurves(m) {
    if (!m.metric) return showEmpty('curves', 'No learning curves: the sweep has no metric.');
    if (!m.trials.length) return showEmpty('curves', 'No learning curves: the sweep has no trials yet.');
    // One `lines` series per status, each one flat typed array
    // (count, x, y, x, y, ... per curve), filled in one pass over the data.
    const groups = new Map();
    for (const t of m.trials) {
      const raw = m.rawCurve(t.id);
      if (!raw || !raw.length) continue;
      const s = String(t.status || '');
      let g = groups.get(s);
      if (!g) groups.set(s, (g = { trials: [], raw: [], size: 0 }));
      g.trials.push(t);
      g.raw.push(raw);
      g.size += 1 + 2 * Math.max(2, raw.length);
    }
    // Beyond CURVE_POINT_BUDGET points in all (report.h's budget, which
    // the data should already keep), each curve is thinned like the C++
    // does: so many slices, each keeping its lowest and highest point.
    let rawPoints = 0;
    let rawCurves = 0;
    for (const g of groups.values()) for (const raw of g.raw) { rawPoints += raw.length; rawCurves++; }
    const cap = rawPoints > CURVE_POINT_BUDGET ? Math.max(10, Math.floor(CURVE_POINT_BUDGET / rawCurves)) : Infinity;
    let xmin = Infinity; let xmax = -Infinity; let ymin = Infinity; let ymax = -Infinity;
    const series = [];
    const idsOf = {};
    const withCurve = [];
    const statuses = [...groups.keys()].sort(byStatusOrder);
    const built = [];
    for (const s of statuses) {
      const g = groups.get(s);
      const flat = new Float64Array(g.size);
      const ids = [];
      let k = 0;
      for (let j = 0; j < g.raw.length; j++) {
        const raw = g.raw[j];
        const head = k++;
        let n = 0;
        for (let i = 0; i < raw.length; i++) {
          const p = raw[i];
          if (p === null || typeof p !== 'object') continue;
          const x = p[0]; const y = p[1];
          // Finite numbers only (x - x is 0 for those; NaN for the rest).
          if (typeof x !== 'number' || typeof y !== 'number' || x - x !== 0 || y - y !== 0) continue;
          flat[k++] = x; flat[k++] = y; n++;
          if (x < xmin) xmin = x; if (x > xmax) xmax = x;
          if (y < ymin) ymin = y; if (y > ymax) ymax = y;
        }
        if (n === 0) { k = head; continue; }
        if (n > cap) { n = thinCurve(flat, head + 1, n, cap); k = head + 1 + 2 * n; }
        // A curve of one point is drawn as a segment of length 0 (ECharts'
        // polylines need two points; its marker, if any, still shows).
        if (n === 1) { flat[k] = flat[k - 2]; flat[k + 1] = flat[k - 1]; k += 2; n = 2; }
        flat[head] = n;
        ids.push(g.trials[j].id);
        withCurve.push(g.trials[j]);
      }
      if (ids.length) built.push({ s, flat: flat.subarray(0, k), ids });
    }
    if (!withCurve.length) {
      return showEmpty('curves', 'No learning curves: no trial has reported a value of ' + truncate(m.metric, 200) + ' yet.');
    }
    const total = withCurve.length;
    const opacity = total <= 20 ? 0.85 : total <= 200 ? 0.5 : total <= 2000 ? 0.25 : 0.12;
    for (const { s, flat, ids } of built) {
      const id = 'curves-' + s;
      idsOf[id] = ids;
      series.push({
        id, name: s || 'unknown', type: 'lines', coordinateSystem: 'cartesian2d', polyline: true,
        large: ids.length > LARGE_CURVES, largeThreshold: LARGE_CURVES,
        lineStyle: { color: statusColour(s), width: 1, opacity },
        emphasis: { lineStyle: { width: 2, opacity: 1 } },
        data: flat, z: 2,
      });
    }

    // Where schedulers stopped trials, and where PBT copied a donor.
    const valueAt = (curve, step) => {
      let v = null;
      for (const p of curve) { if (p[0] <= step) v = p; else break; }
      return v || curve[0];
    };
    const stops = [];
    const exploits = [];
    for (const t of withCurve) {
      if (!(t.stop && typeof t.stop === 'object') && !arr(t.exploits).length) continue;
      const c = m.curve(t.id);
      if (t.stop && typeof t.stop === 'object') {
        const at = isNum(t.stop.step) ? valueAt(c, t.stop.step) : c[c.length - 1];
        stops.push({ value: [at[0], at[1]], trial: t.id, rung: t.stop.rung, by: t.stop.by });
      }
      for (const e of arr(t.exploits)) {
        if (!e || !isNum(e.step)) continue;
        const at = valueAt(c, e.step);
        exploits.push({ value: [e.step, at[1]], trial: t.id, donor: e.donor });
      }
    }
    const labelStops = stops.length <= MAX_MARKER_LABELS;
    series.push({
      id: 'stops', name: 'stopped (rung)', type: 'scatter', symbol: 'rect', symbolSize: 7, z: 4,
      itemStyle: { color: '#b7791f', borderColor: '#fff', borderWidth: 0.5 },
      labelLayout: { hideOverlap: true },
      label: { show: labelStops, position: 'right', fontSize: 10, color: '#7d5a00',
        formatter: (p) => (isNum(stops[p.dataIndex].rung) ? 'r' + stops[p.dataIndex].rung : String(stops[p.dataIndex].by || 'stop')) },
      large: stops.length > 500, largeThreshold: 500,
      data: stops.map((s) => s.value),
    });
    series.push({
      id: 'exploits', name: 'PBT exploit', type: 'scatter', symbol: 'triangle', symbolSize: 9, z: 4,
      itemStyle: { color: '#6f42c1', borderColor: '#fff', borderWidth: 0.5 },
      label: { show: exploits.length <= MAX_MARKER_LABELS, position: 'top', fontSize: 10, color: '#6f42c1',
        formatter: (p) => '\u2190 #' + fmtValue(exploits[p.dataIndex].donor) },
      data: exploits.map((e) => e.value),
    });
    const bestCurve = m.bestId !== null ? m.curve(m.bestId) : [];
    series.push({
      id: 'best', name: 'best trial', type: 'line', showSymbol: false, symbol: 'none', z: 5,
      lineStyle: { color: '#1f2328', width: 2.5 }, itemStyle: { color: '#1f2328' },
      data: bestCurve, silent: true,
    });
    series.push({
      id: 'selected', name: 'selected trial', type: 'line', showSymbol: false, symbol: 'none', z: 6,
      lineStyle: { color: '#d6336c', width: 3 }, itemStyle: { color: '#d6336c' },
      data: [], silent: true,
    });

    if (xmin === xmax) { xmin -= 1; xmax += 1; }
    // The `lines` series give ECharts no extent: round the data's outwards.
    const [ylo, yhi] = niceBounds(ymin, ymax);
    const positive = ymin > 0;
    // Losses that fall over three decades read better on a log axis.
    const logByDefault = positive && ymax / ymin >= 1000;
    const yAxisFor = (log) => ({
      type: log ? 'log' : 'value',
      name: truncate(m.metric, 40),
      nameLocation: 'middle', nameGap: 48, nameTextStyle: { color: '#59636e' },
      min: log ? Math.pow(10, Math.floor(Math.log10(ymin))) : ylo,
      max: log ? Math.pow(10, Math.ceil(Math.log10(ymax))) : yhi,
      axisLabel: { formatter: (v) => fmtNum(v) },
      splitLine: { lineStyle: { color: '#eef1f4' } },
    });

    const chart = newChart('curves-chart');
    const trialTip = (t, extra) => {
      const rows = [['status', t.status], [m.metric, fmtNum(t.final) + ' (final)'], ['best', fmtNum(t.best)]];
      for (const p of m.params.slice(0, 8)) if (hasOwn(t.params, p)) rows.push([p, fmtValue(t.params[p])]);
      return tip('trial #' + t.id, rows.concat(extra || []));
    };
    draw(chart, {
      ...BASE,
      grid: { left: 72, right: 28, top: 46, bottom: 48 },
      legend: { top: 4, left: 0, type: 'scroll', right: 90, itemWidth: 16, itemHeight: 8,
        data: series.filter((x) => x.id !== 'selected' && (x.data.length || x.type === 'lines')).map((x) => x.name) },
      toolbox: TOOLBOX,
      tooltip: {
        ...TOOLTIP, trigger: 'item',
        formatter: (p) => {
          if (idsOf[p.seriesId]) return trialTip(m.trialById.get(idsOf[p.seriesId][p.dataIndex]));
          if (p.seriesId === 'stops') {
            const s = stops[p.dataIndex];
            return trialTip(m.trialById.get(s.trial), [['stopped by', String(s.by || '?') +
              (isNum(s.rung) ? ' at rung ' + s.rung : '') + ', step ' + fmtNum(s.value[0])]]);
          }
          if (p.seriesId === 'exploits') {
            const e = exploits[p.dataIndex];
            return trialTip(m.trialById.get(e.trial), [['PBT exploit', 'took trial #' + fmtValue(e.donor) + '\u2019s weights at step ' + fmtNum(e.value[0])]]);
          }
          return '';
        },
      },
      xAxis: {
        type: 'value', name: 'step', nameLocation: 'middle', nameGap: 28, min: xmin, max: xmax,
        splitLine: { show: false },
      },
      yAxis: yAxisFor(logByDefault),
      dataZoom: [
        { type: 'inside', xAxisIndex: 0, filterMode: 'none', zoomOnMouseWheel: 'shift', moveOnMouseWheel: false },
        { type: 'inside', yAxisIndex: 0, filterMode: 'none', zoomOnMouseWheel: 'shift', moveOnMouseWheel: false },
      ],
      series,
    });

    const pts = cap < Infinity ? cap : m.data.points_per_curve;
    const noteNodes = [fmtInt(withCurve.length) + ' trials with a curve' +
      (isNum(pts) ? ' (at most ' + pts + ' points each: first, last and the extremes kept)' : '') +
      '. Click a trial here or in the leaderboard to highlight it; shift+wheel zooms, drag pans. '];
    if (positive && ymax / ymin >= 20) {
      const box = h('input', { type: 'checkbox', id: 'curves-log', checked: logByDefault });
      box.addEventListener('change', () => chart.setOption({ yAxis: yAxisFor(box.checked) }));
      noteNodes.push(h('label', { class: 'toggle' }, box, ' log scale'));
    }
    setNote('curves', ...noteNodes);

    chart.on('click', (p) => {
      if (idsOf[p.seriesId]) selection.set(idsOf[p.seriesId][p.dataIndex]);
      else if (p.seriesId === 'stops') selection.set(stops[p.dataIndex].trial);
      else if (p.seriesId === 'exploits') selection.set(exploits[p.dataIndex].trial);
    });
    const showSelected = (id) => {
      const c = id !== null ? m.curve(id) : [];
      chart.setOption({ series: [{ id: 'selected', data: c }] });
    };
    selection.listeners.push(showSelected);
    // The toolbox's reset puts back the first option: the selection and
    // the log box must follow.
    chart.on('restore', () => {
      const box = byId('curves-log');
      if (box) box.checked = logByDefault;
      showSelected(selection.id);
    });
  }

  // ---- optimisation history ---------------------------------------------

  function renderHistory(m) {
    if (!m.metric) return showEmpty('history', 'No optimisation history: the sweep has no metric.');
    if (!m.trials.length) return showEmpty('history', 'No optimisation history: the sweep has no trials yet.');
    const rows = arr(m.data.history).filter((r) => Array.isArray(r) && isNum(r[2]));
    if (!rows.length) {
      const failed = m.trials.filter((t) => t.status === 'failed').length;
      return showEmpty('history', failed === m.trials.length ?
        'No optimisation history: every trial failed (a failed trial\u2019s value is no result).' :
        'No optimisation history: no trial has finished with a value of ' + truncate(m.metric, 200) + ' yet.');
    }
    let best = null;
    let lo = Infinity; let hi = -Infinity;
    for (const r of rows) { if (r[2] < lo) lo = r[2]; if (r[2] > hi) hi = r[2]; }
    const log = lo > 0 && hi / lo >= 1000;
    const points = [];
    const bestLine = [];
    rows.forEach((r, i) => {
      const v = r[2];
      if (best === null || (m.maximize ? v > best : v < best)) best = v;
      points.push([i + 1, v]);
      bestLine.push([i + 1, best]);
    });
    const chart = newChart('history-chart');
    draw(chart, {
      ...BASE,
      grid: { left: 72, right: 28, top: 40, bottom: 48 },
      legend: { top: 4, left: 0 },
      toolbox: TOOLBOX,
      tooltip: {
        ...TOOLTIP, trigger: 'item',
        formatter: (p) => {
          const r = rows[p.dataIndex];
          const t = m.trialById.get(r[0]);
          return tip('trial #' + fmtValue(r[0]), [
            [m.metric, fmtNum(r[2])], ['best so far', fmtNum(bestLine[p.dataIndex][1])],
            ['finished', fmtDate(r[1])], ['status', t ? t.status : null]]);
        },
      },
      xAxis: { type: 'value', name: 'trials in completion order', nameLocation: 'middle', nameGap: 28,
        min: 1, max: Math.max(2, rows.length), minInterval: 1, splitLine: { show: false } },
      yAxis: { type: log ? 'log' : 'value', scale: true, name: truncate(m.metric, 40), nameLocation: 'middle', nameGap: 48,
        nameTextStyle: { color: '#59636e' },
        axisLabel: { formatter: (v) => fmtNum(v) }, splitLine: { lineStyle: { color: '#eef1f4' } } },
      series: [
        { id: 'trials', name: 'trial', type: 'scatter', data: points, symbolSize: rows.length > 2000 ? 3 : 6,
          large: rows.length > 2000, itemStyle: { color: '#4a9bc7', opacity: 0.7 } },
        { id: 'best-so-far', name: 'best so far (' + (m.maximize ? 'max' : 'min') + ')', type: 'line', step: 'end',
          data: bestLine, showSymbol: false, symbol: 'none', lineStyle: { color: '#c62828', width: 2 },
          itemStyle: { color: '#c62828' }, silent: true },
      ],
    });
    chart.on('click', (p) => { if (p.seriesId === 'trials') selection.set(rows[p.dataIndex][0]); });
    setNote('history', fmtInt(rows.length) + ' finished trials with a value; the line is the best so far (' +
      (m.maximize ? 'highest' : 'lowest') + ')' + (log ? '; log scale: the values span over three decades.' : '.'));
  }

  // ---- parallel coordinates ---------------------------------------------

  function renderParallel(m, hooks) {
    if (!m.metric) return showEmpty('parallel', 'No parallel coordinates: the sweep has no metric.');
    if (!m.trials.length) return showEmpty('parallel', 'No parallel coordinates: the sweep has no trials yet.');
    if (!m.params.length) return showEmpty('parallel', 'No parallel coordinates: the sweep has no parameters.');
    const scored = scoredTrials(m);
    if (!scored.length) {
      return showEmpty('parallel', m.trials.every((t) => t.status === 'failed') ?
        'No parallel coordinates: every trial failed (a failed trial\u2019s value is no result).' :
        'No parallel coordinates: no trial has a value of ' + truncate(m.metric, 200) + ' yet.');
    }

    // An axis per parameter with a value: numbers on a value axis (log when
    // positive over three decades), anything else on a category axis.
    const axes = [];
    const skipped = [];
    for (const p of m.params) {
      const vals = [];
      let numeric = true;
      for (const t of scored) {
        const v = param(t, p);
        if (v === null) continue;
        vals.push(v);
        if (typeof v !== 'number') numeric = false;
      }
      if (!vals.length) { skipped.push(p); continue; }
      if (numeric) {
        let lo = Infinity; let hi = -Infinity;
        for (const v of vals) { if (v < lo) lo = v; if (v > hi) hi = v; }
        const get = (t) => param(t, p);
        axes.push({ name: p, type: lo > 0 && hi / lo >= 1000 ? 'log' : 'value', get, ordinal: get });
      } else {
        const cats = [...new Set(vals.map(String))].sort(collator.compare);
        const index = new Map(cats.map((c, i) => [c, i]));
        const get = (t) => { const v = param(t, p); return v === null ? null : String(v); };
        axes.push({ name: p, type: 'category', cats, get, ordinal: (t) => { const v = get(t); return v === null ? null : index.get(v); } });
      }
    }
    const metricAxis = { name: m.metric, type: 'value', get: (t) => t.best, ordinal: (t) => t.best };
    const all = axes.concat([metricAxis]);
    const axisId = (i) => (i === axes.length ? 'metric' : 'param-' + i);

    // Drawn: every trial up to MAX_PARALLEL_LINES, else that many spread
    // evenly over the ranking (the best always among them). Brushing
    // selects among all of them, drawn or not.
    const ranked = scored.slice().sort((a, b) => (m.maximize ? b.best - a.best : a.best - b.best));
    let drawnTrials = ranked;
    if (ranked.length > MAX_PARALLEL_LINES) {
      drawnTrials = [];
      for (let i = 0; i < MAX_PARALLEL_LINES; i++) {
        drawnTrials.push(ranked[Math.round((i * (ranked.length - 1)) / (MAX_PARALLEL_LINES - 1))]);
      }
    }
    // Worst first, so that the best lines are drawn on top.
    drawnTrials.reverse();

    let mlo = Infinity; let mhi = -Infinity;
    for (const t of scored) { if (t.best < mlo) mlo = t.best; if (t.best > mhi) mhi = t.best; }
    const el = byId('parallel-chart');
    const width = el.clientWidth || 1000;
    const nameLen = Math.max(6, Math.min(28, Math.floor(width / all.length / 7.5)));
    const parallelAxis = all.map((a, i) => ({
      dim: i, id: axisId(i), name: truncate(a.name, nameLen), type: a.type,
      data: a.type === 'category' ? a.cats : undefined,
      scale: a.type === 'value' ? true : undefined,
      nameTextStyle: a === metricAxis ? { fontWeight: 'bold' } : undefined,
      axisLabel: a.type === 'category' ? { formatter: (v) => truncate(v, 14) } : { formatter: (v) => fmtNum(v) },
    }));
    const rows = drawnTrials.map((t) => all.map((a) => a.get(t)));
    const n = drawnTrials.length;
    const chart = newChart('parallel-chart');
    const colours = m.maximize ? GOOD_TO_BAD.slice().reverse() : GOOD_TO_BAD;
    draw(chart, {
      ...BASE,
      parallel: {
        left: 56, right: 140, top: 56, bottom: 36,
        parallelAxisDefault: {
          nameLocation: 'end', nameGap: 14, nameTextStyle: { fontSize: 12, color: '#1f2328' },
          axisLine: { lineStyle: { color: '#8c959f' } }, axisTick: { lineStyle: { color: '#8c959f' } },
          areaSelectStyle: { width: 18, color: 'rgba(9,105,218,0.25)', borderColor: '#0969da' },
          realtime: true,
        },
      },
      parallelAxis,
      visualMap: {
        type: 'continuous', dimension: axes.length, min: mlo, max: mhi === mlo ? mlo + 1 : mhi,
        right: 8, top: 'middle', itemHeight: 160, calculable: true,
        text: [m.maximize ? 'best' : 'worst', m.maximize ? 'worst' : 'best'],
        textStyle: { color: '#59636e' }, inRange: { color: colours }, seriesIndex: 0,
        formatter: (v) => fmtNum(v),
      },
      tooltip: {
        ...TOOLTIP, trigger: 'item',
        formatter: (p) => {
          const t = drawnTrials[p.dataIndex];
          const rowsTip = [[m.metric + ' (best)', fmtNum(t.best)], ['status', t.status]];
          for (const a of axes.slice(0, 12)) rowsTip.push([a.name, fmtValue(param(t, a.name))]);
          return tip('trial #' + t.id, rowsTip);
        },
      },
      series: [{
        id: 'trials', name: 'trials', type: 'parallel', data: rows, smooth: false,
        lineStyle: { width: n > 1000 ? 0.6 : 1, opacity: n > 1000 ? 0.3 : n > 200 ? 0.45 : 0.7 },
        inactiveOpacity: 0.03, activeOpacity: 0.9,
        emphasis: { lineStyle: { width: 2, opacity: 1 } },
        progressive: 0,
      }],
    });

    // Brushing: ECharts reports each axis' intervals (in the axis' data
    // space: category index, or value); the leaderboard keeps the trials
    // inside the intervals of every brushed axis.
    const brushes = new Map();
    const inside = (v, intervals) => {
      if (v === null || v === undefined || Number.isNaN(v)) return false;
      for (const [a, b] of intervals) if (Math.min(a, b) <= v && v <= Math.max(a, b)) return true;
      return false;
    };
    chart.on('axisareaselected', (e) => {
      const i = all.findIndex((_, k) => axisId(k) === e.parallelAxisId);
      if (i < 0) return;
      const intervals = arr(e.intervals).filter((iv) => Array.isArray(iv) && isNum(iv[0]) && isNum(iv[1]));
      if (intervals.length) brushes.set(i, intervals);
      else brushes.delete(i);
      if (!brushes.size) { hooks.setBrush(null); return; }
      const ids = new Set();
      for (const t of scored) {
        let ok = true;
        for (const [k, iv] of brushes) if (!inside(all[k].ordinal(t), iv)) { ok = false; break; }
        if (ok) ids.add(t.id);
      }
      hooks.setBrush(ids);
    });
    hooks.clearBrush = () => {
      for (const k of [...brushes.keys()]) chart.dispatchAction({ type: 'axisAreaSelect', parallelAxisId: axisId(k), intervals: [] });
      brushes.clear();
      hooks.setBrush(null);
    };
    chart.on('click', (p) => { if (p.seriesType === 'parallel') selection.set(drawnTrials[p.dataIndex].id); });

    // Canvas axis names cannot carry a title: the key below the chart does.
    const keyNodes = [document.createTextNode('Axes: ')];
    for (const a of axes) keyNodes.push(h('span', { title: a.name }, truncate(a.name, 40) + (a.type === 'log' ? ' (log)' : '')));
    keyNodes.push(h('span', { title: m.metric }, truncate(m.metric, 40) + ' (best value)'));
    byId('parallel-key').replaceChildren(...keyNodes);

    const left = m.trials.length - scored.length;
    setNote('parallel', (n < scored.length ? fmtInt(n) + ' of the ' + fmtInt(scored.length) +
      ' trials with a value drawn, spread evenly over their ranking (brushing selects among all ' +
      fmtInt(scored.length) + ')' : fmtInt(n) + ' trials with a value') +
      (left ? '; ' + fmtInt(left) + ' without one, or failed, are not drawn' : '') +
      '. Drag along an axis to select a range: the leaderboard then shows only the selected trials.' +
      (skipped.length ? ' No value to draw for: ' + skipped.map((p) => truncate(p, 40)).join(', ') + '.' : ''));
  }

  // ---- parameter importance ---------------------------------------------

  function renderImportance(m) {
    const note = typeof m.data.importance_note === 'string' ? m.data.importance_note : '';
    const items = arr(m.data.importance).filter((it) => it && typeof it === 'object' && isNum(it.importance));
    if (!items.length) {
      return showEmpty('importance', note || (m.metric ? 'No parameter importance: it needs at least 2 finished trials with a value.' :
        'No parameter importance: the sweep has no metric.'));
    }
    const names = items.map((it) => String(it.param));
    const el = byId('importance-chart');
    el.style.height = Math.max(160, 70 + 30 * items.length) + 'px';
    const chart = newChart('importance-chart');
    draw(chart, {
      ...BASE,
      grid: { left: 12, right: 56, top: 16, bottom: 32, containLabel: true },
      tooltip: {
        ...TOOLTIP, trigger: 'item',
        formatter: (p) => tip(truncate(names[p.dataIndex], 300), [['importance', fmtPercent(items[p.dataIndex].importance)]]),
      },
      xAxis: { type: 'value', min: 0, max: (v) => Math.min(1, Math.ceil(v.max * 10 + 0.02) / 10),
        axisLabel: { formatter: (v) => Math.round(v * 100) + '%' }, splitLine: { lineStyle: { color: '#eef1f4' } } },
      yAxis: { type: 'category', data: names, inverse: true, axisTick: { show: false },
        axisLabel: { formatter: (v) => truncate(v, 28) } },
      series: [{
        id: 'importance', type: 'bar', data: items.map((it) => it.importance), barMaxWidth: 22,
        itemStyle: { color: '#4a7fc1', borderRadius: [0, 3, 3, 0] },
        label: { show: true, position: 'right', formatter: (p) => fmtPercent(p.value), color: '#59636e' },
      }],
    });
    setNote('importance', (note ? note + ' ' : '') + 'Share of the variance of ' + truncate(m.metricLabel, 80) +
      ' explained by each parameter (fANOVA over the trials with a value).');
  }

  // ---- cluster timeline -------------------------------------------------

  function renderFailures(m) {
    const box = byId('failures');
    const failed = m.trials.filter((t) => t.status === 'failed');
    if (!failed.length) {
      box.replaceChildren(h('p', { class: 'none' }, m.trials.length ? 'No trial failed.' : 'No trials yet.'));
      return;
    }
    const nodes = [];
    failed.slice(0, MAX_FAILURES_SHOWN).forEach((t, i) => {
      const reason = t.reason ? String(t.reason) : 'no reason recorded';
      const summary = h('summary', { title: truncate(reason, 2000) },
        h('strong', null, 'trial #' + t.id), ' \u2014 ' + truncate(reason, 300) +
        (isNum(t.attempts) && t.attempts > 1 ? ' (' + t.attempts + ' attempts)' : ''));
      const lines = String(t.stderr_tail || '').replace(/\s+$/, '').split('\n');
      const tail = lines.slice(-STDERR_LINES).join('\n');
      const pre = h('pre');
      pre.textContent = tail || '(no stderr captured)';
      nodes.push(h('details', { open: i === 0 }, summary, pre));
    });
    if (failed.length > MAX_FAILURES_SHOWN) {
      nodes.push(h('p', { class: 'none' }, 'And ' + fmtInt(failed.length - MAX_FAILURES_SHOWN) +
        ' more failed trials: filter the leaderboard by \u201cfailed\u201d to see them all.'));
    }
    box.replaceChildren(...nodes);
  }

  function renderTimeline(m) {
    renderFailures(m);
    const tl = obj(m.data.timeline);
    const lanes = arr(tl.lanes).map(String);
    const bars = arr(tl.bars).filter((b) => Array.isArray(b) && b.length >= 6 && isNum(b[0]) && isNum(b[3]) && isNum(b[4]) &&
      b[0] >= 0 && b[0] < lanes.length);
    if (isNum(tl.busy_fraction)) {
      byId('busy').textContent = '\u2014 busy ' + fmtPercent(tl.busy_fraction, 0);
      byId('busy').title = 'attempts\u2019 time over the lanes\u2019 time, run by run';
    }
    if (!bars.length) {
      return showEmpty('timeline', m.trials.length ? 'No timeline: no attempt has started yet.' : 'No timeline: the sweep has no trials yet.');
    }

    // One custom-series item per lane and status, drawn as one path of all
    // its bars: 10,000 attempts are then a few hundred ECharts elements.
    // The bar under the pointer is found by time, for the tooltip.
    const groups = new Map();
    let t0 = Infinity; let t1 = -Infinity;
    for (const b of bars) {
      const status = String(b[5]);
      const key = status + '\u0000' + b[0];
      if (!groups.has(key)) groups.set(key, { lane: b[0], status, bars: [] });
      const start = b[3] * 1000;
      const end = Math.max(b[3], b[4]) * 1000;
      groups.get(key).bars.push({ start, end, trial: b[1], attempt: b[2] });
      if (start < t0) t0 = start;
      if (end > t1) t1 = end;
    }
    if (isNum(tl.start)) t0 = Math.min(t0, tl.start * 1000);
    if (isNum(tl.end)) t1 = Math.max(t1, tl.end * 1000);
    if (t1 <= t0) t1 = t0 + 1000;
    const byStatus = new Map();
    for (const g of groups.values()) {
      g.bars.sort((a, b) => a.start - b.start);
      let maxLen = 0;
      for (const b of g.bars) maxLen = Math.max(maxLen, b.end - b.start);
      g.maxLen = maxLen;
      if (!byStatus.has(g.status)) byStatus.set(g.status, []);
      byStatus.get(g.status).push(g);
    }
    const statuses = [...byStatus.keys()].sort(byStatusOrder);
    const renderItem = (params, api) => {
      const g = byStatus.get(params.seriesId.slice('bars-'.length))[params.dataIndex];
      const cs = params.coordSys;
      const a = api.coord([t0, g.lane]);
      const b = api.coord([t1, g.lane]);
      const scale = (b[0] - a[0]) / (t1 - t0);
      const hgt = Math.max(2, Math.min(api.size([0, 1])[1] * 0.7, 28));
      const top = a[1] - hgt / 2;
      const bottom = top + hgt;
      const xlo = cs.x; const xhi = cs.x + cs.width;
      // One polygon through every bar (clockwise rectangles joined along
      // their top edge): the joins have no area, so it fills exactly the bars.
      const points = [];
      for (const bar of g.bars) {
        let x0 = a[0] + (bar.start - t0) * scale;
        let x1 = a[0] + (bar.end - t0) * scale;
        if (x1 < xlo || x0 > xhi) continue;
        // A pixel of gap between one attempt and the next, when there is room.
        if (x1 - x0 > 3) x1 -= 1;
        x0 = Math.max(x0, xlo); x1 = Math.min(Math.max(x1, x0 + 1), xhi);
        points.push([x0, top], [x1, top], [x1, bottom], [x0, bottom], [x0, top]);
      }
      return points.length ? { type: 'polygon', shape: { points }, style: { fill: api.visual('color') } } : null;
    };
    const series = statuses.map((s) => ({
      id: 'bars-' + s, name: s, type: 'custom', renderItem,
      // [lane, first start, last end, number of bars]: the axes' extent.
      data: byStatus.get(s).map((g) => [g.lane, g.bars[0].start, g.bars.reduce((e, b) => Math.max(e, b.end), 0), g.bars.length]),
      encode: { x: [1, 2], y: 0, tooltip: [] }, itemStyle: { color: statusColour(s) }, progressive: 0,
    }));

    const el = byId('timeline-chart');
    el.style.height = Math.min(900, Math.max(200, 110 + 26 * lanes.length)) + 'px';
    const chart = newChart('timeline-chart');
    let pointer = null;
    // Registered before the tooltip's own handler, so the formatter sees
    // this move's position.
    chart.getZr().on('mousemove', (e) => { pointer = [e.offsetX, e.offsetY]; });
    const barAt = (g) => {
      if (!pointer) return null;
      const lo = chart.convertFromPixel({ gridIndex: 0 }, [pointer[0] - 2, pointer[1]]);
      const hi = chart.convertFromPixel({ gridIndex: 0 }, [pointer[0] + 2, pointer[1]]);
      if (!lo || !hi) return null;
      const x = (lo[0] + hi[0]) / 2;
      // Bars start in order: the last one starting before the pointer's
      // right edge, or one before it that still runs.
      let l = 0; let r = g.bars.length;
      while (l < r) { const mid = (l + r) >> 1; if (g.bars[mid].start <= hi[0]) l = mid + 1; else r = mid; }
      let found = null;
      for (let i = l - 1; i >= 0; i--) {
        const b = g.bars[i];
        if (b.end >= lo[0]) { if (!found || Math.abs((b.start + b.end) / 2 - x) < Math.abs((found.start + found.end) / 2 - x)) found = b; }
        if (b.start < lo[0] - g.maxLen) break;
      }
      return found;
    };
    const groupOf = (p) => { const gs = byStatus.get(String(p.seriesId).slice('bars-'.length)); return gs ? gs[p.dataIndex] : null; };
    draw(chart, {
      ...BASE,
      grid: { left: 12, right: 24, top: 36, bottom: 52, containLabel: true },
      legend: { top: 4, left: 0 },
      toolbox: TOOLBOX,
      tooltip: {
        ...TOOLTIP, trigger: 'item',
        formatter: (p) => {
          const g = groupOf(p);
          const b = g && barAt(g);
          if (!b) return g ? tip(lanes[g.lane], [['status', g.status], ['attempts', fmtInt(g.bars.length)]]) : '';
          const t = m.trialById.get(b.trial);
          return tip('trial #' + fmtValue(b.trial) + ', attempt ' + fmtValue(b.attempt), [
            ['status', g.status], ['lane', lanes[g.lane]], ['hosts', t && t.hosts ? String(t.hosts) : null],
            ['start', fmtDate(b.start / 1000)], ['end', fmtDate(b.end / 1000)], ['duration', fmtDuration((b.end - b.start) / 1000)],
            ['loader', t ? fmtLoader(t.loader) : null]]);
        },
      },
      xAxis: { type: 'time', min: t0, max: t1, splitLine: { lineStyle: { color: '#eef1f4' } } },
      yAxis: { type: 'category', data: lanes, inverse: true, axisTick: { show: false },
        axisLabel: { formatter: (v) => truncate(v, 24) }, splitLine: { show: true, lineStyle: { color: '#f0f3f6' } } },
      dataZoom: [
        { type: 'inside', xAxisIndex: 0, filterMode: 'none', zoomOnMouseWheel: 'shift', moveOnMouseWheel: false },
        { type: 'slider', xAxisIndex: 0, filterMode: 'none', height: 18, bottom: 8, showDataShadow: false,
          labelFormatter: (v) => fmtDate(v / 1000).slice(5) },
      ],
      series,
    });
    chart.on('click', (p) => {
      const g = groupOf(p);
      const b = g && barAt(g);
      if (b && m.trialById.has(b.trial)) selection.set(b.trial);
    });
    setNote('timeline', fmtInt(bars.length) + ' attempts on ' + lanes.length + ' lane' +
      (lanes.length === 1 ? '' : 's') + ' (one per rank group), ' + fmtDate(t0 / 1000) + ' to ' + fmtDate(t1 / 1000) +
      '. Shift+wheel zooms.');
  }

  // ---- main -------------------------------------------------------------

  function markReady() {
    performance.mark('xpscale:ready');
    window.__xpscaleReadyMs = performance.now();
    window.__xpscaleReady = true;
    document.documentElement.dataset.ready = 'true';
  }

  // One view; a failure is a bug, not a property of the data: it is said
  // in the view and in the console (the tests fail on console errors).
  function runView(id, view, m, hooks) {
    try {
      view(m, hooks);
      performance.mark('xpscale:' + id);
    } catch (e) {
      console.error('xpscale report: the ' + id + ' view failed:', e);
      if (id !== 'summary') showEmpty(id, 'This view could not be drawn: ' + e.message);
    }
  }

  // ---- live (the dashboard) ---------------------------------------------

  // Served by `xpscale dashboard`, the page follows the sweep: the server
  // says on /events when new data is ready; the page fetches /data.json and
  // draws it again in place (from a pristine copy of its markup, so no
  // listener is bound twice), at most every half second or twice as long
  // as a drawing takes, keeping the scroll position, the filter and the
  // picked trial. Not from file://, where there is no server.
  const pristine = {
    header: byId('summary').cloneNode(true),
    main: document.querySelector('main').cloneNode(true),
  };

  function liveState() {
    return { scrollY: window.scrollY, filter: (byId('lb-filter') || {}).value || '',
      selected: selection.id };
  }

  function restoreState(state) {
    const filter = byId('lb-filter');
    if (filter && state.filter) {
      filter.value = state.filter;
      filter.dispatchEvent(new Event('input'));
    }
    if (state.selected !== null && state.selected !== undefined) selection.set(state.selected);
    window.scrollTo(0, state.scrollY);
  }

  // Clears what a drawing left: the charts, their promises, the listeners
  // on the picked trial and the markup, put back as it was at first.
  function resetPage() {
    for (const c of charts) c.dispose();
    charts.length = 0;
    drawn.length = 0;
    selection.listeners.length = 0;
    selection.id = null;
    byId('summary').replaceWith(pristine.header.cloneNode(true));
    document.querySelector('main').replaceWith(pristine.main.cloneNode(true));
  }

  function startLive(first) {
    if (!first.data.live || typeof EventSource === 'undefined' || location.protocol === 'file:') {
      return;
    }
    let shown = Number(obj(first.data.dashboard).version) || 0;
    let latest = shown;
    let busy = false;
    let drawMs = 0;
    let lastDraw = 0;
    let timer = 0;
    let ended = false;
    const badge = (text) => { const b = byId('live-badge'); if (b) b.textContent = text; };
    // The user's last touch: an update waits until they have left the
    // page alone for 4 s and the filter box is not being typed in, so that
    // a sort, a brush or a page they chose is not swept away under them.
    let touched = -Infinity;
    for (const type of ['pointerdown', 'keydown', 'wheel', 'input']) {
      document.addEventListener(type, () => { touched = performance.now(); }, { capture: true, passive: true });
    }
    const idle = () => performance.now() - touched >= 4000 &&
      document.activeElement !== byId('lb-filter');
    async function redraw(data, version) {
      const state = liveState();
      const t0 = performance.now();
      resetPage();
      await render(data);
      restoreState(state);
      drawMs = performance.now() - t0;
      lastDraw = performance.now();
      shown = version;
    }
    async function update() {
      timer = 0;
      if (busy || ended || latest <= shown) return;
      if (!idle()) {
        badge('live (paused while you work)');
        timer = setTimeout(update, 1000);
        return;
      }
      busy = true;
      try {
        const r = await fetch('data.json' + location.search, { cache: 'no-store' });
        if (!r.ok) throw new Error('data.json: HTTP ' + r.status);
        const version = Number(r.headers.get('X-Xpscale-Version')) || latest;
        const data = await r.json();
        if (!ended) {
          await redraw(data, version);
          badge('live');
        }
      } catch (e) {
        badge('live (update failed: ' + e.message + ')');
      } finally {
        busy = false;
        schedule();
      }
    }
    function schedule() {
      if (timer || busy || ended || latest <= shown) return;
      const gap = Math.max(500, 2 * drawMs);
      timer = setTimeout(update, Math.max(0, gap - (performance.now() - lastDraw)));
    }
    const source = new EventSource('events' + location.search);  // the search carries ?token=
    source.addEventListener('version', (e) => {
      latest = Math.max(latest, Number(e.data) || 0);
      schedule();
    });
    // The dashboard stopped (the sweep ended, or Ctrl-C): the event holds
    // the last data, drawn once the current drawing is done.
    source.addEventListener('end', async (e) => {
      ended = true;
      source.close();
      clearTimeout(timer);
      let data = null;
      try {
        data = JSON.parse(e.data);
      } catch (err) { /* an older server: keep what is shown */ }
      while (busy) await new Promise((resolve) => setTimeout(resolve, 50));
      if (data) await redraw(data, shown + 1);
      badge('dashboard stopped');
    });
    source.onerror = () => { if (!ended) badge('live (reconnecting)'); };
    source.onopen = () => badge('live');
  }

  // Draws every view from `data`; resolves once every chart has drawn.
  async function render(data) {
    const m = buildModel(obj(data));
    const hooks = {
      setBrush: () => {}, clearBrush: () => {}, leaderboardIds: () => [],
    };
    runView('summary', renderSummary, m, hooks);
    if (typeof m.data.error === 'string' && m.data.error) {
      byId('sweep-meta').after(h('p', { class: 'meta error', id: 'data-error', role: 'alert' }, m.data.error));
    }
    const dash = obj(m.data.dashboard);
    if (m.data.live && typeof dash.tunnel === 'string' && dash.tunnel) {
      byId('sweep-meta').after(h('p', { class: 'meta', id: 'live-tunnel' },
        'Live dashboard; ' + dash.tunnel));
    }
    runView('leaderboard', renderLeaderboard, m, hooks);
    byId('footer').textContent = 'xpscale report \u00b7 data format ' + fmtValue(m.data.format) + ' \u00b7 generated ' +
      fmtDate(m.data.generated_at) + (m.data.live ? ' \u00b7 live' : '');
    window.__xpscale = Object.freeze({
      leaderboardIds: () => hooks.leaderboardIds(),
      selected: () => selection.id,
      data: () => m.data,
    });

    const chartViews = [['curves', renderCurves], ['history', renderHistory], ['parallel', renderParallel],
      ['importance', renderImportance], ['timeline', renderTimeline]];
    if (typeof echarts === 'undefined') {
      for (const [id] of chartViews) showEmpty(id, 'This view needs ECharts, which the page lacks.');
      return m;
    }
    // The header and the leaderboard paint first; then the charts, in one
    // task (a frame between charts costs more than it gives).
    await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
    for (const [id, view] of chartViews) runView(id, view, m, hooks);
    await Promise.all(drawn);
    return m;
  }

  async function main() {
    performance.mark('xpscale:start');
    let data;
    try {
      data = readData();
      performance.mark('xpscale:parsed');
    } catch (e) {
      for (const id of ['leaderboard', 'curves', 'history', 'parallel', 'importance', 'timeline']) {
        showEmpty(id, 'The report holds no readable data (' + e.message + ').');
      }
      markReady();
      return;
    }
    const m = await render(data);
    let resizeTimer = 0;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => { for (const c of charts) c.resize(); }, 100);
    });
    markReady();
    startLive(m);
  }

  main().catch((e) => console.error('xpscale report:', e));
})();
