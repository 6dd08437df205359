"""The page's own stylesheet and script (plotly.js itself is inlined from the plotly package).

Kept as Python strings so that an installed wheel carries them without package-data rules.
The script reads the JSON document in ``<script id="report-data">`` (``page.render``) and
draws every view from it; ``window.report`` exposes its state to tests (selected model id).
"""

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 0 16px;
       color: #222; }
h1 { font-size: 22px; margin: 16px 0 4px; } h2 { font-size: 18px; margin: 28px 0 6px;
  border-bottom: 1px solid #ddd; } h3 { font-size: 15px; margin: 14px 0 4px; }
.note { color: #666; font-size: 13px; } .warn { color: #a40; }
.controls label { margin-right: 14px; } select { font: inherit; }
table { border-collapse: collapse; font-size: 12.5px; margin: 4px 0; }
th, td { padding: 2px 7px; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th { background: #f5f5f5; position: sticky; top: 0; } td.l, th.l { text-align: left; }
.scroll { max-height: 340px; overflow: auto; border: 1px solid #eee; }
tr.model-row { cursor: pointer; } tr.model-row:hover { background: #f0f6ff; }
tr.selected { background: #dbeafe !important; } tr.compared { background: #fde7c8 !important; }
.two { display: flex; gap: 16px; flex-wrap: wrap; } .two > div { flex: 1 1 460px; min-width: 0; }
#gallery { display: flex; flex-wrap: wrap; gap: 8px; }
.card { border: 1px solid #ddd; border-radius: 4px; padding: 6px; width: 190px; font-size: 12px; }
.card img { width: 72px; height: 72px; image-rendering: pixelated; float: left;
            margin-right: 6px; background: #000; }
.card .top3 { clear: both; padding-top: 4px; } .card b { font-weight: 600; }
code, pre { font: 12px ui-monospace, monospace; } pre { background: #f7f7f7; padding: 8px;
  overflow: auto; max-height: 260px; } .hash { font: 11px ui-monospace, monospace; }
"""

JS = r"""
(function () {
  'use strict';
  const D = JSON.parse(document.getElementById('report-data').textContent);
  const M = D.models, byId = new Map(M.map(m => [m.id, m]));
  for (const m of M) {  // layer names, shapes and kinds are stored once, in D.strings
    if (m.layers) for (const key of ['name', 'shape', 'kind']) {
      m.layers[key] = m.layers[key].map(i => D.strings[i]);
    }
  }
  const METRIC = {accuracy: 'accuracy', kl: 'KL(compressed ‖ original) (nats)',
                  cross_entropy: 'cross-entropy (nats)', agreement: 'agreement with original'};
  const XAXIS = {file_ratio: 'file ratio (fp32 bytes / .rdz bytes)',
                 bits_per_weight: 'bits per weight (whole file)'};
  const SYMBOLS = ['circle', 'square', 'diamond', 'triangle-up', 'x', 'star', 'cross',
                   'triangle-down', 'pentagon', 'hexagon'];
  const state = {x: 'file_ratio', y: 'accuracy', selected: null, compared: null,
                 startMs: performance.now()};  // after plotly.js ran: what follows is ours
  window.report = state;
  const $ = id => document.getElementById(id);
  const esc = s => String(s).replace(/[&<>"']/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;',
                                                        '"': '&quot;', "'": '&#39;'}[c]));
  function fmt(v, d) {
    if (v === null || v === undefined) return '–';
    if (typeof v !== 'number') return esc(v);
    if (v === 0) return '0';
    const a = Math.abs(v);
    return (a >= 1e5 || a < 1e-3) ? v.toExponential((d || 4) - 1) : String(+v.toPrecision(d || 4));
  }
  const pct = v => (v === null || v === undefined) ? '–' : (100 * v).toFixed(1) + '%';
  const label = m => `${m.series} · ${m.objective} · ${m.setting}`;

  function hover(m) {
    return [`<b>${esc(m.series)}</b> · ${esc(m.objective)} · ${esc(m.setting)}`,
            `file ${esc(m.file)}: ${m.file_bytes} B, ratio ${fmt(m.file_ratio)}×,` +
            ` ${fmt(m.bits_per_weight)} bits/weight`,
            `accuracy ${fmt(m.accuracy)} · KL ${fmt(m.kl)} · CE ${fmt(m.cross_entropy)}` +
            ` · agreement ${fmt(m.agreement)}`].join('<br>');
  }

  // ---- 1. the rate–distortion plane ------------------------------------------------------
  function rdTraces() {
    const traces = [], groups = new Map(), objectives = [...new Set(M.map(m => m.objective))];
    for (const m of M) {
      const key = m.series + '\u0000' + m.objective;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(m);
    }
    for (const [, ms] of groups) {
      const st = D.styles[ms[0].series] || {};
      traces.push({type: 'scatter', mode: 'markers', meta: 'runs',
        name: `${ms[0].series} · ${ms[0].objective}`, legendgroup: ms[0].series,
        x: ms.map(m => m[state.x]), y: ms.map(m => m[state.y]), customdata: ms.map(m => m.id),
        text: ms.map(hover), hovertemplate: '%{text}<extra></extra>',
        marker: {color: st.color, size: 9, opacity: 0.85, line: {width: 0.5, color: '#fff'},
                 symbol: SYMBOLS[objectives.indexOf(ms[0].objective) % SYMBOLS.length]}});
    }
    const fronts = D.fronts[state.y] || {};
    for (const series of Object.keys(fronts)) {
      const ms = fronts[series].map(i => byId.get(i));
      if (ms.length < 2) continue;
      const st = D.styles[series] || {};
      traces.push({type: 'scatter', mode: 'lines', meta: 'front', name: `${series} front`,
        legendgroup: series, x: ms.map(m => m[state.x]), y: ms.map(m => m[state.y]),
        hoverinfo: 'skip', line: {color: st.color, dash: st.dash || 'solid', width: 1.6}});
    }
    const xs = M.map(m => m[state.x]).filter(v => v !== null && v !== undefined);
    D.sweeps.forEach(s => {
      const ref = state.y === 'agreement' ? 1 : (s.reference || {})[state.y];
      if (ref === null || ref === undefined || state.y === 'kl' || !xs.length) return;
      traces.push({type: 'scatter', mode: 'lines', meta: 'original',
        name: `original${D.sweeps.length > 1 ? ' (' + s.label + ')' : ''}`,
        x: [Math.min(...xs), Math.max(...xs)], y: [ref, ref], hoverinfo: 'name+y',
        line: {color: '#000', dash: 'dot', width: 1.2}});
    });
    const sel = [state.selected, state.compared].filter(i => i !== null).map(i => byId.get(i));
    traces.push({type: 'scatter', mode: 'markers', meta: 'selection', name: 'selected',
      showlegend: false, hoverinfo: 'skip', x: sel.map(m => m[state.x]),
      y: sel.map(m => m[state.y]), marker: {size: 18, color: 'rgba(0,0,0,0)',
        line: {width: 2.5, color: sel.map((m, i) => i === 0 ? '#1d4ed8' : '#d97706')}}});
    return traces;
  }
  const NICE = [1, 1.5, 2, 3, 4, 5, 7, 10, 15, 20, 30, 40, 50, 70, 100, 150, 200, 300, 500, 1000];
  function ratioTicks() {  // plain numbers on the log axis (plotly's own print 2, 3, ..., 2)
    const xs = M.map(m => m.file_ratio).filter(v => v > 0);
    const lo = Math.min(...xs, 1) / 1.2, hi = Math.max(...xs) * 1.2;
    const vals = NICE.filter(v => v >= lo && v <= hi);
    return {tickvals: vals, ticktext: vals.map(v => v + '×')};
  }
  function drawRD() {
    const layout = {height: 470, margin: {l: 60, r: 10, t: 10, b: 50}, hovermode: 'closest',
      xaxis: Object.assign({title: {text: XAXIS[state.x]}, type: state.x === 'file_ratio' ?
        'log' : 'linear'}, state.x === 'file_ratio' ? ratioTicks() : {}),
      yaxis: {title: {text: METRIC[state.y]}, type: state.y === 'kl' ? 'log' : 'linear'},
      legend: {font: {size: 11}}, uirevision: state.x + state.y};
    Plotly.react('rd', rdTraces(), layout, {displaylogo: false, responsive: true});
  }

  // ---- the table of every model -----------------------------------------------------------
  function drawModels() {
    const cols = ['series', 'objective', 'setting', 'file_ratio', 'bits_per_weight',
                  'file_bytes', 'accuracy', 'kl', 'cross_entropy', 'agreement'];
    let html = '<table id="models-table"><tr>' + cols.map((c, i) =>
      `<th class="${i < 3 ? 'l' : ''}">${c.replace(/_/g, ' ')}</th>`).join('') + '</tr>';
    for (const m of M) {
      html += `<tr class="model-row" data-id="${m.id}">` + cols.map((c, i) =>
        `<td class="${i < 3 ? 'l' : ''}">${fmt(m[c])}</td>`).join('') + '</tr>';
    }
    $('models').innerHTML = html + '</table>';
    $('models').addEventListener('click', ev => {
      const tr = ev.target.closest('tr.model-row');
      if (tr) select(+tr.dataset.id, ev.shiftKey);
    });
  }
  function markRows() {
    document.querySelectorAll('tr.model-row').forEach(tr => {
      tr.classList.toggle('selected', +tr.dataset.id === state.selected);
      tr.classList.toggle('compared', +tr.dataset.id === state.compared);
    });
  }

  // ---- 2. one model in detail (and a second beside it) -----------------------------------
  function layerRows(m) {
    const L = m.layers;
    return L.name.map((n, i) => ({name: n, shape: L.shape[i], kind: L.kind[i], k: L.k[i],
      kept: L.kept[i], bits: L.bits_per_weight[i], bytes: L.bytes[i], share: L.share[i],
      distortion: L.distortion[i], dshare: L.distortion_share[i]}));
  }
  function drawDetail() {
    const m = byId.get(state.selected), c = state.compared === null ? null :
      byId.get(state.compared);
    $('detail-title').textContent = m ? label(m) : 'no model selected';
    if (!m) return;
    const info = [`<b>${esc(m.file)}</b>: ${m.file_bytes} bytes, ${fmt(m.file_ratio)}× smaller` +
      ` than fp32, ${fmt(m.bits_per_weight)} bits/weight; accuracy ${fmt(m.accuracy)}, KL` +
      ` ${fmt(m.kl)}, agreement ${fmt(m.agreement)}`,
      `settings: <code>${esc(JSON.stringify(m.config))}</code>`,
      `sha256 <span class="hash">${esc(m.sha256 || '–')}</span>`];
    if (c) info.push(`<span style="color:#d97706">compared with <b>${esc(label(c))}</b>` +
      ` (${c.file_bytes} B, accuracy ${fmt(c.accuracy)}, KL ${fmt(c.kl)})</span>`);
    $('detail-info').innerHTML = info.join('<br>');
    if (!m.layers) {
      $('layers').innerHTML = `<p class="warn">${esc(m.file)}: ${esc(m.missing)}</p>`;
      Plotly.purge('layer-bars');
      return;
    }
    const rows = layerRows(m), other = c && c.layers ? new Map(layerRows(c).map(r =>
      [r.name, r])) : null;
    let html = '<div class="scroll"><table id="layer-table"><tr><th class="l">layer</th>' +
      '<th class="l">shape</th><th class="l">kind</th><th>k</th><th>kept</th>' +
      '<th>bits/weight</th><th>bytes</th><th>share of file</th><th>distortion</th>' +
      '<th>distortion share</th>' + (other ? '<th>bits/weight (compared)</th>' +
      '<th>Δ bytes</th>' : '') + '</tr>';
    for (const r of rows) {
      const o = other && other.get(r.name);
      html += `<tr><td class="l">${esc(r.name)}</td><td class="l">${esc(r.shape)}</td>` +
        `<td class="l">${esc(r.kind)}</td><td>${fmt(r.k)}</td><td>${pct(r.kept)}</td>` +
        `<td>${fmt(r.bits)}</td><td>${r.bytes}</td><td>${pct(r.share)}</td>` +
        `<td>${fmt(r.distortion)}</td><td>${pct(r.dshare)}</td>` +
        (other ? `<td>${o ? fmt(o.bits) : '–'}</td><td>${o ? o.bytes - r.bytes : '–'}</td>` :
          '') + '</tr>';
    }
    $('layers').innerHTML = html + '</table></div>' + `<p class="note">header and manifest:` +
      ` ${m.header_bytes} B of ${m.file_bytes} B. Distortion: the method's own per-layer` +
      ` measure (squared error, importance-weighted for importance objectives).</p>`;
    // bars: tensors holding >= 0.5% of the file or of the distortion; the rest summed
    const big = r => (r.share || 0) >= 0.005 || (r.dshare || 0) >= 0.005;
    const small = rows.filter(r => !big(r)), bars = rows.filter(big);
    if (small.length) {
      const sum = key => small.reduce((a, r) => a + (r[key] || 0), 0);
      bars.push({name: `other (${small.length} small tensors)`, share: sum('share'),
                 dshare: sum('dshare')});
    }
    const shareOf = (o, name) => name.startsWith('other (') ? small.reduce((a, r) =>
      a + ((o.get(r.name) || {}).share || 0), 0) : (o.get(name) || {}).share;
    const names = bars.map(r => r.name).reverse(), traces = [
      {type: 'bar', orientation: 'h', name: 'share of file bytes', y: names,
       x: bars.map(r => r.share).reverse(), marker: {color: '#3b82f6'}},
      {type: 'bar', orientation: 'h', name: 'share of distortion', y: names,
       x: bars.map(r => r.dshare).reverse(), marker: {color: '#ef4444'}}];
    if (other) traces.push({type: 'bar', orientation: 'h', name: 'share of file (compared)',
      y: names, x: bars.map(r => shareOf(other, r.name)).reverse(),
      marker: {color: '#f59e0b'}});
    Plotly.react('layer-bars', traces, {barmode: 'group', height: 90 + 22 * bars.length *
      (other ? 1.4 : 1), margin: {l: 10, r: 10, t: 10, b: 40}, yaxis: {automargin: true},
      xaxis: {tickformat: '.0%', title: {text: 'share'}}, legend: {orientation: 'h'}},
      {displaylogo: false, responsive: true});
  }

  // ---- 3. where it disagrees ---------------------------------------------------------------
  function drawDisagreement() {
    const m = byId.get(state.selected);
    const ev = m && D.evaluation[m.id];
    const sweep = m ? D.sweeps[m.sweep] : null, classes = sweep && sweep.classes || [];
    if (!ev) {
      $('disagree-note').textContent = m ? (D.evaluation_note || 'this model was not' +
        ' evaluated') + ' — pick one of the evaluated models (marked ✓ in the table).' : '';
      ['confusion', 'per-class'].forEach(id => Plotly.purge(id));
      $('gallery').innerHTML = '';
      return;
    }
    const n = sweep.num_samples;
    $('disagree-note').textContent = `${ev.changed_count} of ${n} predictions changed ` +
      `(one sample = ${(100 / n).toFixed(2)} points of accuracy).`;
    Plotly.react('confusion', [{type: 'heatmap', z: ev.confusion, x: classes, y: classes,
      colorscale: [[0, '#ffffff'], [1, '#1d4ed8']], texttemplate: '%{z}', hovertemplate:
      'original %{y} → compressed %{x}: %{z}<extra></extra>', zmin: 0,
      zmax: Math.max(1, ...ev.confusion.flatMap((r, i) => r.filter((_, j) => j !== i)))}],
      {height: 380, margin: {l: 60, r: 10, t: 10, b: 50}, xaxis: {title: {text:
      'compressed prediction'}, type: 'category'}, yaxis: {title: {text: 'original prediction'},
      type: 'category', autorange: 'reversed'}}, {displaylogo: false, responsive: true});
    const drop = ev.per_class.original.map((o, i) => ({c: classes[i], d:
      ev.per_class.compressed[i] - o})).sort((a, b) => a.d - b.d);
    Plotly.react('per-class', [{type: 'bar', x: drop.map(r => String(r.c)), y: drop.map(r =>
      r.d), marker: {color: drop.map(r => r.d < 0 ? '#ef4444' : '#10b981')},
      hovertemplate: 'class %{x}: %{y:+.1%}<extra></extra>'}], {height: 380, margin: {l: 60,
      r: 10, t: 10, b: 50}, xaxis: {type: 'category', title: {text: 'true class (worst first)'}},
      yaxis: {tickformat: '+.0%', title: {text: 'accuracy change'}}},
      {displaylogo: false, responsive: true});
    const top = t => t.map(([c, p]) => `${esc(classes[c] !== undefined ? classes[c] : c)}` +
      ` ${(100 * p).toFixed(0)}%`).join(', ');
    $('gallery').innerHTML = ev.changed.length ? ev.changed.map(s => {
      const uri = (D.thumbnails[m.sweep] || {})[s.index];
      return `<div class="card">${uri ? `<img class="thumb" alt="sample ${s.index}" ` +
        `src="${uri}">` : ''}<b>#${s.index}</b><br>label <b>${esc(classes[s.label])}</b>` +
        `<br>KL ${fmt(s.kl, 3)}<div class="top3">original: ${top(s.original)}<br>` +
        `compressed: ${top(s.compressed)}</div></div>`;
    }).join('') : '<p class="note">no prediction changed.</p>';
  }

  function select(id, asSecond) {
    if (asSecond) state.compared = state.compared === id || id === state.selected ? null : id;
    else { state.selected = id; if (state.compared === id) state.compared = null; }
    $('compare').value = state.compared === null ? '' : String(state.compared);
    drawRD(); markRows(); drawDetail(); drawDisagreement();
  }
  window.reportSelect = select;

  // ---- set up ----------------------------------------------------------------------------
  drawModels();
  $('compare').innerHTML = '<option value="">— none —</option>' + M.map(m =>
    `<option value="${m.id}">${esc(label(m))}</option>`).join('');
  $('compare').addEventListener('change', ev => {
    state.compared = ev.target.value === '' ? null : +ev.target.value;
    drawRD(); markRows(); drawDetail();
  });
  for (const [id, key] of [['x-axis', 'x'], ['y-axis', 'y']]) {
    $(id).addEventListener('change', ev => { state[key] = ev.target.value; drawRD(); });
  }
  drawRD();
  $('rd').on('plotly_click', ev => {
    const p = ev.points.find(q => q.data.meta === 'runs');
    if (p) select(p.customdata, ev.event && ev.event.shiftKey);
  });
  const evaluated = M.filter(m => D.evaluation[m.id]);
  // first shown: the smallest file within one point of the original's accuracy (evaluated
  // models preferred), else the most accurate model
  const pool = evaluated.length ? evaluated : M;
  const keeps = pool.filter(m => m.accuracy !== null &&
    m.accuracy >= ((D.sweeps[m.sweep].reference || {}).accuracy || 0) - 0.01);
  const first = keeps.length ? keeps.reduce((a, b) => b.file_ratio > a.file_ratio ? b : a)
    : pool.reduce((a, b) => (b.accuracy || 0) > (a.accuracy || 0) ? b : a);
  document.querySelectorAll('tr.model-row').forEach(tr => {
    if (D.evaluation[tr.dataset.id]) tr.cells[2].textContent += ' ✓';
  });
  select(first.id, false);
  state.ready = true;
  state.readyMs = performance.now();
})();
"""
