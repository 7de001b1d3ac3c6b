// kgate approvals page. Talks to kgate's HTTP API with the reviewer's bearer
// token (kept in sessionStorage: this tab only; never a cookie, so another
// site cannot make the browser decide anything). Everything shown is built
// with DOM nodes and textContent: nothing the API returns is parsed as HTML.
'use strict';

(function () {
  const TOKEN_KEY = 'kgate.token';
  const $ = (id) => document.getElementById(id);
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    pending: [],
    decided: [],
    jobs: [],
    tab: 'pending',
    fetchedAt: 0,          // performance.now() of the last pending list
    seen: new Set(),       // request ids already shown
    stream: null,          // AbortController of the event stream
    lastEventId: '',
    refreshTimer: 0,
    retryTimer: 0,
    deciding: new Set(),
  };

  // ---- small DOM helpers -------------------------------------------------------------
  function el(tag, attrs, ...kids) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') n.className = v;
      else if (k === 'text') n.textContent = v;
      else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(n.dataset, v);
      else n.setAttribute(k, v === true ? '' : String(v));
    }
    for (const k of kids) {
      if (k === null || k === undefined || k === false) continue;
      n.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return n;
  }
  function fact(dl, label, ...value) {
    dl.append(el('dt', { text: label }), el('dd', null, ...value));
  }
  function duration(sec) {
    sec = Math.max(0, Math.round(sec));
    if (sec < 60) return sec + ' s';
    const m = Math.floor(sec / 60), s = sec % 60;
    if (m < 60) return m + ' min' + (s ? ' ' + s + ' s' : '');
    const h = Math.floor(m / 60);
    return h + ' h ' + (m % 60) + ' min';
  }
  function clock(sec) {
    sec = Math.max(0, Math.floor(sec));
    const m = Math.floor(sec / 60), s = sec % 60;
    return m + ':' + String(s).padStart(2, '0');
  }
  function shortTime(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }
  function userText(uid, name) {
    return (name ? name + ' ' : '') + '(uid ' + uid + ')';
  }

  // ---- the API -----------------------------------------------------------------------
  function headers(extra) {
    const h = Object.assign({ Accept: 'application/json' }, extra || {});
    if (state.token) h.Authorization = 'Bearer ' + state.token;
    return h;
  }
  async function api(path, opts) {
    opts = opts || {};
    const init = { method: opts.method || 'GET', headers: headers(opts.headers), cache: 'no-store' };
    if (opts.body !== undefined) {
      init.body = JSON.stringify(opts.body);
      init.headers['Content-Type'] = 'application/json';
    }
    const res = await fetch(path, init);
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (res.status === 401)
      needToken(state.token ? 'This token was not accepted (unknown or revoked).' : 'A token is needed.');
    return { status: res.status, ok: res.ok, body };
  }
  function errorText(r) {
    return (r.body && r.body.error && r.body.error.message) || ('HTTP ' + r.status);
  }

  // ---- banner and token --------------------------------------------------------------
  function banner(text, isError) {
    const b = $('banner');
    b.textContent = text || '';
    b.hidden = !text;
    b.classList.toggle('error', !!isError);
  }
  function needToken(msg) {
    $('token-panel').hidden = false;
    banner(msg + ' Paste an API token above.', false);
    $('token-input').focus();
  }
  function setToken(t) {
    state.token = t;
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
    $('token-btn').textContent = t ? 'Token ✓' : 'Token';
  }

  // ---- rendering ---------------------------------------------------------------------
  function remaining(req) {
    const elapsed = (performance.now() - state.fetchedAt) / 1000;
    return (req.expires_in_sec || 0) - elapsed;
  }
  function age(req) {
    const elapsed = (performance.now() - state.fetchedAt) / 1000;
    return (req.age_sec || 0) + elapsed;
  }

  function requestFacts(req) {
    const dl = el('dl', { class: 'facts' });
    const job = req.job;
    fact(dl, 'Job',
      el('a', { href: '#job/' + req.trace_id, class: 'mono job-link', text: req.trace_id || '–' }),
      job && job.command ? el('div', null, el('code', { class: 'cmd', text: job.command })) : null);
    fact(dl, 'User', userText(req.requester_uid, req.requester_name),
      req.requester_pid ? ', pid ' + req.requester_pid : '');
    fact(dl, 'Rule', el('b', { text: req.rule_id || 'default' }),
      req.rule_reason ? el('span', { class: 'reason', text: ' — ' + req.rule_reason }) : null);
    fact(dl, 'Policy', (req.policy_name || '(unnamed)') + ' ',
      el('code', { title: req.policy_hash, text: (req.policy_hash || '').slice(0, 12) }),
      req.policy_id !== undefined ? ' · generation ' + req.policy_id : '');
    fact(dl, 'Asked', el('span', { class: 'age', text: duration(age(req)) + ' ago' }),
      req.count > 1 ? ' (' + req.count + ' times)' : '',
      req.held ? ' · the call is held until you decide' : ' · the agent retries after a decision');
    return dl;
  }

  function pendingCard(req) {
    const card = el('article', { class: 'card request', dataset: { id: req.id } });
    const timer = el('span', { class: 'timer' });
    card.append(el('div', { class: 'head' },
      el('span', { class: 'op', text: req.op }),
      el('h2', { class: 'target mono', text: req.target }),
      timer));
    card.append(requestFacts(req));
    card._timer = timer;
    card._req = req;
    if (req.may_decide) {
      const note = el('input', { class: 'note', type: 'text', maxlength: 255,
        placeholder: 'Note for the audit trail (optional)', 'aria-label': 'note' });
      const minutes = el('input', { class: 'minutes', type: 'number', min: 1, max: 10080, value: 15,
        'aria-label': 'minutes' });
      const msg = el('p', { class: 'msg', role: 'status' });
      const once = el('button', { type: 'button', class: 'primary approve-once', text: 'Approve once' });
      const ttl = el('button', { type: 'button', class: 'secondary approve-ttl', text: 'Approve for' });
      const deny = el('button', { type: 'button', class: 'danger deny', text: 'Deny' });
      const buttons = [once, ttl, deny];
      const act = (kind) => decide(req, kind, note.value, Number(minutes.value), buttons, msg, card);
      once.addEventListener('click', () => act('once'));
      ttl.addEventListener('click', () => act('ttl'));
      deny.addEventListener('click', () => act('deny'));
      card.append(el('div', { class: 'decide' }, note,
        el('div', { class: 'buttons' }, once,
          el('span', { class: 'ttl' }, ttl, minutes, el('span', { text: 'min' })), deny),
        msg));
    } else {
      card.append(el('p', { class: 'cannot',
        text: 'You may not decide this request (not an approver of its policy, or it is your own job’s).' }));
    }
    return card;
  }

  function decidedCard(req) {
    const card = el('article', { class: 'card decided', dataset: { id: req.id, state: req.state } });
    card.append(el('div', { class: 'head' },
      el('span', { class: 'state ' + req.state, text: req.state }),
      el('span', { class: 'op', text: req.op }),
      el('h2', { class: 'target mono', text: req.target })));
    const dl = requestFacts(req);
    let by = req.decided_by >= 0 ? userText(req.decided_by, req.decided_by_name) : 'nobody (timeout)';
    if (req.decided_via) by += ' with ' + req.decided_via.replace(/^token:/, 'token ');
    fact(dl, 'Decided', shortTime(req.decided) + ' by ' + by);
    if (req.state === 'approved' && req.grant)
      fact(dl, 'Grant', req.grant.once ? 'one use' : 'for ' + duration(req.grant.ttl_sec));
    if (req.note) fact(dl, 'Note', req.note);
    if (req.reason) fact(dl, 'Why', req.reason);
    card.append(dl);
    return card;
  }

  function tick() {
    for (const card of document.querySelectorAll('#pending-list .card')) {
      const req = card._req;
      if (!req) continue;
      const left = remaining(req);
      card._timer.textContent = left > 0 ? 'expires in ' + clock(left) : 'expired';
      card._timer.classList.toggle('soon', left < 60);
      const a = card.querySelector('.age');
      if (a) a.textContent = duration(age(req)) + ' ago';
    }
  }

  function renderPending() {
    const list = $('pending-list');
    // keep cards someone is typing a note into; replace the rest
    const keep = new Map();
    for (const c of list.children) keep.set(c.dataset.id, c);
    const frag = document.createDocumentFragment();
    for (const req of state.pending) {
      let card = keep.get(req.id);
      if (card && !state.deciding.has(req.id)) {
        card._req = req;
      } else if (!card) {
        card = pendingCard(req);
        if (state.seen.size && !state.seen.has(req.id)) card.classList.add('fresh');
      }
      state.seen.add(req.id);
      frag.append(card);
    }
    list.replaceChildren(frag);
    $('pending-empty').hidden = state.pending.length > 0;
    $('count-pending').textContent = String(state.pending.length);
    document.title = (state.pending.length ? '(' + state.pending.length + ') ' : '') + 'kgate · approvals';
    tick();
  }

  function renderDecided() {
    const list = $('decided-list');
    list.replaceChildren(...state.decided.slice().reverse().map(decidedCard));
    $('decided-empty').hidden = state.decided.length > 0;
  }

  function renderJobs() {
    const visible = state.jobs.filter((j) => !j.hidden);
    $('count-jobs').textContent = String(visible.length);
    $('jobs-empty').hidden = state.jobs.length > 0;
    $('jobs-list').replaceChildren(...state.jobs.map((j) => {
      if (j.hidden)
        return el('article', { class: 'card job' }, el('div', { class: 'head' },
          el('span', { class: 'op', text: j.mode }), el('h2', { class: 'mono', text: j.trace })),
          el('p', { class: 'cannot', text: 'Another user’s job.' }));
      const dl = el('dl', { class: 'facts' });
      fact(dl, 'Command', el('code', { text: j.command }));
      fact(dl, 'Policy', j.policy.name + ' ', el('code', { text: j.policy.hash.slice(0, 12) }));
      fact(dl, 'State', j.state + ' · ' + j.mode + ' mode · pid ' + j.pid);
      fact(dl, 'Recorded', j.recorded.refused + ' refused, ' + j.recorded.audited + ' audited, ' +
        j.recorded.escalations + ' escalations');
      return el('article', { class: 'card job', dataset: { trace: j.trace } },
        el('div', { class: 'head' }, el('span', { class: 'op', text: j.mode }),
          el('h2', null, el('a', { href: '#job/' + j.trace, class: 'mono', text: j.trace }))), dl);
    }));
  }

  async function showJob(trace) {
    const box = $('job-detail');
    box.replaceChildren(el('p', { class: 'empty', text: 'Loading ' + trace + '…' }));
    const r = await api('/api/v1/jobs/' + encodeURIComponent(trace));
    if (!r.ok) {
      box.replaceChildren(el('p', { class: 'msg error', text: errorText(r) }));
      return;
    }
    const j = r.body.job, card = el('article', { class: 'card' });
    card.append(el('div', { class: 'head' }, el('span', { class: 'op', text: j.state }),
      el('h2', { class: 'mono', text: j.trace })));
    const dl = el('dl', { class: 'facts' });
    if (j.command) fact(dl, 'Command', el('code', { text: j.command }));
    if (j.policy) fact(dl, 'Policy', j.policy.name + ' ', el('code', { text: j.policy.hash.slice(0, 12) }),
      ' · generation ' + j.policy.generation);
    if (j.mode) fact(dl, 'Mode', j.mode + ' · pid ' + j.pid + ' · as uid ' + j.as_uid);
    if (j.started) fact(dl, 'Started', shortTime(j.started));
    card.append(dl);
    const list = el('ol', { class: 'timeline' });
    const t0 = r.body.timeline.length ? Date.parse(r.body.timeline[0].time) : 0;
    for (const rec of r.body.timeline) {
      const t = (Date.parse(rec.time) - t0) / 1000;
      // a decision names who made it (and the token it came with)
      const by = rec.type === 'approval' && rec.actor && rec.decision !== 'requested' &&
        rec.actor.uid >= 0 ? 'by ' + (rec.actor.name || 'uid ' + rec.actor.uid) +
        (rec.actor.role ? ' (' + rec.actor.role + ')' : '') : '';
      const note = rec.type === 'approval' && rec.extra && rec.extra.note ? '“' + rec.extra.note + '”' : '';
      const what = [rec.decision, rec.op, rec.target, rec.rule ? 'rule ' + rec.rule : '', by, note,
        rec.reason ? '(' + rec.reason + ')' : ''].filter(Boolean).join(' ');
      list.append(el('li', { class: rec.decision || '' },
        el('span', { class: 't', text: '+' + t.toFixed(2) + ' s' }),
        el('span', { class: 'ty', text: rec.type }),
        el('span', { class: 'what', text: what })));
    }
    card.append(el('h3', { text: 'Timeline' + (r.body.timeline_truncated ? ' (newest ' +
      r.body.timeline.length + ' of ' + r.body.records + ')' : '') }), list);
    box.replaceChildren(card);
  }

  // ---- loading -----------------------------------------------------------------------
  async function loadPending() {
    const r = await api('/api/v1/approvals?state=pending');
    if (!r.ok) { if (r.status !== 401) banner(errorText(r), true); return; }
    state.pending = r.body.requests;
    state.fetchedAt = performance.now();
    renderPending();
  }
  async function loadDecided() {
    const r = await api('/api/v1/approvals?state=decided&limit=100');
    if (r.ok) { state.decided = r.body.requests; renderDecided(); }
  }
  async function loadJobs() {
    const r = await api('/api/v1/jobs');
    if (r.ok) { state.jobs = r.body.jobs; renderJobs(); }
  }
  async function loadAll() {
    await loadPending();
    if (state.tab === 'decided') await loadDecided();
    await loadJobs();
    const m = location.hash.match(/^#job\/([A-Za-z0-9._-]+)$/);
    if (m && !$('job-view').hidden) showJob(m[1]);
  }
  function refreshSoon() {
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(loadAll, 120);
  }

  // ---- deciding ----------------------------------------------------------------------
  async function decide(req, kind, note, minutes, buttons, msg, card) {
    const body = {};
    if (note) body.note = note;
    if (kind === 'once') body.once = true;
    if (kind === 'ttl') {
      if (!(minutes >= 1 && minutes <= 10080)) {
        msg.className = 'msg error';
        msg.textContent = 'Minutes: 1 to 10080.';
        return;
      }
      body.ttl_sec = Math.round(minutes * 60);
    }
    const verb = kind === 'deny' ? 'deny' : 'approve';
    buttons.forEach((b) => { b.disabled = true; });
    state.deciding.add(req.id);
    msg.className = 'msg';
    msg.textContent = verb === 'deny' ? 'Denying…' : 'Approving…';
    const r = await api('/api/v1/approvals/' + encodeURIComponent(req.id) + '/' + verb,
      { method: 'POST', body });
    state.deciding.delete(req.id);
    if (r.ok) {
      msg.className = 'msg ok';
      msg.textContent = verb === 'deny' ? 'Denied.' : 'Approved' +
        (kind === 'once' ? ' for one use.' : ' for ' + minutes + ' min.');
      card.dataset.decided = r.body.request.state;
      setTimeout(refreshSoon, 900);
      return;
    }
    msg.className = 'msg error';
    msg.textContent = errorText(r);
    if (r.status === 409) setTimeout(refreshSoon, 1500);
    else buttons.forEach((b) => { b.disabled = false; });
  }

  // ---- live updates: Server-Sent Events over fetch (the token goes in a header) ------
  function setLive(on, text) {
    const live = $('live');
    live.dataset.state = on === true ? 'on' : on === 'connecting' ? 'connecting' : 'off';
    $('live-text').textContent = text;
    document.body.dataset.live = on === true ? '1' : '0';
  }
  function onEvent(type, data, id) {
    if (id) state.lastEventId = id;
    document.body.dataset.lastEvent = type;
    if (type === 'hello') { setLive(true, 'live'); loadAll(); return; }
    if (type === 'resync') { loadAll(); return; }
    if (type === 'request' || type === 'decision' || type === 'job_start' ||
        type === 'job_end' || type === 'policy_change') refreshSoon();
  }
  async function connect() {
    clearTimeout(state.retryTimer);
    if (state.stream) state.stream.abort();
    const ctl = new AbortController();
    state.stream = ctl;
    setLive('connecting', 'connecting…');
    try {
      const h = headers({ Accept: 'text/event-stream' });
      if (state.lastEventId) h['Last-Event-ID'] = state.lastEventId;
      const res = await fetch('/api/v1/events', { headers: h, signal: ctl.signal, cache: 'no-store' });
      if (res.status === 401) { setLive(false, 'no token'); needToken('A token is needed.'); return; }
      if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let sep;
        while ((sep = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, sep);
          buf = buf.slice(sep + 2);
          let type = 'message', data = '', id = '';
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const i = line.indexOf(':');
            const k = i < 0 ? line : line.slice(0, i);
            const v = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
            if (k === 'event') type = v;
            else if (k === 'data') data += (data ? '\n' : '') + v;
            else if (k === 'id') id = v;
          }
          let parsed = null;
          try { parsed = data ? JSON.parse(data) : null; } catch (e) { parsed = null; }
          onEvent(type, parsed, id);
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    if (state.stream !== ctl) return;
    setLive(false, 'offline — reconnecting');
    state.retryTimer = setTimeout(connect, 3000);
  }

  // ---- navigation --------------------------------------------------------------------
  function showTab(tab) {
    state.tab = tab;
    for (const b of document.querySelectorAll('.tabs button'))
      b.setAttribute('aria-selected', String(b.dataset.tab === tab));
    for (const t of ['pending', 'decided', 'jobs']) $('tab-' + t).hidden = t !== tab;
    $('job-view').hidden = true;
    if (tab === 'decided') loadDecided();
    if (tab === 'jobs') loadJobs();
  }
  function route() {
    const m = location.hash.match(/^#job\/([A-Za-z0-9._-]+)$/);
    if (m) {
      for (const t of ['pending', 'decided', 'jobs']) $('tab-' + t).hidden = true;
      $('job-view').hidden = false;
      showJob(m[1]);
    } else if (!$('job-view').hidden) {
      showTab(state.tab);
    }
  }

  function init() {
    setToken(state.token);
    for (const b of document.querySelectorAll('.tabs button'))
      b.addEventListener('click', () => { if (location.hash) history.pushState('', '', location.pathname); showTab(b.dataset.tab); });
    $('job-back').addEventListener('click', () => { history.back(); });
    window.addEventListener('hashchange', route);
    $('token-btn').addEventListener('click', () => {
      $('token-panel').hidden = !$('token-panel').hidden;
      if (!$('token-panel').hidden) $('token-input').focus();
    });
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const t = $('token-input').value.trim();
      $('token-input').value = '';
      setToken(t);
      $('token-panel').hidden = true;
      banner('');
      state.lastEventId = '';
      connect();
    });
    $('token-forget').addEventListener('click', () => {
      setToken('');
      $('token-input').value = '';
      needToken('Token forgotten.');
      if (state.stream) state.stream.abort();
      setLive(false, 'no token');
    });
    setInterval(tick, 1000);
    // a slow safety net: the stream carries everything, but a missed wake-up
    // (a laptop lid) should not leave a stale list on screen for long
    setInterval(() => { if (document.visibilityState === 'visible') loadAll(); }, 30000);
    route();
    connect();
  }

  document.addEventListener('DOMContentLoaded', init);
})();
