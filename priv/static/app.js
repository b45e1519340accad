/* ElixirScope execution cinema — plain JavaScript, no build step.
 * Every value from the recording is put in the page with textContent (never innerHTML),
 * and drawn on the canvas with fillText, so captured strings are always shown as text. */
(() => {
  'use strict';

  // ------------------------------------------------------------------ helpers
  const $ = (s) => document.querySelector(s);
  const token = new URLSearchParams(location.search).get('token');

  function el(tag, props, ...kids) {
    const n = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v == null) continue;
        if (k === 'class') n.className = v;
        else if (k === 'text') n.textContent = v;
        else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
        else if (k === 'style') n.style.cssText = v;
        else n.setAttribute(k, v);
      }
    }
    for (const kid of kids.flat()) {
      if (kid == null || kid === false) continue;
      n.appendChild(typeof kid === 'string' || typeof kid === 'number' ? document.createTextNode(String(kid)) : kid);
    }
    return n;
  }

  async function api(path) {
    const r = await fetch('/api/' + path, { headers: token ? { 'x-scope-token': token } : {}, cache: 'no-store' });
    const body = await r.json().catch(() => ({ error: 'bad response' }));
    if (!r.ok) throw new Error(body.error || ('HTTP ' + r.status));
    return body;
  }

  function fmtDur(ns) {
    if (ns == null) return '—';
    const a = Math.abs(ns);
    if (a < 1e3) return ns.toFixed(0) + ' ns';
    if (a < 1e6) return (ns / 1e3).toFixed(a < 1e4 ? 2 : 1) + ' µs';
    if (a < 1e9) return (ns / 1e6).toFixed(a < 1e7 ? 2 : 1) + ' ms';
    return (ns / 1e9).toFixed(3) + ' s';
  }
  const fmtT = (t) => '+' + fmtDur(t);

  /** a time as an offset with the decimals that `res` (ns, the smallest step it must tell
   *  apart) needs, in the unit of `ref` (default: of t itself): zoomed in, every ruler label differs */
  function fmtAt(t, res, ref) {
    const a = Math.abs(ref == null ? t : ref);
    const [div, unit] = a < 1e3 ? [1, 'ns'] : a < 1e6 ? [1e3, 'µs'] : a < 1e9 ? [1e6, 'ms'] : [1e9, 's'];
    const dec = Math.max(0, Math.min(9, Math.ceil(-Math.log10(Math.max(res, 1) / div) - 1e-9)));
    return (t < 0 ? '−' : '+') + (Math.abs(t) / div).toFixed(dec) + ' ' + unit;
  }

  function debounce(fn, ms) {
    let h = null;
    return (...a) => { clearTimeout(h); h = setTimeout(() => fn(...a), ms); };
  }

  function hashHue(s) {
    let h = 2166136261;
    for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619); }
    return (h >>> 0) % 360;
  }
  // a calm palette (no reds: red means an exception); module picks the hue family, function the shade
  const PALETTE = ['#6366f1', '#8b5cf6', '#0ea5e9', '#14b8a6', '#22c55e', '#a855f7', '#3b82f6', '#06b6d4',
                   '#10b981', '#7c3aed', '#2563eb', '#0891b2', '#4f46e5', '#0d9488', '#65a30d', '#c026d3'];
  const colorCache = new Map();
  function spanColor(mfa) {
    let c = colorCache.get(mfa);
    if (!c) {
      const mod = mfa.replace(/\.[^.]*$/, '');
      const base = PALETTE[hashHue(mod) % PALETTE.length];
      const shade = (hashHue(mfa) % 3) * 0.12;
      c = shade ? mix(base, shade) : base;
      colorCache.set(mfa, c);
    }
    return c;
  }
  function mix(hex, amount) { // lighten towards white
    const n = parseInt(hex.slice(1), 16);
    const ch = (v) => Math.round(v + (255 - v) * amount);
    return `rgb(${ch(n >> 16)}, ${ch((n >> 8) & 255)}, ${ch(n & 255)})`;
  }

  // ------------------------------------------------------------------- state
  const MAX_CLIENT_EVENTS = 400000;
  const RULER = 28, GUT = 196, ROWH = 17, PAD = 7, MAXD = 16;
  const S = {
    kinds: [], rows: [], byId: new Map(), lanes: [], laneByPid: new Map(), spans: new Map(),
    sends: new Map(), arrows: [], spawns: [],
    tStart: 0, tEnd: 0, viewStart: 0, viewEnd: 1e6, scrollY: 0,
    scrub: null, cursor: -1, selectedId: null, selectedLane: null,
    matches: new Set(), matchList: [], live: false, follow: true, lastId: 0, summary: null,
    capped: false, ready: false, layoutDirty: true, histogram: null, rulerLabels: [], opening: null,
  };

  // ---------------------------------------------------------------- ingest
  function laneFor(pid, name, node) {
    let lane = S.laneByPid.get(pid);
    if (!lane) {
      lane = { pid, name: name || null, node: node || '', index: S.lanes.length, y: 0, h: 0, depth: [], maxDepth: 0, stack: [],
               points: [], events: [], hasState: false, module: null };
      S.lanes.push(lane); S.laneByPid.set(pid, lane); S.layoutDirty = true;
    } else if (name && !lane.name) lane.name = name;
    return lane;
  }

  function ingest(page) {
    const lanes = page.pids.map((p) => laneFor(p, page.names[p], page.nodes && page.nodes[p]));
    const crashed = new Set(page.crashed || []);
    for (const r of page.rows) {
      const [id, t, pi, ki, mi, callId, link, line, extra] = r;
      const lane = lanes[pi];
      const kind = S.kinds[ki] || 'custom';
      const row = { id, t, lane, kind, mfa: mi >= 0 ? page.mfas[mi] : null, callId, link, line, extra, idx: S.rows.length };
      S.rows.push(row); S.byId.set(id, row); lane.events.push(row);
      if (S.rows.length === 1 || t < S.tStart) S.tStart = t;
      if (t > S.tEnd) S.tEnd = t;
      switch (kind) {
        case 'call': {
          const depth = lane.stack.length;
          const span = { id, t0: t, t1: null, depth, mfa: row.mfa || '?', status: 'open', lane };
          lane.stack.push(span);
          (lane.depth[depth] || (lane.depth[depth] = [])).push(span);
          if (depth + 1 > lane.maxDepth) { lane.maxDepth = depth + 1; S.layoutDirty = true; }
          S.spans.set(id, span);
          if (!lane.module && row.mfa) { lane.module = row.mfa.replace(/\.[^.]*$/, ''); lane.firstCall = row.mfa; }
          row.span = span;
          break;
        }
        case 'return': case 'exception': case 'tail_call': {
          const span = S.spans.get(callId);
          if (span && span.lane === lane && span.t1 == null) {
            const i = lane.stack.lastIndexOf(span);
            if (i >= 0) {
              for (let j = lane.stack.length - 1; j > i; j--) { const lost = lane.stack[j]; lost.t1 = t; lost.status = 'lost'; }
              lane.stack.length = i;
            }
            span.t1 = t;
            span.status = kind === 'return' ? 'ok' : kind === 'exception' ? 'exception' : 'tail';
            if (kind === 'exception') span.reason = extra;
            row.span = span;
          }
          if (kind === 'exception') lane.points.push(row);
          break;
        }
        case 'state': lane.hasState = true; lane.points.push(row); break;
        case 'send':
          S.sends.set(id, row);
          if (extra != null && extra >= 0) row.dest = lanes[extra];
          lane.points.push(row);
          break;
        case 'receive': {
          const snd = link ? S.sends.get(link) : null;
          if (snd) { S.arrows.push({ from: snd, to: row }); snd.matched = true; }
          lane.points.push(row);
          break;
        }
        case 'spawn':
          if (extra != null && extra >= 0) { row.child = lanes[extra]; S.spawns.push(row); }
          lane.points.push(row);
          break;
        case 'exit':
          // the process's end: a crash marks the lane
          row.crash = crashed.has(id);
          lane.exit = row; if (row.crash) lane.crashed = true;
          lane.points.push(row);
          break;
        case 'custom': lane.points.push(row); break;
        default: break;
      }
    }
    S.lastId = Math.max(S.lastId, page.last_id || 0);
    S.histogram = null;
  }

  function layout() {
    let y = RULER + 4;
    // a cluster recording: lanes grouped by node (in order of first appearance within a node)
    for (const lane of [...S.lanes].sort((a, b) => a.node.localeCompare(b.node) || a.index - b.index)) {
      lane.y = y;
      lane.h = PAD * 2 + Math.max(2, Math.min(lane.maxDepth, MAXD)) * ROWH + 10;
      y += lane.h + 1;
    }
    S.contentH = y;
    S.layoutDirty = false;
    refreshDiffPids();
  }

  // ---------------------------------------------------------------- loading
  async function loadSummary() { applySummary(await api('summary')); }
  function applySummary(summary) {
    S.summary = summary;
    S.kinds = S.summary.kinds;
    S.live = S.summary.live;
    const title = $('#title');
    title.textContent = '';
    title.append(el('span', { class: 'badge' + (S.live ? ' live' : ''), text: S.live ? 'live' : 'recording' }),
                 S.summary.title || '');
    $('#btn-live').hidden = !S.live;
    $('#btn-live').classList.toggle('on', S.live && S.follow);
  }

  let loading = false;
  async function loadMore() {
    if (loading) return 0;
    loading = true;
    let added = 0;
    try {
      for (;;) {
        if (S.rows.length >= MAX_CLIENT_EVENTS) { S.capped = true; break; }
        const page = await api(`events?after_id=${S.lastId}&limit=20000`);
        if (page.rows.length) {
          const first = S.rows.length === 0;
          ingest(page); added += page.rows.length;
          if (first) fit();
          renderStats(); redraw();
        }
        if (!page.more) break;
      }
    } finally { loading = false; }
    if (added) { renderStats(); redraw(); }
    return added;
  }

  // links between processes (messages, calls, replies, spawns) computed by the server
  async function loadLinks() {
    let res;
    try { res = await api('links'); } catch (e) { return; }
    applyLinks(res);
  }
  function applyLinks(res) {
    const seen = new Set(S.arrows.map((a) => a.from.id + ':' + a.to.id));
    for (const [from, to, type] of res.links) {
      const a = S.byId.get(from), b = S.byId.get(to);
      if (!a || !b || seen.has(from + ':' + to)) continue;
      seen.add(from + ':' + to);
      S.arrows.push({ from: a, to: b, type });
      if (a.kind === 'send') a.matched = true;
      if (type === 'restart') (b.child || b.lane).restartOf = a.lane;
      // a GenServer.call in tail position: the client's span lasts until the reply
      if (type === 'reply' && b.kind === 'tail_call' && b.span && a.t >= b.span.t0) {
        b.span.t1 = Math.max(b.span.t1 || 0, a.t); b.span.status = 'ok'; b.span.reply = a;
        S.arrows[S.arrows.length - 1].to = { t: a.t, lane: b.lane, id: b.id };
      }
    }
    S.unpaired = new Set(res.unpaired);
    redraw();
  }

  function renderStats() {
    const st = $('#stats');
    st.textContent = '';
    const nExc = S.lanes.reduce((a, l) => a + l.points.filter((p) => p.kind === 'exception').length, 0);
    const item = (label, value) => el('span', null, label + ' ', el('b', { text: String(value) }));
    st.append(item('events', S.rows.length.toLocaleString()), item('processes', S.lanes.length),
              item('calls', S.spans.size.toLocaleString()), item('messages', S.sends.size.toLocaleString()),
              item('exceptions', nExc), item('span', fmtDur(S.tEnd - S.tStart)));
    if (S.summary && S.summary.stats) item && st.append(item('dropped', S.summary.stats.dropped));
    if (S.capped) st.append(el('span', { text: `showing the first ${S.rows.length.toLocaleString()} events` }));
    const legend = el('span', { class: 'legend' },
      el('i', { style: 'background:#7c6cf0' }), 'call',
      el('i', { style: 'background:#f87171' }), 'exception',
      el('i', { style: 'background:#fbbf24' }), 'state',
      el('i', { style: 'background:#22d3ee' }), 'message',
      el('i', { style: 'background:#34d399' }), 'spawn');
    st.append(legend);
    $('#empty').hidden = S.rows.length > 0;
  }

  // ------------------------------------------------------------------ canvas
  const cv = $('#timeline'), ctx = cv.getContext('2d');
  const ov = $('#overview'), octx = ov.getContext('2d');
  let dpr = window.devicePixelRatio || 1;

  function resize() {
    dpr = window.devicePixelRatio || 1;
    for (const c of [cv, ov]) {
      c.width = Math.max(1, Math.floor(c.clientWidth * dpr));
      c.height = Math.max(1, Math.floor(c.clientHeight * dpr));
    }
    redraw();
  }

  const W = () => cv.clientWidth, H = () => cv.clientHeight;
  const scale = () => (W() - GUT) / Math.max(1, S.viewEnd - S.viewStart);
  const xOf = (t) => GUT + (t - S.viewStart) * scale();
  const tOf = (x) => S.viewStart + (x - GUT) / scale();
  const endOf = (span) => (span.t1 == null ? S.tEnd : span.t1);

  let frameRequested = false;
  function redraw() {
    if (frameRequested) return;
    frameRequested = true;
    requestAnimationFrame(() => { frameRequested = false; draw(); drawOverview(); });
  }

  function firstEndingAfter(arr, t) { // spans at one depth are disjoint and sorted: ends are sorted too
    let lo = 0, hi = arr.length;
    while (lo < hi) { const m = (lo + hi) >> 1; if (endOf(arr[m]) < t) lo = m + 1; else hi = m; }
    return lo;
  }
  function firstAtOrAfter(arr, t) {
    let lo = 0, hi = arr.length;
    while (lo < hi) { const m = (lo + hi) >> 1; if (arr[m].t < t) lo = m + 1; else hi = m; }
    return lo;
  }

  function laneY(lane) { return lane.y - S.scrollY; }
  function depthY(lane, d) { return laneY(lane) + PAD + d * ROWH; }

  function draw() {
    const started = performance.now();
    drawFrame();
    S.drawMs = performance.now() - started;
    S.frames = (S.frames || 0) + 1;
  }

  function drawFrame() {
    S.t0frame = performance.now();
    if (S.layoutDirty) layout();
    const w = W(), h = H();
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = '#0d1017';
    ctx.fillRect(0, 0, w, h);
    const sc = scale();
    const vs = S.viewStart, ve = S.viewEnd;
    ctx.font = '11px "DejaVu Sans Mono", monospace';
    ctx.textBaseline = 'middle';

    for (const lane of S.lanes) {
      const ly = laneY(lane);
      if (ly > h || ly + lane.h < RULER) continue;
      ctx.fillStyle = lane === S.selectedLane ? '#1a2033' : lane.crashed ? '#1d1318' : (lane.index % 2 ? '#11151d' : '#131822');
      ctx.fillRect(GUT, ly, w - GUT, lane.h);
      // spans, depth by depth; sub-pixel spans are merged per pixel column
      const depths = Math.min(lane.depth.length, MAXD);
      for (let d = 0; d < depths; d++) {
        const arr = lane.depth[d];
        if (!arr || !arr.length) continue;
        const y = depthY(lane, d);
        // runs of sub-2px spans that touch are drawn as one rectangle (dense regions when zoomed out)
        let runX0 = -1, runX1 = -1, runColor = null;
        const flush = () => {
          if (runX1 < 0) return;
          ctx.fillStyle = runColor; ctx.globalAlpha = 0.85;
          ctx.fillRect(runX0, y, Math.max(1, runX1 - runX0), ROWH - 2);
          ctx.globalAlpha = 1; runX1 = -1;
        };
        for (let i = firstEndingAfter(arr, vs); i < arr.length; i++) {
          const sp = arr[i];
          if (sp.t0 > ve) break;
          const x0 = Math.max(GUT + (sp.t0 - vs) * sc, GUT), x1 = Math.min(GUT + (endOf(sp) - vs) * sc, w);
          if (x1 - x0 < 2 && sp.status !== 'exception') {
            if (runX1 >= 0 && x0 - runX1 < 1.5) { if (x1 > runX1) runX1 = x1; continue; }
            flush();
            runX0 = x0; runX1 = Math.max(x1, x0 + 1); runColor = spanColor(sp.mfa);
            continue;
          }
          flush();
          const cx0 = x0, bw = Math.max(1, x1 - x0);
          if (sp.status === 'exception') ctx.fillStyle = '#b91c1c';
          else ctx.fillStyle = spanColor(sp.mfa);
          ctx.globalAlpha = sp.status === 'open' ? 0.55 : sp.status === 'lost' ? 0.4 : 1;
          ctx.fillRect(cx0, y, bw, ROWH - 2);
          ctx.globalAlpha = 1;
          if (sp.status === 'exception') { ctx.strokeStyle = '#fecaca'; ctx.lineWidth = 1; ctx.strokeRect(cx0 + .5, y + .5, bw - 1, ROWH - 3); }
          if (bw > 34) {
            const chars = Math.floor((bw - 8) / 6.7);
            if (chars > 1) {
              const label = sp.mfa.length > chars ? sp.mfa.slice(0, chars - 1) + '…' : sp.mfa;
              ctx.fillStyle = '#fff';
              ctx.fillText(label, cx0 + 4, y + ROWH / 2 - 1);
            }
          }
        }
        flush();
      }
      if (lane.maxDepth > MAXD) {
        ctx.fillStyle = '#8490a6';
        ctx.fillText(`+${lane.maxDepth - MAXD} deeper levels`, GUT + 6, ly + lane.h - 6);
      }
      drawPoints(lane, ly, sc, vs, ve, w);
    }
    const tLanes = performance.now();
    drawArrows(sc, vs, ve, w, h);
    const tArrows = performance.now();
    S.parts = { lanes: tLanes - S.t0frame, arrows: tArrows - tLanes };
    drawMatches(sc, vs, ve);
    drawSelection();
    drawScrubber(h);
    drawRuler(w, sc, vs, ve);
    drawGutter(h);
  }

  function drawPoints(lane, ly, sc, vs, ve, w) {
    const pts = lane.points;
    const base = ly + lane.h - 5;
    const lastPx = {};
    for (let i = firstAtOrAfter(pts, vs); i < pts.length; i++) {
      const p = pts[i];
      if (p.t > ve) break;
      const x = GUT + (p.t - vs) * sc;
      if (x < GUT || x > w) continue;
      if (p.kind !== 'exception' && Math.abs(x - (lastPx[p.kind] ?? -10)) < 2) continue;
      lastPx[p.kind] = x;
      switch (p.kind) {
        case 'exception': {
          const d = Math.min(MAXD - 1, p.span ? p.span.depth : 0);
          const y = depthY(lane, d) - 2;
          ctx.fillStyle = '#f87171';
          ctx.beginPath(); ctx.moveTo(x, y + ROWH - 1); ctx.lineTo(x - 6, y - 5); ctx.lineTo(x + 6, y - 5); ctx.closePath(); ctx.fill();
          ctx.fillStyle = '#0d1017'; ctx.font = 'bold 9px sans-serif'; ctx.fillText('!', x - 1.5, y - 1); ctx.font = '11px "DejaVu Sans Mono", monospace';
          break;
        }
        case 'state':
          ctx.fillStyle = '#fbbf24';
          ctx.beginPath(); ctx.moveTo(x, base - 4); ctx.lineTo(x + 4, base); ctx.lineTo(x, base + 4); ctx.lineTo(x - 4, base); ctx.closePath(); ctx.fill();
          break;
        case 'send': case 'receive':
          ctx.fillStyle = '#22d3ee';
          ctx.beginPath(); ctx.arc(x, p.kind === 'send' ? ly + lane.h - 3 : ly + 4, 2.5, 0, 6.283); ctx.fill();
          break;
        case 'spawn':
          ctx.fillStyle = '#34d399'; ctx.fillRect(x - 2.5, base - 2.5, 5, 5);
          break;
        case 'exit':
          // a crash is a red cross; any other end a grey bar across the lane
          if (p.crash) {
            ctx.strokeStyle = '#f87171'; ctx.lineWidth = 2;
            ctx.beginPath(); ctx.moveTo(x - 5, ly + 4); ctx.lineTo(x + 5, ly + 14); ctx.moveTo(x + 5, ly + 4); ctx.lineTo(x - 5, ly + 14); ctx.stroke();
          } else {
            ctx.strokeStyle = '#8490a6'; ctx.lineWidth = 2;
            ctx.beginPath(); ctx.moveTo(x, ly + 3); ctx.lineTo(x, ly + lane.h - 3); ctx.stroke();
          }
          ctx.lineWidth = 1;
          break;
        default:
          ctx.fillStyle = '#a78bfa'; ctx.fillRect(x - 2, base - 2, 4, 4);
      }
    }
  }

  function arrow(x0, y0, x1, y1, color, dashed) {
    ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = 1.3;
    if (dashed) ctx.setLineDash([4, 3]);
    const mx = (x0 + x1) / 2;
    ctx.beginPath(); ctx.moveTo(x0, y0);
    ctx.bezierCurveTo(mx + (y1 - y0) * 0.08, y0, mx - (y1 - y0) * 0.08, y1, x1, y1);
    ctx.stroke();
    ctx.setLineDash([]);
    const ang = Math.atan2(y1 - y0, (x1 - x0) || 0.001);
    const a = Math.abs(x1 - x0) < 6 ? Math.PI / 2 * Math.sign(y1 - y0 || 1) : ang;
    ctx.beginPath(); ctx.moveTo(x1, y1);
    ctx.lineTo(x1 - 7 * Math.cos(a - 0.4), y1 - 7 * Math.sin(a - 0.4));
    ctx.lineTo(x1 - 7 * Math.cos(a + 0.4), y1 - 7 * Math.sin(a + 0.4));
    ctx.closePath(); ctx.fill();
  }

  function drawArrows(sc, vs, ve, w, h) {
    ctx.save();
    ctx.beginPath(); ctx.rect(GUT, RULER, w - GUT, h - RULER); ctx.clip();
    ctx.globalAlpha = 0.85;
    let drawn = 0;
    // messages go from the sender's lane edge to the receiver's facing edge
    const ends = (from, to) => (to.y >= from.y
      ? [laneY(from) + from.h - 2, laneY(to) + 3]
      : [laneY(from) + 3, laneY(to) + to.h - 2]);
    const colors = { reply: '#a78bfa', spawn: '#34d399', exit: '#f87171', task_reply: '#a78bfa', restart: '#fb923c', rpc: '#38bdf8', rpc_reply: '#a78bfa' };
    for (const a of S.arrows) {
      if (a.to.t < vs || a.from.t > ve) continue;
      if (++drawn > 4000) break;
      if (a.from.lane === a.to.lane) continue;
      const [y0, y1] = ends(a.from.lane, a.to.lane);
      arrow(GUT + (a.from.t - vs) * sc, y0, GUT + (a.to.t - vs) * sc, y1, colors[a.type] || '#22d3ee', false);
    }
    for (const s of S.sends.values()) {
      if (s.matched || !s.dest || s.dest === s.lane || s.t < vs || s.t > ve) continue;
      if (++drawn > 6000) break;
      const x = GUT + (s.t - vs) * sc;
      const [y0, y1] = ends(s.lane, s.dest);
      arrow(x, y0, x + 10, y1, '#22d3ee', true);
    }
    const mid = (lane) => laneY(lane) + lane.h - 5;
    for (const s of S.spawns) {
      if (s.t < vs || s.t > ve || !s.child) continue;
      const x = GUT + (s.t - vs) * sc;
      const c = s.child.events[0];
      arrow(x, mid(s.lane), c ? Math.max(x + 4, GUT + (c.t - vs) * sc) : x + 12, laneY(s.child) + PAD + ROWH / 2, '#34d399', true);
    }
    ctx.restore();
  }

  function rowXY(row) {
    const x = xOf(row.t);
    const lane = row.lane;
    if (row.span && (row.kind === 'call')) return { x, y: depthY(lane, Math.min(row.span.depth, MAXD - 1)) + ROWH / 2 - 1 };
    if (row.kind === 'exception' && row.span) return { x, y: depthY(lane, Math.min(row.span.depth, MAXD - 1)) + 2 };
    if (row.kind === 'send') return { x, y: laneY(lane) + lane.h - 3 };
    if (row.kind === 'receive') return { x, y: laneY(lane) + 4 };
    return { x, y: laneY(lane) + lane.h - 5 };
  }

  function drawMatches(sc, vs, ve) {
    if (!S.matchList.length) return;
    ctx.strokeStyle = '#fde047'; ctx.lineWidth = 1.5;
    for (const id of S.matchList) {
      const row = S.byId.get(id);
      if (!row || row.t < vs || row.t > ve) continue;
      const { x, y } = rowXY(row);
      ctx.beginPath(); ctx.arc(x, y, 6, 0, 6.283); ctx.stroke();
    }
    ctx.lineWidth = 1;
  }

  function drawSelection() {
    const row = S.selectedId != null ? S.byId.get(S.selectedId) : null;
    if (!row) return;
    ctx.strokeStyle = '#ffffff'; ctx.lineWidth = 2;
    const sp = row.kind === 'call' ? row.span : null;
    if (sp && sp.depth < MAXD) {
      const x0 = Math.max(GUT, xOf(sp.t0)), x1 = Math.min(W(), Math.max(xOf(endOf(sp)), xOf(sp.t0) + 2));
      ctx.strokeRect(x0 - 1, depthY(row.lane, sp.depth) - 1, x1 - x0 + 2, ROWH);
    } else {
      const { x, y } = rowXY(row);
      ctx.beginPath(); ctx.arc(x, y, 7, 0, 6.283); ctx.stroke();
    }
    ctx.lineWidth = 1;
  }

  function drawScrubber(h) {
    if (S.scrub == null) return;
    const x = xOf(S.scrub);
    if (x < GUT || x > W()) return;
    ctx.strokeStyle = '#a78bfa'; ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.moveTo(x, RULER); ctx.lineTo(x, h); ctx.stroke();
    ctx.lineWidth = 1;
  }

  function niceStep(span, px) {
    const target = span / Math.max(1, px / 110);
    const p = Math.pow(10, Math.floor(Math.log10(Math.max(target, 1e-3))));
    for (const m of [1, 2, 5, 10]) if (p * m >= target) return p * m;
    return p * 10;
  }

  function drawRuler(w, sc, vs, ve) {
    ctx.fillStyle = '#0b0e14';
    ctx.fillRect(0, 0, w, RULER);
    ctx.strokeStyle = '#232c3d';
    ctx.beginPath(); ctx.moveTo(0, RULER + .5); ctx.lineTo(w, RULER + .5); ctx.stroke();
    const step = niceStep(ve - vs, w - GUT);
    const ref = Math.max(Math.abs(vs), Math.abs(ve));
    ctx.fillStyle = '#8490a6'; ctx.font = '10.5px "DejaVu Sans", sans-serif';
    S.rulerLabels = [];
    // ticks at whole multiples of the step (computed from their index: a sum of steps drifts)
    for (let i = Math.ceil(vs / step), t = i * step; t <= ve; i++, t = i * step) {
      const x = GUT + (t - vs) * sc;
      const label = fmtAt(t, step, ref);
      S.rulerLabels.push(label);
      ctx.fillRect(x, RULER - 7, 1, 7);
      ctx.fillText(label, x + 3, 11);
      ctx.fillStyle = 'rgba(132,144,166,.08)'; ctx.fillRect(x, RULER, 1, H()); ctx.fillStyle = '#8490a6';
    }
    if (S.scrub != null) {
      const x = xOf(S.scrub);
      if (x >= GUT && x <= w) {
        const label = fmtAt(S.scrub, 1 / sc);
        const tw = label.length * 6.3 + 12;
        ctx.fillStyle = '#7c3aed';
        ctx.beginPath(); ctx.roundRect ? ctx.roundRect(x - tw / 2, 3, tw, 18, 4) : ctx.rect(x - tw / 2, 3, tw, 18); ctx.fill();
        ctx.fillStyle = '#fff'; ctx.fillText(label, x - tw / 2 + 6, 12);
      }
    }
    ctx.font = '11px "DejaVu Sans Mono", monospace';
    ctx.fillStyle = '#8490a6';
    ctx.fillText('scrub ▸', 10, RULER / 2);
  }

  function drawGutter(h) {
    ctx.fillStyle = '#0f131b';
    ctx.fillRect(0, RULER + 1, GUT, h);
    ctx.strokeStyle = '#232c3d';
    ctx.beginPath(); ctx.moveTo(GUT - .5, RULER); ctx.lineTo(GUT - .5, h); ctx.stroke();
    for (const lane of S.lanes) {
      const ly = laneY(lane);
      if (ly > h || ly + lane.h < RULER) continue;
      ctx.save();
      ctx.beginPath(); ctx.rect(0, Math.max(ly, RULER + 1), GUT - 1, lane.h); ctx.clip();
      if (lane === S.selectedLane) { ctx.fillStyle = '#1f1840'; ctx.fillRect(0, ly, GUT - 1, lane.h); ctx.fillStyle = '#a78bfa'; ctx.fillRect(0, ly, 3, lane.h); }
      const title = laneTitle(lane);
      ctx.fillStyle = '#e5e7eb'; ctx.font = 'bold 12px "DejaVu Sans", sans-serif';
      ctx.fillText(clip(title, 24), 12, ly + 13);
      ctx.fillStyle = '#8490a6'; ctx.font = '11px "DejaVu Sans Mono", monospace';
      ctx.fillText((lane.node ? lane.node.replace(/@.*/, '') + ' ' : '') + lane.pid + '  ' + lane.events.length + ' ev', 12, ly + 28);
      if (lane.crashed) { ctx.fillStyle = '#f87171'; ctx.fillRect(0, ly, 3, lane.h); }
      const fate = laneFate(lane);
      if (fate && lane.h > 40) { ctx.fillStyle = fate.color; ctx.fillText(clip(fate.text, 26), 12, ly + 43); }
      else if (lane.hasState && lane.h > 40) { ctx.fillStyle = '#fbbf24'; ctx.fillText('◆ GenServer', 12, ly + 43); }
      ctx.restore();
      ctx.fillStyle = '#1b2130'; ctx.fillRect(0, ly + lane.h, w0(), 1);
    }
  }
  const w0 = () => W();
  // crashed and restarted lanes say so under their name
  function laneFate(lane) {
    if (lane.crashed) return { text: '✖ crashed', color: '#f87171' };
    if (lane.restartOf) return { text: '↻ restart of ' + lane.restartOf.pid, color: '#fb923c' };
    return null;
  }
  function laneTitle(lane) {
    // unnamed and not observed: its first recorded call (its module alone reads like a server's name)
    const t = lane.name || lane.firstCall || lane.module || 'process';
    if (t.length <= 24) return t;
    const parts = t.split('.');
    return parts.length > 1 ? parts.slice(-2).join('.') : t;
  }
  const clip = (s, n) => (s.length > n ? s.slice(0, n - 1) + '…' : s);

  // overview: event density over the whole recording, the view window and the scrubber
  function drawOverview() {
    const w = ov.clientWidth, h = ov.clientHeight;
    octx.setTransform(dpr, 0, 0, dpr, 0, 0);
    octx.fillStyle = '#0b0e14'; octx.fillRect(0, 0, w, h);
    const t0 = S.tStart, t1 = Math.max(S.tEnd, t0 + 1);
    const bins = Math.max(1, Math.floor(w - GUT));
    if (!S.histogram || S.histogram.length !== bins) {
      const hist = new Uint32Array(bins), exc = new Uint8Array(bins);
      for (const r of S.rows) {
        const b = Math.min(bins - 1, Math.floor((r.t - t0) / (t1 - t0) * bins));
        hist[b]++;
        if (r.kind === 'exception') exc[b] = 1;
      }
      S.histogram = hist; S.excBins = exc;
    }
    let max = 1;
    for (const v of S.histogram) if (v > max) max = v;
    octx.fillStyle = '#4c3d99';
    for (let i = 0; i < bins; i++) {
      const v = S.histogram[i];
      if (!v) continue;
      const bh = Math.max(1, Math.sqrt(v / max) * (h - 8));
      octx.fillRect(GUT + i, h - bh, 1, bh);
    }
    octx.fillStyle = '#f87171';
    for (let i = 0; i < bins; i++) if (S.excBins[i]) octx.fillRect(GUT + i - 1, 0, 2, 6);
    const ox = (t) => GUT + (t - t0) / (t1 - t0) * bins;
    const a = Math.max(GUT, ox(S.viewStart)), b = Math.min(w, ox(S.viewEnd));
    octx.fillStyle = 'rgba(167,139,250,.16)'; octx.fillRect(a, 0, Math.max(2, b - a), h);
    octx.strokeStyle = '#a78bfa'; octx.strokeRect(a + .5, .5, Math.max(2, b - a) - 1, h - 1);
    if (S.scrub != null) { octx.fillStyle = '#e9d5ff'; octx.fillRect(ox(S.scrub), 0, 1, h); }
    octx.fillStyle = '#8490a6'; octx.font = '11px "DejaVu Sans", sans-serif'; octx.textBaseline = 'middle';
    octx.fillText('overview', 12, h / 2);
  }

  // ------------------------------------------------------------------ view
  function fit() {
    const span = Math.max(S.tEnd - S.tStart, 1000);
    S.viewStart = S.tStart - span * 0.02;
    S.viewEnd = S.tEnd + span * 0.03;
    redraw();
  }
  /** the opening view of a recording: its first crash, else its busiest moment, at a scale
   *  where the calls there can be read (the whole of a recording shows µs calls as slivers) */
  function openingView() {
    const total = S.tEnd - S.tStart;
    if (S.live || S.rows.length < 2 || total <= 0) { fit(); return; }
    const plot = Math.max(100, W() - GUT);
    const exc = S.rows.find((r) => r.kind === 'exception');
    const root = exc && crashRoot(exc, total);
    let mid, width;
    if (root) {
      // the call around the crash fills the middle quarter: its callees and its caller's request show
      mid = (root.t0 + endOf(root)) / 2; width = 4 * Math.max(endOf(root) - root.t0, 500);
    } else {
      // a typical call about 12 px wide, over the interval of that width holding the most events
      width = typicalCall() * plot / 12;
      mid = busiest(width, exc ? exc.t : null);
    }
    width = Math.max(width, 2000);
    if (width >= total * 0.8) { fit(); return; }
    S.viewStart = mid - width / 2; S.viewEnd = mid + width / 2;
    S.opening = { start: S.viewStart, end: S.viewEnd, focus: exc ? exc.id : null };
    redraw();
  }
  // the outermost call around an exception that is not much longer than the call that raised
  // (a process's long-running loop would frame everything); null when there is none
  function crashRoot(exc, total) {
    const own = exc.span, lane = exc.lane;
    if (!own) return null;
    const limit = Math.max(20 * (endOf(own) - own.t0), 1000);
    for (let d = 0; d <= own.depth; d++) {
      const arr = lane.depth[d] || [];
      const sp = arr[firstEndingAfter(arr, exc.t)];
      if (sp && sp.t0 <= exc.t && endOf(sp) - sp.t0 <= limit) return endOf(sp) - sp.t0 < total / 4 ? sp : null;
    }
    return null;
  }
  function typicalCall() { // the median length of (up to 5,000) finished calls
    const ds = [];
    for (const sp of S.spans.values()) { if (sp.t1 != null) ds.push(sp.t1 - sp.t0); if (ds.length >= 5000) break; }
    ds.sort((a, b) => a - b);
    return Math.max(ds.length ? ds[ds.length >> 1] : 1000, 200);
  }
  function busiest(width, at) { // the middle of the `width`-long interval holding the most events (or around `at`)
    if (at != null) return at;
    const ts = Float64Array.from(S.rows, (r) => r.t).sort();
    let best = 0, bi = 0, bj = 0;
    for (let i = 0, j = 0; i < ts.length; i++) {
      while (j < ts.length && ts[j] - ts[i] <= width) j++;
      if (j - i > best) { best = j - i; bi = i; bj = j - 1; }
    }
    return (ts[bi] + ts[bj]) / 2;
  }
  function zoom(factor, atX) {
    const x = atX == null ? GUT + (W() - GUT) / 2 : atX;
    const t = tOf(x);
    const span = Math.max(50, Math.min((S.viewEnd - S.viewStart) * factor, Math.max(1e3, (S.tEnd - S.tStart) * 20)));
    S.viewStart = t - (x - GUT) / (W() - GUT) * span;
    S.viewEnd = S.viewStart + span;
    S.follow = false; $('#btn-live').classList.toggle('on', false);
    redraw();
  }
  function pan(dt) { S.viewStart += dt; S.viewEnd += dt; redraw(); }
  function clampScroll() { S.scrollY = Math.max(0, Math.min(S.scrollY, Math.max(0, (S.contentH || 0) - H() + 40))); }
  function ensureVisible(row) {
    const span = S.viewEnd - S.viewStart;
    if (row.t < S.viewStart + span * 0.05 || row.t > S.viewEnd - span * 0.05) { S.viewStart = row.t - span / 2; S.viewEnd = row.t + span / 2; }
    if (S.layoutDirty) layout();
    const ly = row.lane.y - S.scrollY;
    if (ly < RULER || ly + row.lane.h > H()) { S.scrollY = row.lane.y - RULER - 10; clampScroll(); }
  }

  // ----------------------------------------------------------------- hit test
  function laneAt(y) {
    for (const lane of S.lanes) { const ly = laneY(lane); if (y >= ly && y < ly + lane.h) return lane; }
    return null;
  }
  function hit(x, y) {
    const lane = laneAt(y);
    if (!lane || x < GUT) return { lane };
    const tol = 4 / scale();
    const t = tOf(x);
    // points first (exceptions, states, messages)
    const pts = lane.points;
    let best = null, bestD = 7;
    for (let i = Math.max(0, firstAtOrAfter(pts, t - 8 / scale()) - 1); i < pts.length; i++) {
      const p = pts[i];
      if (p.t > t + 8 / scale()) break;
      const q = rowXY(p);
      const dd = Math.hypot(q.x - x, q.y - y);
      if (dd < bestD) { bestD = dd; best = p; }
    }
    if (best) return { lane, row: best };
    const d = Math.floor((y - laneY(lane) - PAD) / ROWH);
    const arr = lane.depth[d];
    if (d >= 0 && d < MAXD && arr) {
      // the span under the pointer, else the nearest one within the tolerance
      let best = null, bestD = Infinity;
      for (let i = firstEndingAfter(arr, t - tol); i < arr.length && arr[i].t0 <= t + tol; i++) {
        const sp = arr[i];
        const dd = t < sp.t0 ? sp.t0 - t : t > endOf(sp) ? t - endOf(sp) : 0;
        if (dd < bestD) { bestD = dd; best = sp; }
      }
      if (best) return { lane, row: S.byId.get(best.id), span: best };
    }
    return { lane };
  }

  // --------------------------------------------------------------- selection
  function selectLane(lane) {
    if (S.selectedLane === lane) return;
    S.selectedLane = lane;
    treeDirty = true;
    if (activeTab === 'tree') loadTree();
    if (lane && lane.hasState) $('#diff-pid').value = lane.pid;
    redraw();
  }

  function selectRow(row, opts = {}) {
    if (!row) return;
    S.selectedId = row.id;
    S.cursor = row.idx;
    selectLane(row.lane);
    // at a call's end, show the instant just before it: the call still open, its state as it was
    setScrub(row.kind === 'return' || row.kind === 'exception' ? row.t - 1 : row.t);
    if (opts.reveal) ensureVisible(row);
    $('#status-sel').textContent = `#${row.id} ${row.kind} ${row.mfa || ''} ${row.lane.pid}`;
    loadDetail(row.id, opts.show !== false);
    redraw();
  }

  function setScrub(t) {
    S.scrub = t;
    $('#status-t').textContent = 't = ' + fmtAt(t, 1 / scale());
    loadInstant();
    redraw();
  }

  // ---------------------------------------------------------------- inspector
  const loadDetail = debounce(async (id, show) => {
    try {
      const d = await api('event/' + id);
      if (d.id !== S.selectedId) return;
      renderInspector(d);
      if (show) showTab('inspector');
    } catch (e) { renderError('#panel-inspector', e); }
  }, 90);

  function renderError(sel, e) {
    const p = $(sel); p.textContent = ''; p.append(el('div', { class: 'placeholder', text: 'Error: ' + e.message }));
  }

  const term = (text, cls) => el('pre', { class: 'term' + (cls ? ' ' + cls : '') }, text);
  const jump = (label, id) => el('a', { class: 'jump', onclick: () => selectRow(S.byId.get(id), { reveal: true }) }, label);

  /** a card of key/value rows; `stacked` puts each key above its value (keys that are source code) */
  function kvCard(title, pairs, stacked) {
    return el('div', { class: 'card' }, el('h4', { text: title }),
      el('div', { class: stacked ? 'kv stacked' : 'kv' }, pairs.flatMap(([k, v]) => [el('div', { class: 'k' }, k), term(v)])));
  }

  function exceptionCard(ex, title) {
    return el('div', { class: 'card' }, el('h4', { text: title || 'Exception' }),
      term(ex.message, 'err'),
      ex.stacktrace.length ? el('ul', { class: 'stack' }, ex.stacktrace.map((l) => el('li', { text: l }))) : null);
  }

  function renderInspector(d) {
    const p = $('#panel-inspector');
    p.textContent = '';
    p.dataset.eventId = d.id;
    const c = d.call;
    p.append(el('div', { class: 'ev-head' },
      el('span', { class: 'kind ' + d.kind, text: d.kind }),
      el('span', { class: 'mfa', text: d.mfa || '(process event)' }),
      d.truncated ? el('span', { class: 'trunc', text: 'values truncated by capture limits' }) : null,
      d.redacted ? el('span', { class: 'trunc', text: 'redacted' }) : null));
    const row = S.byId.get(d.id);
    p.append(el('div', { class: 'meta' }, `event #${d.id} · `, el('a', { onclick: () => row && selectLane(row.lane), text: d.pid }),
      ` · ${fmtT(d.t)}`, d.line ? ` · line ${d.line}` : '',
      c && c.duration_ns != null ? ` · took ${fmtDur(c.duration_ns)}` : ''));
    p.append(el('div', { style: 'height:10px' }));
    const v = d.value || {};

    if (d.kind !== 'call' && d.kind !== 'return' && d.kind !== 'exception') {
      if (v.state != null) p.append(kvCard(`State (${v.phase} the callback)`, [['state', v.state]]));
      if (v.message != null) p.append(kvCard('Message', [['message', v.message]].concat(v.dest ? [['to', v.dest]] : [])));
      if (v.expr != null) p.append(kvCard('Expression', [[v.expr, v.value]], true));
      if (v.locals) p.append(kvCard('Locals', v.locals.map((x) => [x.name, x.value])));
      if (v.reason != null) p.append(kvCard('Exit reason', [['reason', v.reason]]));
      if (v.child != null) p.append(kvCard('Spawned', [['child', v.child]]));
      if (v.data != null) p.append(kvCard('Custom ' + v.name, [['data', v.data]]));
      if (v.target != null) p.append(kvCard('Tail call to ' + v.target, v.args.map((a, i) => ['arg' + (i + 1), a])));
      if (d.peer) p.append(el('div', { class: 'card' }, el('h4', { text: d.kind === 'send' ? 'Received by' : 'Sent by' }),
        jump(`${d.peer.pid} at ${fmtT(d.peer.t)} (event #${d.peer.id})`, d.peer.id)));
    }
    if (c) {
      const args = c.args.map((a, i) => ['arg' + (i + 1), a]);
      const card = kvCard(d.kind === 'call' ? 'Arguments' : `Arguments of call #${c.id}`, args.length ? args : [['', '(no arguments)']]);
      card.id = 'args';
      if (d.kind !== 'call') card.querySelector('h4').append(' ', jump('→ go to call', c.id));
      p.append(card);
      if (c.status === 'ok') p.append(kvCard('Returned', [['value', c.return]]));
      if (c.exception) p.append(exceptionCard(c.exception, 'Raised'));
      if (c.reply) { const rc = kvCard('Replied', [['value', c.reply.value]]); rc.querySelector('h4').append(' ', jump(`← from ${c.reply.pid}`, c.reply.id)); p.append(rc); }
      if (c.tail_call) p.append(kvCard('Ended by a tail call to ' + c.tail_call.target, c.tail_call.args.map((a, i) => ['arg' + (i + 1), a])));
      if (c.status === 'open') p.append(el('div', { class: 'card' }, el('h4', { text: 'Still running' }), 'No return recorded yet.'));
      for (const l of c.locals) p.append(kvCard(`Locals at line ${l.line}`, l.vars.map((x) => [x.name, x.value])));
      if (c.exprs.length) p.append(kvCard('Expressions', c.exprs.map((x) => [[x.source, el('span', { class: 'ln', text: `  line ${x.line}` })], x.value]), true));
      for (const s of c.states) p.append(kvCard(`GenServer state ${s.phase}`, [['state', s.state]]));
      if (c.omitted) p.append(el('div', { class: 'meta', text: `${c.omitted} more captured values not shown (step through the call's events with ⇧→)` }));
      if (c.parent) p.append(el('div', { class: 'meta' }, 'called from ', jump(c.parent.mfa, c.parent.id)));
    } else if (d.kind === 'exception' && v.exception) {
      p.append(exceptionCard(v.exception));
    }
    if (d.source) {
      const src = el('div', { class: 'src' });
      d.source.lines.forEach((text, i) => {
        const n = d.source.from + i;
        src.append(el('div', { class: n === d.source.line ? 'hl' : '' }, el('span', { class: 'ln', text: String(n) }), text));
      });
      p.append(el('div', { class: 'card' }, el('h4', { text: `Source ${d.source.file}:${d.source.line}` }), src));
    }
  }

  // ------------------------------------------------------------------ instant
  let lastStates = new Map();
  const loadInstant = debounce(async () => {
    if (S.scrub == null || !S.lanes.length) return;
    const lanes = S.lanes.filter((l) => l.hasState || l === S.selectedLane || l.events.length).slice(0, 64);
    const t = Math.round(S.scrub);
    try {
      const at = await api(`at?t=${t}&pids=${encodeURIComponent(lanes.map((l) => l.pid).join(','))}`);
      if (Math.round(S.scrub) !== t) return;
      renderInstant(at);
    } catch (e) { renderError('#panel-instant', e); }
  }, 110);

  function renderInstant(at) {
    const p = $('#panel-instant');
    p.textContent = '';
    p.dataset.t = at.t;
    p.append(el('div', { class: 'meta', style: 'margin-bottom:10px' }, 'At ', el('b', { text: fmtT(at.t) }),
      ' — each process’s current call and each GenServer’s state.'));
    const procs = at.processes.slice().sort((a, b) => (b.state ? 1 : 0) - (a.state ? 1 : 0));
    const next = new Map();
    for (const pr of procs) {
      const lane = S.laneByPid.get(pr.pid);
      const card = el('div', { class: 'card proc' });
      card.append(el('div', null, el('span', { class: 'pname', text: (lane && (lane.name || lane.module)) || 'process' }), ' ',
        el('span', { class: 'meta', text: pr.pid })));
      if (pr.stack.length) {
        for (const f of pr.stack) card.append(el('div', { class: 'stackline', onclick: () => selectRow(S.byId.get(f.id), { reveal: true }) },
          `${f.mfa}(${f.args})`));
      } else card.append(el('div', { class: 'meta', text: pr.last ? 'idle (no call open)' : 'not started yet' }));
      if (pr.state) {
        const pre = term(pr.state.value);
        pre.dataset.pid = pr.pid; pre.classList.add('state-value');
        if (lastStates.has(pr.pid) && lastStates.get(pr.pid) !== pr.state.value) pre.classList.add('changed');
        next.set(pr.pid, pr.state.value);
        card.append(el('h4', { style: 'margin-top:8px', text: `GenServer state (${pr.state.phase} callback at ${fmtT(pr.state.t)})` }), pre);
        if (pr.state.set_by) card.append(el('div', { class: 'setby' }, 'set by ',
          jump(clip(`${pr.state.set_by.mfa}(${pr.state.set_by.args})`, 90), pr.state.set_by.id), ` at ${fmtT(pr.state.set_by.t)}`));
      }
      p.append(card);
    }
    lastStates = next;
  }

  // ---------------------------------------------------------------- call tree
  let treeDirty = true;
  async function loadTree() {
    const lane = S.selectedLane;
    const p = $('#panel-tree');
    if (!lane) return;
    if (!treeDirty && p.dataset.pid === lane.pid) return;
    treeDirty = false;
    try {
      const tree = await api('call_tree?pid=' + encodeURIComponent(lane.pid) + '&limit=3000');
      p.textContent = '';
      p.dataset.pid = lane.pid;
      p.append(el('div', { class: 'meta', style: 'margin-bottom:8px' }, `Calls of ${lane.name || lane.module || ''} ${lane.pid}`,
        tree.truncated ? ' (first rows only)' : ''));
      const max = Math.max(1, ...tree.rows.map((r) => r.duration_ns || 0));
      for (const r of tree.rows) {
        const row = el('div', { class: 'tree-row ' + r.status, style: `padding-left:${r.depth * 14 + 2}px`, 'data-id': r.id,
          onclick: () => selectRow(S.byId.get(r.id), { reveal: true, show: false }) },
          el('span', { class: 'name', text: (r.children ? '▾ ' : '· ') + r.mfa }),
          el('span', { class: 'args', text: '(' + r.args + ')' }),
          el('span', { class: 'dur', text: r.status === 'exception' ? 'raised' : fmtDur(r.duration_ns) }),
          el('span', { class: 'bar', style: `width:${Math.round(60 * (r.duration_ns || 0) / max)}px` }));
        p.append(row);
      }
      if (!tree.rows.length) p.append(el('div', { class: 'placeholder', text: 'No calls recorded in this process.' }));
    } catch (e) { renderError('#panel-tree', e); }
  }

  // --------------------------------------------------------------- state diff
  const diffTimes = { a: null, b: null };
  function refreshDiffPids() {
    const sel = $('#diff-pid');
    const want = S.lanes.filter((l) => l.hasState);
    if (sel.options.length === want.length) return;
    const cur = sel.value;
    sel.textContent = '';
    for (const l of want) sel.append(el('option', { value: l.pid, text: `${l.name || l.module || 'process'} ${l.pid}` }));
    if (cur) sel.value = cur;
  }
  function setDiff(which) {
    if (S.scrub == null) return;
    diffTimes[which] = Math.round(S.scrub);
    $('#diff-' + which).textContent = fmtT(diffTimes[which]);
  }
  async function runDiff() {
    const out = $('#diff-out');
    const pid = $('#diff-pid').value;
    if (!pid || diffTimes.a == null || diffTimes.b == null) {
      out.textContent = ''; out.append(el('div', { class: 'placeholder', text: 'Pick a process and set A and B from the scrubber.' }));
      return;
    }
    try {
      const d = await api(`state_diff?pid=${encodeURIComponent(pid)}&t1=${diffTimes.a}&t2=${diffTimes.b}`);
      out.textContent = '';
      if (!d.before || !d.after) {
        const missing = !d.before && !d.after ? 'A and B' : !d.before ? 'A' : 'B';
        out.append(el('div', { class: 'card', text: `No state was recorded for this process at or before ${missing}: move the scrubber after its first state change.` }));
      } else if (!d.changes.length) out.append(el('div', { class: 'card', text: 'No change between A and B.' }));
      else {
        const tb = el('table', { class: 'changes' });
        for (const c of d.changes) {
          tb.append(el('tr', null, el('td', { class: 'op-' + c.op, text: c.op }), el('td', { text: c.path }),
            el('td', null, c.old != null ? el('div', { class: 'old', text: '− ' + c.old }) : null, c.new != null ? el('div', { class: 'new', text: '+ ' + c.new }) : null)));
        }
        out.append(el('div', { class: 'card' }, el('h4', { text: `${d.changes.length} change(s) from A to B` }), tb));
      }
      for (const [label, s] of [['A', d.before], ['B', d.after]]) {
        if (!s) continue;
        out.append(el('div', { class: 'card' }, el('h4', { text: `State at ${label} (${fmtT(label === 'A' ? d.t1 : d.t2)})` }), term(s.value),
          s.set_by ? el('div', { class: 'setby meta' }, 'set by ', jump(`${s.set_by.mfa}(${s.set_by.args})`, s.set_by.id)) : null));
      }
    } catch (e) { renderError('#diff-out', e); }
  }

  // ------------------------------------------------------------------ search
  async function runSearch(q) {
    const p = $('#panel-results');
    q = q.trim();
    if (!q) { S.matches = new Set(); S.matchList = []; $('#result-count').textContent = ''; redraw(); return; }
    try {
      const res = await api('search?q=' + encodeURIComponent(q) + '&limit=1000');
      S.matchList = res.ids; S.matches = new Set(res.ids);
      $('#result-count').textContent = `(${res.ids.length}${res.truncated ? '+' : ''})`;
      p.textContent = '';
      p.append(el('div', { class: 'meta', style: 'margin-bottom:8px', text: `${res.ids.length}${res.truncated ? '+' : ''} events match “${q}”` }));
      for (const id of res.ids.slice(0, 1000)) {
        const r = S.byId.get(id);
        p.append(el('div', { class: 'result', onclick: () => selectRow(r, { reveal: true, show: false }) },
          el('span', { class: 't', text: r ? fmtT(r.t) : '' }), el('span', { class: 'kind ' + (r ? r.kind : ''), text: r ? r.kind : '?' }),
          el('span', { text: r ? `${r.mfa || ''} ${r.lane.pid}` : '#' + id })));
      }
      showTab('results');
      if (res.ids.length && S.byId.get(res.ids[0])) selectRow(S.byId.get(res.ids[0]), { reveal: true, show: false });
      redraw();
    } catch (e) { renderError('#panel-results', e); showTab('results'); }
  }

  // -------------------------------------------------------------------- tabs
  let activeTab = 'inspector';
  function showTab(name) {
    activeTab = name;
    document.querySelectorAll('.tabs button').forEach((b) => b.classList.toggle('active', b.dataset.tab === name));
    document.querySelectorAll('.panel').forEach((p) => p.classList.toggle('active', p.id === 'panel-' + name));
    if (name === 'tree') loadTree();
  }

  // ------------------------------------------------------------ interaction
  let drag = null;
  cv.addEventListener('mousedown', (e) => {
    cv.focus();
    const r = cv.getBoundingClientRect();
    const x = e.clientX - r.left, y = e.clientY - r.top;
    drag = { x, y, sx: x, sy: y, moved: false, scrub: y < RULER && x >= GUT, vs: S.viewStart, ve: S.viewEnd, sy0: S.scrollY };
    if (drag.scrub) setScrub(tOf(x));
  });
  window.addEventListener('mousemove', (e) => {
    const r = cv.getBoundingClientRect();
    const x = e.clientX - r.left, y = e.clientY - r.top;
    if (drag) {
      if (Math.abs(x - drag.sx) + Math.abs(y - drag.sy) > 3) drag.moved = true;
      if (drag.scrub) { setScrub(tOf(Math.max(GUT, Math.min(W(), x)))); return; }
      if (drag.moved) {
        cv.classList.add('dragging');
        const dt = (x - drag.sx) / scale();
        S.viewStart = drag.vs - dt; S.viewEnd = drag.ve - dt;
        S.scrollY = drag.sy0 - (y - drag.sy); clampScroll();
        S.follow = false; $('#btn-live').classList.remove('on');
        redraw();
      }
      hideTip();
      return;
    }
    if (e.target === cv) hover(x, y, e); else hideTip();
  });
  window.addEventListener('mouseup', (e) => {
    if (!drag) return;
    const d = drag; drag = null;
    cv.classList.remove('dragging');
    if (d.moved || d.scrub) return;
    const h = hit(d.x, d.y);
    if (h.row) selectRow(h.row);
    else if (h.lane) { selectLane(h.lane); if (d.x >= GUT) setScrub(tOf(d.x)); }
    void e;
  });
  cv.addEventListener('wheel', (e) => {
    e.preventDefault();
    const r = cv.getBoundingClientRect();
    if (e.shiftKey) { S.scrollY += e.deltaY; clampScroll(); redraw(); return; }
    if (Math.abs(e.deltaX) > Math.abs(e.deltaY)) { pan(e.deltaX / scale()); return; }
    zoom(Math.exp(e.deltaY * 0.0016), e.clientX - r.left);
  }, { passive: false });

  const tip = $('#tooltip');
  function hideTip() { tip.hidden = true; }
  function hover(x, y) {
    const h = hit(x, y);
    if (!h.row || !h.row.lane) { hideTip(); return; }
    const row = h.row, sp = h.span || row.span;
    let text = `${row.kind}  ${row.mfa || (sp && sp.mfa) || ''}\n${row.lane.name || ''} ${row.lane.pid}  ${fmtT(row.t)}`;
    if (sp && row.kind === 'call') text += `\n${sp.status === 'open' ? 'still running' : sp.status + ' after ' + fmtDur(endOf(sp) - sp.t0)}`;
    if (row.kind === 'exception' && row.extra) text += '\n' + row.extra;
    if (row.kind === 'send' && row.dest) text += `\n→ ${row.dest.name || row.dest.pid}`;
    tip.textContent = text;
    tip.hidden = false;
    tip.style.left = Math.min(x + 14, W() - 300) + 'px';
    tip.style.top = (y + 16) + 'px';
  }

  ov.addEventListener('mousedown', (e) => {
    const move = (ev) => {
      const r = ov.getBoundingClientRect();
      const x = ev.clientX - r.left;
      const t0 = S.tStart, t1 = Math.max(S.tEnd, t0 + 1);
      const t = t0 + (x - GUT) / (r.width - GUT) * (t1 - t0);
      const span = S.viewEnd - S.viewStart;
      S.viewStart = t - span / 2; S.viewEnd = t + span / 2;
      redraw();
    };
    move(e);
    const up = () => { window.removeEventListener('mousemove', move); window.removeEventListener('mouseup', up); };
    window.addEventListener('mousemove', move); window.addEventListener('mouseup', up);
  });

  function step(dir, inLane) {
    if (!S.rows.length) return;
    let row;
    if (inLane && S.selectedLane) {
      const evs = S.selectedLane.events;
      const cur = S.selectedId != null ? S.byId.get(S.selectedId) : null;
      let i = cur && cur.lane === S.selectedLane ? evs.indexOf(cur) : (dir > 0 ? -1 : evs.length);
      i = Math.max(0, Math.min(evs.length - 1, i + dir));
      row = evs[i];
    } else {
      const i = Math.max(0, Math.min(S.rows.length - 1, (S.cursor < 0 ? (dir > 0 ? -1 : S.rows.length) : S.cursor) + dir));
      row = S.rows[i];
    }
    selectRow(row, { reveal: true, show: activeTab === 'inspector' });
  }

  document.addEventListener('keydown', (e) => {
    if (e.target.tagName === 'INPUT' || e.target.tagName === 'SELECT') {
      if (e.key === 'Escape') e.target.blur();
      return;
    }
    const k = e.key;
    if (k === 'ArrowRight') { step(1, e.shiftKey); e.preventDefault(); }
    else if (k === 'ArrowLeft') { step(-1, e.shiftKey); e.preventDefault(); }
    else if (k === 'ArrowDown' || k === 'ArrowUp') {
      const i = S.selectedLane ? S.selectedLane.index + (k === 'ArrowDown' ? 1 : -1) : 0;
      const lane = S.lanes[Math.max(0, Math.min(S.lanes.length - 1, i))];
      if (lane) { selectLane(lane); const ly = lane.y - S.scrollY; if (ly < RULER || ly + lane.h > H()) { S.scrollY = lane.y - RULER - 10; clampScroll(); } redraw(); }
      e.preventDefault();
    } else if (k === 'w' || k === '+' || k === '=') zoom(0.7);
    else if (k === 's' || k === '-') zoom(1 / 0.7);
    else if (k === 'a') pan(-(S.viewEnd - S.viewStart) * 0.15);
    else if (k === 'd') pan((S.viewEnd - S.viewStart) * 0.15);
    else if (k === '0') fit();
    else if (k === '/') { $('#search').focus(); e.preventDefault(); }
    else if (k === 'l' || k === 'L') toggleFollow();
    else if (k === 'Enter' && S.selectedId != null) showTab('inspector');
    else if (k === '?') $('#help').hidden = !$('#help').hidden;
    else if (k === 'Escape') { $('#help').hidden = true; S.selectedId = null; redraw(); }
  });

  function toggleFollow() {
    S.follow = !S.follow;
    $('#btn-live').classList.toggle('on', S.live && S.follow);
    if (S.follow) fit();
  }

  $('#search').addEventListener('keydown', (e) => { if (e.key === 'Enter') runSearch(e.target.value); });
  $('#search').addEventListener('search', (e) => { if (!e.target.value) runSearch(''); });
  $('#btn-fit').onclick = fit;
  $('#btn-zoom-in').onclick = () => zoom(0.6);
  $('#btn-zoom-out').onclick = () => zoom(1 / 0.6);
  $('#btn-live').onclick = toggleFollow;
  $('#btn-help').onclick = () => { $('#help').hidden = !$('#help').hidden; };
  $('#diff-set-a').onclick = () => setDiff('a');
  $('#diff-set-b').onclick = () => setDiff('b');
  $('#diff-run').onclick = runDiff;
  document.querySelectorAll('.tabs button').forEach((b) => { b.onclick = () => showTab(b.dataset.tab); });

  // resizable side panel
  $('#splitter').addEventListener('mousedown', (e) => {
    e.preventDefault();
    const move = (ev) => { document.documentElement.style.setProperty('--side', Math.max(280, Math.min(window.innerWidth - 360, window.innerWidth - ev.clientX)) + 'px'); resize(); };
    const up = () => { window.removeEventListener('mousemove', move); window.removeEventListener('mouseup', up); };
    window.addEventListener('mousemove', move); window.addEventListener('mouseup', up);
  });
  window.addEventListener('resize', resize);

  // ------------------------------------------------------------------- live
  async function poll() {
    if (!S.live) return;
    try {
      const before = S.rows.length;
      const wasAtEnd = S.viewEnd >= S.tEnd;
      const added = await loadMore();
      if (added) await loadLinks();
      if (added && S.follow && (wasAtEnd || before === 0)) fit();
    } catch (e) { /* server gone for a moment: retry */ }
    setTimeout(poll, 1000);
  }

  // ------------------------------------------------------------- test hooks
  window.cinema = {
    get ready() { return S.ready; },
    lanes: () => S.lanes.map((l) => ({ pid: l.pid, name: l.name, module: l.module, events: l.events.length, y: l.y, h: l.h, hasState: l.hasState,
      exited: !!l.exit, crashed: !!l.crashed, restartOf: l.restartOf ? l.restartOf.pid : null })),
    events: () => S.rows.length,
    findEvent: (kind, mfaPart) => { const r = S.rows.find((x) => x.kind === kind && (!mfaPart || (x.mfa || '').includes(mfaPart))); return r ? r.id : null; },
    arrows: () => S.arrows.map((a) => ({ from: a.from.id, to: a.to.id, type: a.type || 'message', fromLane: a.from.lane.pid, toLane: a.to.lane.pid })),
    stateEvents: (pid) => S.rows.filter((r) => r.kind === 'state' && (!pid || r.lane.pid === pid)).map((r) => ({ id: r.id, t: r.t, pid: r.lane.pid })),
    /** client coordinates (whole pixels, as mouse events have) of an event on the canvas; pans, scrolls and,
     *  for a call narrower than 30px, zooms so that it can be clicked the way a person would */
    eventPos: (id) => {
      const row = S.byId.get(id); if (!row) return null;
      ensureVisible(row);
      if (row.kind === 'call' && row.span) {
        const sp = row.span, dur = Math.max(endOf(sp) - sp.t0, 200);
        if (xOf(endOf(sp)) - xOf(sp.t0) < 30) { S.viewStart = sp.t0 - dur; S.viewEnd = endOf(sp) + dur; }
      }
      draw();
      const r = cv.getBoundingClientRect(); const p = rowXY(row);
      if (row.kind === 'call' && row.span) p.x = (Math.max(xOf(row.span.t0), GUT) + Math.min(xOf(endOf(row.span)), W())) / 2;
      return { x: Math.round(r.left + p.x), y: Math.round(r.top + p.y) };
    },
    /** client coordinates on the scrubber ruler for time t */
    rulerPos: (t) => { const r = cv.getBoundingClientRect(); return { x: r.left + xOf(t), y: r.top + RULER / 2 }; },
    view: () => ({ start: S.viewStart, end: S.viewEnd, scrub: S.scrub, selected: S.selectedId }),
    /** times one full redraw after zooming by `factor` (for the benchmark) */
    timeZoom: (factor) => { zoom(factor); draw(); return S.drawMs; },
    parts: () => S.parts,
    spans: (pid, d) => (S.laneByPid.get(pid).depth[d] || []).map((sp) => [sp.id, sp.t0, sp.t1, sp.status]),
    hitAt: (cx, cy) => { const r = cv.getBoundingClientRect(); const h = hit(cx - r.left, cy - r.top); return h.row ? { id: h.row.id, kind: h.row.kind, mfa: h.row.mfa } : null; },
    timePan: (fraction) => { pan((S.viewEnd - S.viewStart) * fraction); draw(); return S.drawMs; },
    fit: () => { fit(); draw(); return S.drawMs; },
    /** an event's time, kind and call as the page holds them */
    eventInfo: (id) => { const r = S.byId.get(id); return r ? { id, t: r.t, kind: r.kind, mfa: r.mfa, pid: r.lane.pid } : null; },
    /** the labels of the ruler as last drawn */
    rulerLabels: () => S.rulerLabels.slice(),
    /** the view the page opened with (null when it showed everything) */
    opening: () => S.opening || null,
    /** the ids of the events of `kind` between t0 and t1 */
    eventsBetween: (t0, t1, kind) => S.rows.filter((r) => r.t >= t0 && r.t <= t1 && (!kind || r.kind === kind)).map((r) => r.id),
    /** the width on screen, in px, of the call an event belongs to (the view is not changed) */
    spanPx: (id) => { const r = S.byId.get(id); const sp = r && r.span; return sp ? xOf(endOf(sp)) - xOf(sp.t0) : null; },
  };

  // ------------------------------------------------------------------- boot
  // the first answers of the API come inside the page (ElixirScope.Web.Handler)
  function embedded() {
    const node = document.getElementById('boot');
    try { return node ? JSON.parse(node.textContent) : null; } catch (e) { return null; }
  }

  // the opening: the view on the first crash (or the busiest moment), its process selected and
  // the scrubber just before it
  function openRecording() {
    openingView();
    const firstState = S.rows.find((r) => r.kind === 'state');
    const firstExc = S.rows.find((r) => r.kind === 'exception');
    if (firstExc) { selectLane(firstExc.lane); setScrub(firstExc.t - 1); showTab('instant'); }
    else if (firstState) setScrub(firstState.t);
  }

  (async function boot() {
    resize();
    const first = embedded();
    try {
      if (first && first.summary && first.events) {
        // painted now, while the script runs: no request, timer or animation frame comes before
        // the first paint, so a screenshot taken at the page's load event shows the recording
        applySummary(first.summary);
        if (first.events.rows.length) ingest(first.events);
        if (first.links) applyLinks(first.links);
        renderStats();
        openRecording();
        draw(); drawOverview();
        const [vs, ve] = [S.viewStart, S.viewEnd];
        // the rest of a large recording: framed again unless the view was moved meanwhile
        if (await loadMore()) {
          await loadLinks();
          if (S.viewStart === vs && S.viewEnd === ve) openRecording();
        }
      } else {
        await loadSummary();
        await loadMore();
        await loadLinks();
        renderStats();
        openRecording();
      }
    } catch (e) {
      $('#empty').hidden = false;
      $('#empty').textContent = 'Could not load the recording: ' + e.message;
    }
    S.ready = true;
    redraw();
    if (S.live) setTimeout(poll, 1000);
  })();
})();
