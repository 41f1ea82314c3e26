// The timeline page: decodes the embedded recording (layout in
// skiff-sim's timeline/json.rs), draws it on a canvas, and shows a step's
// state before and after. In live mode (`skiff up --ui`) it polls
// /status.json and appends a step whenever a node's state changes.
"use strict";
(function () {
  const ROLE_NAMES = ["down", "follower", "pre-candidate", "candidate", "leader"];
  const ROLE_COLOURS = ["#59606b", "#cfe3f7", "#f7efb5", "#f6c38a", "#7fcf8f"];
  const LANE_H = 54, LANE_GAP = 8, TOP = 26, LEFT = 64, CLIENT_H = 26;
  const ARROWS_MAX = 1500; // more messages in view are drawn as counts per column

  const raw = JSON.parse(document.getElementById("timeline-data").textContent);
  const live = raw.live === true;
  const strings = raw.strings || [];
  const nodeNames = raw.nodes || [];
  const nodes = nodeNames.length;

  // --- the model: plain arrays, so that live mode can append ---
  const M = {
    time: [], node: [], event: [], actions: [], after: [], // after: index into states, -1 down/unknown
    states: [],                                             // {role, term, vote, leader, commit, li, lt}
    byNode: [], msgs: [], spans: [], notes: [], reqs: [],
    end: raw.end || 0, violation: raw.violation || null,
    roleSegs: [], commitPts: [],                            // per node: [time, role, term] and [time, commit]
  };
  for (let n = 0; n < nodes; n++) { M.byNode.push([]); M.roleSegs.push([]); M.commitPts.push([]); }

  const small = (v, i) => (typeof v === "string" ? v.charCodeAt(i) - 48 : v[i]);
  function undelta(a) { const out = new Array(a.length); let p = 0; for (let i = 0; i < a.length; i++) { p += a[i]; out[i] = p; } return out; }

  function decode() {
    const st = raw.states, n = st.r.length;
    const t = undelta(st.t), c = undelta(st.c), li = undelta(st.i), lt = undelta(st.lt);
    for (let i = 0; i < n; i++) {
      M.states.push({ role: small(st.r, i), term: t[i], vote: st.v[i], leader: st.l[i], commit: c[i], li: li[i], lt: lt[i] });
    }
    const s = raw.steps, count = s.dt.length;
    const current = new Array(nodes).fill(-1);
    let time = 0, next = 0;
    for (let i = 0; i < count; i++) {
      time += s.dt[i];
      const node = small(s.n, i);
      if (small(s.c, i) === 1) current[node] = next++;
      pushStep(time, node, s.e[i], s.a[i], current[node]);
    }
    const m = raw.msgs; let step = 0;
    for (let i = 0; i < m.s.length; i++) {
      step += m.s[i];
      const sentAt = step < M.time.length ? M.time[step] : M.end;
      const from = step < M.node.length ? M.node[step] : 0;
      const d = m.d[i];
      M.msgs.push({ t: sentAt, from, to: small(m.to, i), kind: m.k[i], at: d >= 0 ? sentAt + d : -1, fate: d >= 0 ? 0 : -d });
    }
    for (const sp of raw.spans) M.spans.push({ kind: sp[0], node: sp[1], start: sp[2], end: sp[3], text: sp[4] });
    let nt = 0;
    for (let i = 0; i < raw.notes.t.length; i++) { nt += raw.notes.t[i]; M.notes.push({ t: nt, node: raw.notes.n[i], text: raw.notes.x[i] }); }
    const r = raw.reqs;
    for (let i = 0; i < r.c.length; i++) M.reqs.push({ client: r.c[i], node: r.n[i], start: r.s[i], end: r.s[i] + r.e[i], outcome: r.o[i] });
    M.msgs.sort((a, b) => a.t - b.t);
  }

  function pushStep(time, node, event, actions, after) {
    const i = M.time.length;
    const prev = M.byNode[node].length ? M.after[M.byNode[node][M.byNode[node].length - 1]] : -1;
    M.time.push(time); M.node.push(node); M.event.push(event); M.actions.push(actions); M.after.push(after);
    M.byNode[node].push(i);
    const sOld = prev >= 0 ? M.states[prev] : null, sNew = after >= 0 ? M.states[after] : null;
    const roleOld = sOld ? sOld.role : 0, roleNew = sNew ? sNew.role : 0;
    const segs = M.roleSegs[node];
    if (!segs.length || roleOld !== roleNew || (sOld && sNew && sOld.term !== sNew.term)) {
      segs.push([time, roleNew, sNew ? sNew.term : 0]);
    }
    const pts = M.commitPts[node];
    if (sNew && (!pts.length || pts[pts.length - 1][1] !== sNew.commit)) pts.push([time, sNew.commit]);
    if (time > M.end) M.end = time;
  }

  const text = (id) => (id >= 0 && id < strings.length ? strings[id] : "");
  function intern(s) { let i = strings.indexOf(s); if (i < 0) { i = strings.length; strings.push(s); } return i; }

  // --- view and geometry ---
  const canvas = document.getElementById("timeline");
  const ctx = canvas.getContext("2d");
  let width = 800, height = 300, dpr = window.devicePixelRatio || 1;
  const view = { t0: 0, t1: 1 };
  let selected = -1;
  const laneY = (n) => TOP + n * (LANE_H + LANE_GAP);
  const clientsY = () => laneY(nodes);
  const x = (t) => LEFT + ((t - view.t0) / (view.t1 - view.t0)) * (width - LEFT - 8);
  const tAt = (px) => view.t0 + ((px - LEFT) / (width - LEFT - 8)) * (view.t1 - view.t0);

  function resize() {
    dpr = window.devicePixelRatio || 1;
    width = canvas.parentElement.clientWidth || 800;
    height = clientsY() + CLIENT_H + 18;
    canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr);
    canvas.style.height = height + "px";
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  }

  function fit() { view.t0 = 0; view.t1 = Math.max(M.end, 1) * 1.01; }

  // First index with key(a[i]) >= v.
  function lower(a, v, key) { let lo = 0, hi = a.length; while (lo < hi) { const mid = (lo + hi) >> 1; if (key(a[mid]) < v) lo = mid + 1; else hi = mid; } return lo; }

  function formatTime(t) {
    if (raw.unit === "event") return "event " + Math.round(t);
    if (raw.unit === "ms") return (t / 1000).toFixed(3) + " s";
    if (Math.abs(t) >= 1e6) return (t / 1e6).toFixed(3) + " s";
    return (t / 1000).toFixed(3) + " ms";
  }

  // --- drawing ---
  let pending = false;
  function redraw() { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; draw(); listEvents(); }); } }

  function draw() {
    ctx.clearRect(0, 0, width, height);
    ctx.font = "11px system-ui, sans-serif";
    drawAxis();
    for (let n = 0; n < nodes; n++) drawLane(n);
    ctx.fillStyle = "#1d2330"; ctx.fillText("clients", 6, clientsY() + 14);
    // What starts before the view is cut at the lanes' left edge, not drawn over their names.
    ctx.save(); ctx.beginPath(); ctx.rect(LEFT, 0, width - LEFT, height); ctx.clip();
    drawSpans();
    drawMessages();
    drawRequests();
    drawNotes();
    drawViolation();
    drawSelection();
    ctx.restore();
    if (!window.__timelineReady) {
      // Milliseconds from the start of navigation to the first full draw.
      window.__timelineReadyMs = performance.now();
      window.__timelineReady = true;
    }
  }

  function drawAxis() {
    const span = view.t1 - view.t0, target = span / 8;
    const mag = Math.pow(10, Math.floor(Math.log10(Math.max(target, 1e-9))));
    const stepT = [1, 2, 5, 10].map((k) => k * mag).find((v) => v >= target) || mag * 10;
    ctx.fillStyle = "#4a5568"; ctx.strokeStyle = "#e2e6ea"; ctx.lineWidth = 1;
    for (let t = Math.ceil(view.t0 / stepT) * stepT; t <= view.t1; t += stepT) {
      const px = x(t);
      ctx.beginPath(); ctx.moveTo(px, TOP - 4); ctx.lineTo(px, height - 14); ctx.stroke();
      ctx.fillText(formatTime(t), px + 2, TOP - 8);
    }
  }

  function drawLane(n) {
    const y = laneY(n), segs = M.roleSegs[n];
    ctx.fillStyle = "#1d2330"; ctx.font = "bold 12px system-ui, sans-serif";
    ctx.fillText("node " + nodeNames[n], 6, y + 16);
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#eceff3"; ctx.fillRect(LEFT, y, width - LEFT - 8, LANE_H * 0.6); // before its first step and after the end
    let i = Math.max(0, lower(segs, view.t0, (s) => s[0]) - 1);
    let lastLabelX = -1e9;
    for (; i < segs.length && segs[i][0] <= view.t1; i++) {
      const s = segs[i], end = i + 1 < segs.length ? segs[i + 1][0] : M.end;
      const x0 = Math.max(LEFT, x(s[0])), x1 = Math.min(width - 8, x(end));
      if (x1 < LEFT) continue;
      ctx.fillStyle = ROLE_COLOURS[s[1]];
      ctx.fillRect(x0, y, Math.max(1, x1 - x0), LANE_H * 0.6);
      if (s[1] !== 0 && x1 - x0 > 34 && x0 - lastLabelX > 34) {
        ctx.fillStyle = "#1d2330"; ctx.fillText("t" + s[2], x0 + 3, y + 13); lastLabelX = x0;
      }
    }
    drawCommit(n, y + LANE_H * 0.62, LANE_H * 0.38);
  }

  // The commit index as a step line under the role band, with its value at the right edge.
  function drawCommit(n, y, h) {
    const pts = M.commitPts[n]; if (!pts.length) return;
    const maxC = Math.max(1, pts[pts.length - 1][1]);
    let i = Math.max(0, lower(pts, view.t0, (p) => p[0]) - 1);
    ctx.strokeStyle = "#3a6ea5"; ctx.lineWidth = 1.2; ctx.beginPath();
    let started = false, lastPx = -1, lastY = 0, value = pts[i][1];
    for (; i < pts.length && pts[i][0] <= view.t1; i++) {
      const px = Math.max(LEFT, x(pts[i][0]));
      const py = y + h - (pts[i][1] / maxC) * (h - 2);
      // One vertical per pixel column: the line costs the width, not the points.
      if (!started) { ctx.moveTo(px, py); started = true; } else if (px - lastPx >= 1) { ctx.lineTo(px, lastY); ctx.lineTo(px, py); lastPx = px; }
      lastY = py; value = pts[i][1];
    }
    if (started) { ctx.lineTo(width - 8, lastY); ctx.stroke(); }
    ctx.fillStyle = "#3a6ea5"; ctx.fillText("commit " + value, 6, y + h - 2);
  }

  function drawSpans() {
    for (const sp of M.spans) {
      if (sp.end < view.t0 || sp.start > view.t1) continue;
      const x0 = Math.max(LEFT, x(sp.start)), x1 = Math.min(width - 8, x(sp.end));
      if (sp.kind === 1) {
        ctx.fillStyle = "rgba(230, 80, 80, 0.16)";
        ctx.fillRect(x0, TOP, Math.max(1, x1 - x0), clientsY() - TOP - LANE_GAP);
        if (x1 - x0 > 80) { ctx.fillStyle = "#a33"; ctx.fillText(text(sp.text).slice(0, Math.floor((x1 - x0) / 6)), x0 + 3, clientsY() - LANE_GAP - 3); }
      } else {
        const y = laneY(sp.node);
        ctx.strokeStyle = "rgba(255,255,255,0.35)"; ctx.lineWidth = 1;
        for (let hx = x0 - LANE_H; hx < x1; hx += 7) {
          ctx.beginPath(); ctx.moveTo(Math.max(x0, hx), y + Math.max(0, x0 - hx)); ctx.lineTo(Math.min(x1, hx + LANE_H * 0.6), y + Math.min(LANE_H * 0.6, x1 - hx)); ctx.stroke();
        }
      }
    }
  }

  function drawMessages() {
    const span = view.t1 - view.t0;
    const from = lower(M.msgs, view.t0 - span * 0.05, (m) => m.t), to = lower(M.msgs, view.t1, (m) => m.t);
    const count = to - from;
    // Live, the status line carries the server's note instead.
    const status = live ? { textContent: "" } : document.getElementById("status");
    if (count > ARROWS_MAX) {
      // Too dense: per column, the messages sent and dropped, as bars on each sender's lane.
      const col = 4, cols = Math.ceil((width - LEFT) / col) + 1;
      const sent = new Array(nodes * cols).fill(0), lost = new Array(nodes * cols).fill(0);
      let peak = 1;
      for (let i = from; i < to; i++) {
        const m = M.msgs[i], c = Math.floor((x(m.t) - LEFT) / col);
        if (c < 0 || c >= cols) continue;
        const k = m.from * cols + c;
        if (m.fate) lost[k]++; else sent[k]++;
        peak = Math.max(peak, sent[k] + lost[k]);
      }
      for (let n = 0; n < nodes; n++) {
        const base = laneY(n) + LANE_H * 0.6;
        for (let c = 0; c < cols; c++) {
          const k = n * cols + c, total = sent[k] + lost[k]; if (!total) continue;
          const h = Math.max(1, (total / peak) * LANE_H * 0.35);
          ctx.fillStyle = "rgba(40, 60, 90, 0.45)"; ctx.fillRect(LEFT + c * col, base - h, col - 1, h);
          if (lost[k]) { const hl = Math.max(1, (lost[k] / peak) * LANE_H * 0.35); ctx.fillStyle = "rgba(200, 30, 30, 0.8)"; ctx.fillRect(LEFT + c * col, base - hl, col - 1, hl); }
        }
      }
      status.textContent = count + " messages in view, drawn as counts per column (dark: sent, red: lost or blocked); zoom in for arrows";
      return;
    }
    status.textContent = count + " messages in view";
    for (let i = from; i < to; i++) {
      const m = M.msgs[i];
      const x0 = x(m.t), y0 = laneY(m.from) + LANE_H * 0.3, y1 = laneY(m.to) + LANE_H * 0.3;
      let x1, yEnd;
      if (m.fate) { x1 = x0 + 14; yEnd = y0 + (y1 - y0) * 0.35; } else { x1 = x(m.at); yEnd = y1; }
      const kind = text(m.kind);
      ctx.strokeStyle = m.fate ? "rgba(200,30,30,0.85)" : kind.startsWith("Vote") || kind.startsWith("PreVote") ? "rgba(200,120,0,0.8)" : "rgba(40,60,90,0.55)";
      ctx.lineWidth = 1; ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, yEnd); ctx.stroke();
      if (m.fate) { ctx.beginPath(); ctx.moveTo(x1 - 3, yEnd - 3); ctx.lineTo(x1 + 3, yEnd + 3); ctx.moveTo(x1 + 3, yEnd - 3); ctx.lineTo(x1 - 3, yEnd + 3); ctx.stroke(); }
      else { const a = Math.atan2(yEnd - y0, x1 - x0); ctx.beginPath(); ctx.moveTo(x1, yEnd); ctx.lineTo(x1 - 5 * Math.cos(a - 0.4), yEnd - 5 * Math.sin(a - 0.4)); ctx.lineTo(x1 - 5 * Math.cos(a + 0.4), yEnd - 5 * Math.sin(a + 0.4)); ctx.closePath(); ctx.fillStyle = ctx.strokeStyle; ctx.fill(); }
    }
  }

  function drawRequests() {
    const y = clientsY();
    let drawn = 0;
    const colour = (o) => { const s = text(o); return s.includes("acknowledged") ? "#3c9a52" : s.includes("read") && !s.includes("refused") ? "#3a6ea5" : "#d98324"; };
    for (const r of M.reqs) {
      if (r.end < view.t0 || r.start > view.t1) continue;
      const x0 = Math.max(LEFT, x(r.start)), x1 = Math.min(width - 8, x(r.end));
      ctx.fillStyle = colour(r.outcome);
      ctx.fillRect(x0, y + 2 + (r.client % 3) * 7, Math.max(1, x1 - x0), 5);
      if (++drawn > 20000) break;
    }
  }

  function drawNotes() {
    ctx.fillStyle = "#805ad5";
    for (const note of M.notes) {
      if (note.t < view.t0 || note.t > view.t1) continue;
      const px = x(note.t); ctx.fillRect(px - 1, TOP - 4, 2, 4);
    }
  }

  function drawViolation() {
    const v = M.violation; if (!v || v.t < view.t0 || v.t > view.t1) return;
    const px = x(v.t);
    ctx.strokeStyle = "#d7263d"; ctx.lineWidth = 2; ctx.beginPath(); ctx.moveTo(px, TOP - 4); ctx.lineTo(px, height - 14); ctx.stroke();
    ctx.fillStyle = "#d7263d"; ctx.font = "bold 11px system-ui, sans-serif";
    ctx.fillText("violation", Math.min(px + 3, width - 60), height - 3);
    ctx.font = "11px system-ui, sans-serif";
  }

  function drawSelection() {
    if (selected < 0) return;
    const px = x(M.time[selected]), y = laneY(M.node[selected]);
    ctx.strokeStyle = "#1a56db"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(px, y - 3); ctx.lineTo(px, y + LANE_H + 1); ctx.stroke();
    ctx.beginPath(); ctx.arc(px, y + LANE_H * 0.3, 5, 0, Math.PI * 2); ctx.stroke();
  }

  // --- the event list and the state panel ---
  const eventsEl = document.getElementById("events");
  function listEvents() {
    const from = lower(M.time, view.t0, (t) => t), to = lower(M.time, view.t1, (t) => t);
    const limit = 300, rows = [];
    const start = selected >= from && selected < to ? Math.max(from, selected - 20) : from;
    // World events (partitions, crashes, disk faults, clients giving up) interleave, in time order.
    let k = lower(M.notes, start < M.time.length ? M.time[start] : view.t1, (n) => n.t);
    const note = (n) => '<div class="note">' + esc(formatTime(n.t) + "  " + text(n.text)) + "</div>";
    for (let i = start; i < to && rows.length < limit; i++) {
      for (; k < M.notes.length && M.notes[k].t <= M.time[i] && rows.length < limit; k++) rows.push(note(M.notes[k]));
      rows.push('<div class="ev' + (i === selected ? " selected" : "") + '" data-step="' + i + '">' +
        esc(formatTime(M.time[i]) + "  node " + nodeNames[M.node[i]] + "  " + text(M.event[i])) + "</div>");
    }
    if (to - start > limit) rows.push('<div class="hint">&hellip; ' + (to - start - limit) + " more: zoom in</div>");
    eventsEl.innerHTML = rows.join("");
  }
  eventsEl.addEventListener("click", (e) => {
    const row = e.target.closest(".ev"); if (row) select(Number(row.dataset.step), false);
  });

  function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]); }

  function stateBefore(i) {
    const list = M.byNode[M.node[i]], k = lower(list, i, (v) => v);
    return k > 0 ? M.after[list[k - 1]] : -1;
  }

  function showState(i) {
    const panel = document.getElementById("state");
    const b = stateBefore(i), a = M.after[i];
    const sb = b >= 0 ? M.states[b] : null, sa = a >= 0 ? M.states[a] : null;
    const fields = [["role", (s) => ROLE_NAMES[s.role]], ["term", (s) => s.term], ["voted for", (s) => s.vote || "none"],
      ["leader", (s) => s.leader || "none"], ["commit", (s) => s.commit], ["last index", (s) => s.li], ["last term", (s) => s.lt]];
    const cell = (s, f) => (s && s.role !== 0 ? f(s) : f === fields[0][1] ? "down" : "");
    let rows = "";
    for (const [name, f] of fields) {
      const before = cell(sb, f), after = cell(sa, f);
      rows += '<tr class="' + (String(before) !== String(after) ? "changed" : "") + '"><th>' + name + "</th><td>" + esc(before) + "</td><td>" + esc(after) + "</td></tr>";
    }
    let html = '<h2>Step ' + i + ": node " + esc(nodeNames[M.node[i]]) + " at " + esc(formatTime(M.time[i])) + "</h2>" +
      '<div>event: <span class="mono" id="state-event">' + esc(text(M.event[i])) + "</span></div>" +
      '<div>actions: <span class="mono" id="state-actions">' + esc(text(M.actions[i]) || "none") + "</span></div>" +
      '<table class="st" id="state-table"><tr><th></th><th>before</th><th>after</th></tr>' + rows + "</table>";
    if (M.violation) html += '<p class="violation-text">violation at ' + esc(formatTime(M.violation.t)) + ": " + esc(M.violation.text) + "</p>";
    panel.innerHTML = html;
    panel.dataset.step = String(i);
  }

  function select(i, reveal) {
    if (i < 0 || i >= M.time.length) return;
    selected = i;
    if (reveal && (M.time[i] < view.t0 || M.time[i] > view.t1)) {
      const span = view.t1 - view.t0; view.t0 = M.time[i] - span / 2; view.t1 = view.t0 + span;
    }
    showState(i); redraw();
  }

  // The step of node lane under (px, py) nearest in time, within 8 pixels.
  function stepAt(px, py) {
    const n = Math.floor((py - TOP) / (LANE_H + LANE_GAP));
    if (n < 0 || n >= nodes || py - laneY(n) > LANE_H) return -1;
    const list = M.byNode[n], t = tAt(px), k = lower(list, t, (i) => M.time[i]);
    let best = -1, dist = 8;
    for (const j of [k - 1, k]) {
      if (j < 0 || j >= list.length) continue;
      const d = Math.abs(x(M.time[list[j]]) - px);
      if (d <= dist) { dist = d; best = list[j]; }
    }
    return best;
  }

  // --- interaction ---
  let drag = null;
  canvas.addEventListener("mousedown", (e) => { drag = { x: e.clientX, t0: view.t0, t1: view.t1, moved: false }; canvas.classList.add("dragging"); });
  window.addEventListener("mousemove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x; if (Math.abs(dx) > 3) drag.moved = true;
    const dt = (dx / (width - LEFT - 8)) * (drag.t1 - drag.t0);
    view.t0 = drag.t0 - dt; view.t1 = drag.t1 - dt; redraw();
  });
  window.addEventListener("mouseup", () => { if (drag) canvas.classList.remove("dragging"); setTimeout(() => { drag = null; }, 0); });
  canvas.addEventListener("click", (e) => {
    if (drag && drag.moved) return;
    const r = canvas.getBoundingClientRect();
    const i = stepAt(e.clientX - r.left, e.clientY - r.top);
    if (i >= 0) select(i, false);
  });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = canvas.getBoundingClientRect(), t = tAt(e.clientX - r.left);
    const k = Math.exp(Math.sign(e.deltaY) * Math.min(Math.abs(e.deltaY), 200) / 300);
    const span = Math.max((view.t1 - view.t0) * k, 10);
    const f = (t - view.t0) / (view.t1 - view.t0);
    view.t0 = t - f * span; view.t1 = view.t0 + span; redraw();
  }, { passive: false });
  window.addEventListener("keydown", (e) => {
    if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      e.preventDefault();
      const forward = e.key === "ArrowRight";
      if (selected < 0) { select(lower(M.time, view.t0, (t) => t), true); return; }
      if (e.shiftKey) {
        const list = M.byNode[M.node[selected]], k = lower(list, selected, (v) => v) + (forward ? 1 : -1);
        if (k >= 0 && k < list.length) select(list[k], true);
      } else select(selected + (forward ? 1 : -1), true);
    } else if (e.key === "0") { fit(); redraw(); }
  });
  window.addEventListener("resize", () => { resize(); redraw(); });

  // --- live mode: poll the node statuses and append a step per change ---
  function poll() {
    fetch("status.json", { cache: "no-store" }).then((r) => r.json()).then((s) => {
      const t = s.t, down = intern("not answering"), polled = intern("status changed");
      if (!M.time.length) { view.t0 = t - 1e6; view.t1 = t + 59e6; }
      s.nodes.forEach((st, n) => {
        const list = M.byNode[n], last = list.length ? M.after[list[list.length - 1]] : -1;
        const prev = last >= 0 ? M.states[last] : null;
        const now = st.up ? { role: st.role, term: st.term, vote: st.vote || 0, leader: st.leader || 0, commit: st.commit, li: st.last_index, lt: st.last_term || 0 } : null;
        const same = prev && now ? JSON.stringify(prev) === JSON.stringify(now) : prev === now;
        if (list.length && same) return;
        let after = -1;
        if (now) { M.states.push(now); after = M.states.length - 1; }
        pushStep(t, n, now ? polled : down, intern(st.messages || ""), after);
      });
      M.end = Math.max(M.end, t);
      document.getElementById("status").textContent = s.note || "";
      const follow = view.t1 >= M.end - (view.t1 - view.t0) * 0.1;
      if (follow) { const span = view.t1 - view.t0; view.t1 = M.end + span * 0.05; view.t0 = view.t1 - span; }
      if (selected >= 0) showState(selected);
      redraw();
    }).catch(() => { document.getElementById("status").textContent = "the cluster's UI server does not answer"; })
      .finally(() => setTimeout(poll, 1000));
  }

  // --- start ---
  document.getElementById("title").textContent = raw.title || "skiff timeline";
  if (!live) decode();
  resize();
  fit();
  if (live) poll();
  // A link can name a view and a step: #t0=...&t1=...&step=... (times in the page's unit).
  const wanted = new URLSearchParams(location.hash.slice(1));
  if (wanted.has("t0") && wanted.has("t1")) { view.t0 = Number(wanted.get("t0")); view.t1 = Number(wanted.get("t1")); }
  if (wanted.has("step")) { selected = Number(wanted.get("step")); if (selected >= 0 && selected < M.time.length) showState(selected); else selected = -1; }
  draw(); listEvents();
  // For tests and tools: where a step is drawn, in page coordinates.
  window.__timeline = {
    steps: () => M.time.length,
    stepPoint: (i) => { const r = canvas.getBoundingClientRect(); return { x: r.left + x(M.time[i]), y: r.top + laneY(M.node[i]) + LANE_H * 0.3 }; },
    setView: (t0, t1) => { view.t0 = t0; view.t1 = t1; draw(); listEvents(); },
    eventText: (i) => text(M.event[i]),
  };
})();
