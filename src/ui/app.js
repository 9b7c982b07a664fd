// voxgate console: supervisors' live board, QA review and dashboards.
// Plain ES2020, no build step. The server's CSP forbids inline scripts, handlers and style attributes, so
// everything is wired here, and API data only ever reaches the page through textContent.
'use strict';

const API = '/api/v1';
const SUPERVISE = ['supervisor'];
const REVIEW = ['qa_reviewer'];
const PAGE_SIZE = 50;
/** A gap with nobody talking at least this long is drawn as silence. */
const SILENCE_MS = 2000;
const SPEAKERS = { caller: 'Caller', voxgate: 'Voxgate', agent: 'Agent' };
const OUTCOMES = ['pass', 'fail', 'not_applicable'];

const app = document.getElementById('app');
const state = { me: null, scorecards: null, lastList: '#/calls' };
/** The live page's alerts outlive the page, so coming back to it keeps what was seen. */
const liveAlerts = { byId: new Map(), maxId: 0, loaded: false };

// ---------------------------------------------------------------- small helpers

function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'testid') el.dataset.testid = v;
    else if (k === 'data') for (const [dk, dv] of Object.entries(v)) { if (dv != null) el.dataset[dk] = dv; }
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');
const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function fmtClock(ms) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
function localDay(d) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}
/** Clock time today, month-day and minutes before that. */
function fmtWhen(ms) {
  const d = new Date(ms);
  return localDay(d) === localDay(new Date()) ? fmtClock(ms) : `${localDay(d).slice(5)} ${fmtClock(ms).slice(0, 5)}`;
}
function fmtDateTime(ms) {
  return num(ms) == null ? '—' : `${localDay(new Date(ms))} ${fmtClock(ms)}`;
}
/** An offset in the call: m:ss, or m:ss.t when `tenths`. */
function fmtOffset(ms, tenths = false) {
  ms = Math.max(0, num(ms) || 0);
  const s = Math.floor(ms / 1000);
  const base = s >= 3600
    ? `${Math.floor(s / 3600)}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`
    : `${Math.floor(s / 60)}:${pad(s % 60)}`;
  return tenths ? `${base}.${Math.floor(ms / 100) % 10}` : base;
}
function fmtDuration(ms) {
  return num(ms) == null || ms < 0 ? '—' : fmtOffset(ms);
}
function fmtScore(v) {
  return num(v) == null ? '—' : (Math.round(v * 10) / 10).toString();
}
function fmtPct(v) {
  return num(v) == null ? '—' : `${Math.round(v * 1000) / 10} %`;
}
/** `"Ann" <sip:+4930123@host>` → `Ann +4930123`: what a person recognises a caller by. */
function uriLabel(uri) {
  if (!uri) return '—';
  const name = /^\s*"([^"]*)"/.exec(uri);
  const user = /(?:sips?|tel):([^@;>]+)/.exec(uri);
  return [name && name[1], user && user[1]].filter(Boolean).join(' ') || uri;
}
const words = (s) => String(s || '').replace(/_/g, ' ');
/** Local midnight of a `YYYY-MM-DD` day plus `addDays`, in epoch ms; `null` for anything else. */
function localDayMs(day, addDays) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day || '');
  return m ? new Date(+m[1], +m[2] - 1, +m[3] + addDays).getTime() : null;
}
function daysAgo(n) {
  const d = new Date();
  d.setDate(d.getDate() - n);
  return localDay(d);
}
function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}
function may(roles) {
  return !!state.me && (state.me.role === 'admin' || roles.includes(state.me.role));
}
function badge(text, cls, testid) {
  return h('span', { class: `badge ${cls || ''}`, text, testid });
}
function scoreBadge(score, passed, testid) {
  const cls = num(score) == null ? 'none' : passed ? 'pass' : 'fail';
  return h('span', {
    class: `score-badge ${cls}`, text: fmtScore(score), testid: testid || 'score',
    title: num(score) == null ? 'not scored' : passed ? 'passed' : 'failed', data: { score: num(score) },
  });
}
function outcomeBadge(outcome) {
  return h('span', { class: `outcome-badge o-${outcome}`, text: words(outcome), data: { outcome } });
}
function sevBadge(sev) {
  return h('span', { class: `sev-badge sev-${sev}`, text: sev });
}

// ---------------------------------------------------------------- API

class HttpError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

async function api(path, { method = 'GET', body, signal } = {}) {
  const opts = { method, signal, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(API + path, opts);
  let data = null;
  if ((r.headers.get('content-type') || '').includes('json')) data = await r.json().catch(() => null);
  if (r.status === 401 && path !== '/login') {
    needLogin();
    throw new HttpError(401, 'Log in first');
  }
  if (!r.ok) {
    throw new HttpError(r.status, (data && data.error) || `${r.status} ${r.statusText}`, r.headers.get('retry-after'));
  }
  return data;
}

async function scorecards() {
  if (!state.scorecards) {
    const d = await api('/scorecards');
    state.scorecards = (d && d.scorecards) || [];
  }
  return state.scorecards;
}
const ruleId = (r) => (typeof r === 'string' ? r : r.id || r.rule || r.name);
const ruleTitle = (r) => (typeof r === 'string' ? r : r.title || ruleId(r));

// ---------------------------------------------------------------- page lifetime

/** What a page started: closed when the page is left, so no stream, timer or download outlives it. */
class PageCtx {
  constructor() {
    this.ac = new AbortController();
    this.cleanups = [];
    this.alive = true;
  }
  get signal() { return this.ac.signal; }
  onLeave(fn) { this.cleanups.push(fn); }
  interval(fn, ms) {
    const t = setInterval(fn, ms);
    this.onLeave(() => clearInterval(t));
  }
  observeSize(el, fn) {
    let last = el.clientWidth;
    const ro = new ResizeObserver(() => {
      if (el.clientWidth !== last) { last = el.clientWidth; fn(); }
    });
    ro.observe(el);
    this.onLeave(() => ro.disconnect());
  }
  /**
   * An SSE subscription that survives server restarts: EventSource retries network errors itself; an
   * HTTP error closes it, then /me tells whether the login ended (→ login screen) or to retry.
   * `url` is a function so a retry can ask for what was missed. Returns a stop function.
   */
  stream(url, event, onData, onState = () => {}) {
    let es = null, timer = null, stopped = false;
    const retry = () => { timer = setTimeout(open, 3000); };
    const open = () => {
      if (stopped || !this.alive) return;
      es = new EventSource(url());
      onState('connecting');
      es.onopen = () => onState('open');
      es.addEventListener(event, (ev) => {
        let d;
        try { d = JSON.parse(ev.data); } catch { return; }
        onData(d);
      });
      es.onerror = () => {
        if (es.readyState !== EventSource.CLOSED) { onState('reconnecting'); return; }
        es.close();
        onState('closed');
        if (stopped) return;
        api('/me').then(retry, (e) => { if (e.status !== 401) retry(); });
      };
    };
    const stop = () => {
      stopped = true;
      clearTimeout(timer);
      if (es) es.close();
    };
    this.onLeave(stop);
    open();
    return stop;
  }
  dispose() {
    this.alive = false;
    this.ac.abort();
    for (const fn of this.cleanups.splice(0)) {
      try { fn(); } catch (e) { console.warn(e); }
    }
  }
}

function showError(root, e) {
  if (!e || e.name === 'AbortError' || e.status === 401) return;
  const msg = e.status === 403
    ? `Your role (${state.me ? state.me.role : '?'}) may not see this.`
    : e.status === 404 ? 'Not found.' : e.message || String(e);
  root.replaceChildren(h('div', { class: 'error-box', testid: 'page-error', data: { status: e.status || 0 }, text: msg }));
}

// ---------------------------------------------------------------- routing

const routes = [
  { re: /^\/live$/, page: 'live', fn: livePage, roles: SUPERVISE, deny: 'The live board is for supervisors.' },
  { re: /^\/calls$/, page: 'calls', fn: callsPage },
  { re: /^\/calls\/(\d+)$/, page: 'calls', fn: callPage },
  { re: /^\/dashboard$/, page: 'dashboard', fn: dashboardPage },
];
let current = null;

function parseHash() {
  const raw = location.hash.replace(/^#/, '');
  const i = raw.indexOf('?');
  return { path: i < 0 ? raw : raw.slice(0, i), params: new URLSearchParams(i < 0 ? '' : raw.slice(i + 1)) };
}
const home = () => (may(SUPERVISE) ? '#/live' : '#/calls');

function leave() {
  if (current) current.ctx.dispose();
  current = null;
}

function route() {
  if (!state.me) return;
  const { path, params } = parseHash();
  let r = null, args = [];
  for (const cand of routes) {
    const m = cand.re.exec(path);
    if (m) { r = cand; args = m.slice(1); break; }
  }
  if (!r) { location.replace(home()); return; }
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === r.page);
  const key = `${path}`;
  if (current && current.key === key && current.update) { current.update(params); return; }
  leave();
  const ctx = new PageCtx();
  const root = h('div', { class: `page page-${r.page}` });
  app.replaceChildren(root);
  current = { key, ctx, update: null };
  if (r.roles && !may(r.roles)) {
    root.append(h('div', { class: 'error-box', testid: 'page-error', data: { status: 403 },
      text: `${r.deny} Your role (${state.me.role}) may not open it.` }));
    return;
  }
  document.title = `voxgate · ${r.page}`;
  current.update = r.fn(ctx, root, params, ...args) || null;
}

// ---------------------------------------------------------------- login

const loginEl = document.getElementById('login');
const loginForm = document.getElementById('login-form');
const loginError = document.getElementById('login-error');

function needLogin() {
  if (!loginEl.hidden && !state.me) return;
  state.me = null;
  state.scorecards = null;
  liveAlerts.byId.clear();
  liveAlerts.maxId = 0;
  liveAlerts.loaded = false;
  leave();
  document.getElementById('topbar').hidden = true;
  app.replaceChildren();
  loginEl.hidden = false;
  document.getElementById('login-user').focus();
}

function loggedIn(me) {
  state.me = me;
  loginEl.hidden = true;
  loginError.hidden = true;
  document.getElementById('topbar').hidden = false;
  document.getElementById('whoami').textContent = `${me.user} · ${words(me.role)}`;
  document.getElementById('nav-live').hidden = !may(SUPERVISE);
  const path = parseHash().path;
  if (!path || path === '/') location.replace(home());
  else route();
}

loginForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const user = document.getElementById('login-user');
  const pass = document.getElementById('login-password');
  const button = document.getElementById('login-submit');
  loginError.hidden = true;
  button.disabled = true;
  try {
    await api('/login', { method: 'POST', body: { username: user.value, password: pass.value } });
    pass.value = '';
    loggedIn(await api('/me'));
  } catch (e) {
    pass.value = '';
    loginError.textContent = e.status === 401 ? 'Wrong user name or password.'
      : e.status === 429 ? `Too many attempts; try again in ${e.retryAfter || 'a few'} s.`
      : `Cannot log in: ${e.message}`;
    loginError.hidden = false;
    pass.focus();
  } finally {
    button.disabled = false;
  }
});

document.getElementById('logout').addEventListener('click', async () => {
  try { await api('/logout', { method: 'POST', body: {} }); } catch { /* the session is gone either way */ }
  history.replaceState(null, '', '#/');
  needLogin();
});

window.addEventListener('hashchange', route);

// ---------------------------------------------------------------- live board

function alertItem(a, { onSelect } = {}) {
  const li = h('li', {
    class: `alert sev-${a.severity}`, testid: 'alert',
    data: { alertId: a.id, call: a.call, callId: a.call_id, rule: a.rule, scorecard: a.scorecard, severity: a.severity },
  },
  h('div', { class: 'alert-head' },
    sevBadge(a.severity),
    h('span', { class: 'alert-title', text: a.title || a.rule }),
    h('span', { class: 'alert-clock muted', text: num(a.raised_at_ms) != null ? fmtWhen(a.raised_at_ms) : '', title: fmtDateTime(a.raised_at_ms) })),
  a.quote ? h('div', { class: 'quote', text: a.quote }) : null,
  h('div', { class: 'alert-meta muted' },
    h('span', { class: 'alert-offset', text: `at ${fmtOffset(a.start_ms)} in the call` }),
    a.speaker ? h('span', { text: SPEAKERS[a.speaker] || a.speaker }) : null,
    a.from_partial ? h('span', { class: 'tag', text: 'partial', title: 'raised on a partial result' }) : null,
    a.note ? h('span', { class: 'alert-note', text: a.note }) : null,
    num(a.call) != null ? h('a', { href: `#/calls/${a.call}`, class: 'call-link', text: `call #${a.call}` }) : null));
  if (onSelect) {
    li.addEventListener('click', (ev) => { if (!ev.target.closest('a')) onSelect(a); });
  }
  return li;
}

function liveTurnKey(t) {
  return t.utterance > 0 ? `${t.speaker}:${t.utterance}` : `${t.speaker}:p${t.start_ms}`;
}

function livePage(ctx, root, params) {
  let selected;
  let rows = [];
  const lastSeen = new Map();
  let stopTurns = null;
  const turns = new Map();

  const boardBody = h('tbody');
  const count = h('span', { class: 'muted', id: 'live-count' });
  const transcript = h('ol', { id: 'live-transcript', class: 'live-transcript', testid: 'live-transcript' });
  const selInfo = h('span', { id: 'live-selected', class: 'muted' });
  const alertsList = h('ol', { id: 'alerts-list', class: 'alerts-list', testid: 'alerts-list' });
  const alertsStatus = h('span', { id: 'alerts-status', class: 'conn', data: { state: 'connecting' }, text: 'connecting' });

  root.append(h('div', { class: 'live-grid' },
    h('section', { class: 'panel board-panel' },
      h('h2', {}, 'Active calls ', count),
      h('div', { class: 'table-wrap' },
        h('table', { id: 'live-board', class: 'grid', testid: 'live-board' },
          h('thead', {}, h('tr', {}, ['Caller', 'Started', 'Dur.', 'State', 'Step', 'Intent', 'Verif.', 'Agent',
            'Alerts', 'Last words'].map((t) => h('th', { text: t })))),
          boardBody))),
    h('section', { class: 'panel transcript-panel' },
      h('h2', {}, 'Live transcript ', selInfo), transcript),
    h('section', { class: 'panel alerts-panel', id: 'alerts-panel' },
      h('h2', {}, 'Alerts ', alertsStatus), alertsList)));

  const selectCall = (callId) => { location.hash = `#/live?call=${encodeURIComponent(callId)}`; };

  // -- alerts: the recent ones, then the stream from the newest one seen
  const addAlert = (a, fresh) => {
    if (num(a.id) == null || liveAlerts.byId.has(a.id)) return;
    liveAlerts.byId.set(a.id, a);
    liveAlerts.maxId = Math.max(liveAlerts.maxId, a.id);
    const li = alertItem(a, { onSelect: (x) => selectCall(x.call_id) });
    if (fresh) li.classList.add('fresh');
    const after = [...alertsList.children].find((el) => +el.dataset.alertId < a.id);
    alertsList.insertBefore(li, after || null);
    while (alertsList.children.length > 200) {
      const last = alertsList.lastElementChild;
      liveAlerts.byId.delete(+last.dataset.alertId);
      last.remove();
    }
  };
  for (const a of [...liveAlerts.byId.values()].sort((x, y) => y.id - x.id)) {
    alertsList.append(alertItem(a, { onSelect: (x) => selectCall(x.call_id) }));
  }
  const setConn = (s) => {
    alertsStatus.dataset.state = s;
    alertsStatus.textContent = s === 'open' ? 'live' : s;
  };
  const startAlerts = () => ctx.stream(
    () => `${API}/alerts/stream?after_id=${liveAlerts.maxId}`, 'alert', (a) => addAlert(a, true), setConn);
  if (liveAlerts.loaded) startAlerts();
  else {
    api('/alerts?limit=30', { signal: ctx.signal })
      .then((d) => {
        for (const a of (d && d.alerts) || []) addAlert(a, false);
        liveAlerts.loaded = true;
      })
      .catch((e) => { if (e.name === 'AbortError') throw e; })
      .then(startAlerts, () => {});
  }

  // -- the board, polled
  const renderBoard = () => {
    count.textContent = `(${rows.length})`;
    const now = Date.now();
    boardBody.replaceChildren(...rows.map((c) => {
      const recent = (c.recent || []).filter((t) => !t.partial).slice(-2);
      const tr = h('tr', {
        testid: 'live-call', class: c.call_id === selected ? 'selected' : '',
        data: { callId: c.call_id, id: c.id, state: c.state },
      },
      h('td', { title: c.from_uri }, uriLabel(c.from_uri)),
      h('td', { text: fmtClock(c.started_at_ms) }),
      h('td', { class: 'num', text: fmtDuration(now - c.started_at_ms) }),
      h('td', {}, badge(words(c.state), `st-${c.state}`)),
      h('td', { text: words(c.step) || '—' }),
      h('td', { text: words(c.intent) || '—' }),
      h('td', { text: words(c.verification) || '—' }),
      h('td', { text: c.agent || '—' }),
      h('td', { class: 'num' }, c.alerts ? badge(String(c.alerts), 'alerts-count') : '0'),
      h('td', { class: 'last-words' }, recent.map((t) =>
        h('div', { class: `lw spk-${t.speaker}` }, h('b', { text: `${SPEAKERS[t.speaker] || t.speaker}: ` }), t.text))));
      tr.addEventListener('click', () => selectCall(c.call_id));
      return tr;
    }));
    if (!rows.length) {
      boardBody.append(h('tr', { class: 'empty' }, h('td', { colspan: 10, class: 'muted', text: 'No active calls.' })));
    }
    const row = rows.find((c) => c.call_id === selected);
    if (row) {
      lastSeen.set(selected, row);
      for (const t of row.recent || []) upsertTurn(t);
      selInfo.replaceChildren(`${uriLabel(row.from_uri)} · `, badge(words(row.state), `st-${row.state}`));
      selInfo.dataset.state = row.state;
    } else if (selected) {
      const gone = lastSeen.get(selected);
      selInfo.dataset.state = 'ended';
      selInfo.replaceChildren(badge('ended', 'st-ended'),
        gone && num(gone.id) != null ? h('a', { href: `#/calls/${gone.id}`, text: ` open call #${gone.id}` }) : '');
    }
  };
  let inflight = false;
  const poll = () => {
    if (inflight) return;
    inflight = true;
    api('/live', { signal: ctx.signal })
      .then((d) => { rows = (d && d.calls) || []; renderBoard(); })
      .catch((e) => {
        if (e.status === 403) showError(root, e);
        else if (e.name !== 'AbortError') count.textContent = '(not updating: voxgate does not answer)';
      })
      .finally(() => { inflight = false; });
  };
  ctx.interval(poll, 1000);
  poll();

  // -- the selected call's transcript: partials replace each other until the final of that utterance
  function upsertTurn(t) {
    const key = liveTurnKey(t);
    const have = turns.get(key);
    if (have && !have.turn.partial && t.partial) return;
    if (have && !have.turn.partial && have.turn.text === t.text) return;
    const nearBottom = transcript.scrollTop + transcript.clientHeight >= transcript.scrollHeight - 30;
    const li = h('li', {
      class: `lturn spk-${t.speaker}${t.partial ? ' partial' : ''}`, testid: 'live-turn',
      data: { key, speaker: t.speaker, partial: t.partial ? '1' : '0', startMs: t.start_ms },
    },
    h('span', { class: 'spk', text: SPEAKERS[t.speaker] || t.speaker }),
    h('span', { class: 'ts muted', text: fmtOffset(t.start_ms) }),
    h('span', { class: 'txt', text: t.text }));
    if (have) {
      have.el.replaceWith(li);
    } else {
      transcript.querySelector('.empty')?.remove();
      const after = [...transcript.children].find((el) => +el.dataset.startMs > t.start_ms);
      transcript.insertBefore(li, after || null);
      if (transcript.children.length > 400) {
        turns.delete(transcript.firstElementChild.dataset.key);
        transcript.firstElementChild.remove();
      }
    }
    turns.set(key, { turn: t, el: li });
    if (nearBottom) transcript.scrollTop = transcript.scrollHeight;
  }

  const select = (callId) => {
    callId = callId || null;
    if (callId === selected) return;
    selected = callId;
    if (stopTurns) stopTurns();
    stopTurns = null;
    turns.clear();
    transcript.replaceChildren(h('li', { class: 'empty muted', text: callId ? 'Waiting for speech…' : 'Select a call on the board.' }));
    selInfo.textContent = '';
    if (callId) {
      stopTurns = ctx.stream(() => `${API}/turns/stream?call_id=${encodeURIComponent(callId)}`, 'turn',
        (t) => { if (t.call_id === selected) upsertTurn(t); });
    }
    renderBoard();
  };
  select(params.get('call'));
  return (p) => select(p.get('call'));
}

// ---------------------------------------------------------------- call list

const FILTERS = ['from', 'to', 'min_score', 'max_score', 'passed', 'rule_failed', 'agent', 'intent', 'alert'];

/** The hash's filters (local days) as API parameters (epoch ms of local midnights; `to` exclusive). */
function callQuery(p) {
  const q = new URLSearchParams();
  for (const k of FILTERS) {
    const v = (p.get(k) || '').trim();
    if (!v) continue;
    if (k === 'from' || k === 'to') {
      const ms = localDayMs(v, k === 'to' ? 1 : 0);
      if (ms != null) q.set(k, ms);
    } else q.set(k, v);
  }
  return q;
}

function ruleOptions(cards, selectedId, first, only = () => true) {
  const sel = [h('option', { value: '', text: first })];
  for (const c of cards) {
    const rules = (c.rules || []).filter(only);
    if (!rules.length) continue;
    sel.push(h('optgroup', { label: c.title || c.name },
      rules.map((r) => h('option', { value: ruleId(r), text: ruleTitle(r), selected: ruleId(r) === selectedId }))));
  }
  return sel;
}

function callsPage(ctx, root, params) {
  const field = (id, label, input) => h('label', { class: 'f' }, h('span', { text: label }), input);
  const f = {
    from: h('input', { id: 'f-from', type: 'date', name: 'from' }),
    to: h('input', { id: 'f-to', type: 'date', name: 'to' }),
    min_score: h('input', { id: 'f-min', type: 'number', min: 0, max: 100, step: 'any', name: 'min_score', class: 'short' }),
    max_score: h('input', { id: 'f-max', type: 'number', min: 0, max: 100, step: 'any', name: 'max_score', class: 'short' }),
    passed: h('select', { id: 'f-passed', name: 'passed' },
      h('option', { value: '', text: 'all' }), h('option', { value: 'true', text: 'passed' }), h('option', { value: 'false', text: 'failed' })),
    rule_failed: h('select', { id: 'f-rule', name: 'rule_failed' }, h('option', { value: '', text: '—' })),
    agent: h('input', { id: 'f-agent', name: 'agent', class: 'mid', placeholder: 'agent' }),
    intent: h('input', { id: 'f-intent', name: 'intent', class: 'mid', placeholder: 'intent' }),
    alert: h('select', { id: 'f-alert', name: 'alert' }, h('option', { value: '', text: 'all calls' }), h('option', { value: 'any', text: 'any alert' })),
  };
  const form = h('form', { id: 'calls-filters', class: 'filters', testid: 'calls-filters' },
    field('from', 'From', f.from), field('to', 'To', f.to),
    field('min', 'Score ≥', f.min_score), field('max', 'Score ≤', f.max_score),
    field('passed', 'Result', f.passed), field('rule', 'Rule failed', f.rule_failed),
    field('agent', 'Agent', f.agent), field('intent', 'Intent', f.intent), field('alert', 'Alerts', f.alert),
    h('button', { type: 'submit', id: 'f-apply', text: 'Apply' }),
    h('a', { href: '#/calls', id: 'f-clear', class: 'button-link', text: 'Clear' }));
  const exports = h('span', { class: 'exports' });
  const total = h('span', { id: 'calls-total', class: 'muted', testid: 'calls-total' });
  const pager = h('span', { class: 'pager' });
  const tbody = h('tbody');
  root.append(
    h('div', { class: 'toolbar' }, h('h1', { text: 'Calls' }), total, h('span', { class: 'spacer' }), exports, pager),
    form,
    h('div', { class: 'panel table-wrap' },
      h('table', { id: 'calls-table', class: 'grid calls', testid: 'calls-table' },
        h('thead', {}, h('tr', {}, ['#', 'Started', 'Caller', 'Dialled', 'Duration', 'End', 'Lang', 'Intent', 'Agent',
          'Bot only', 'Alerts', 'Score'].map((t) => h('th', { text: t })))),
        tbody)));

  let shown = params;
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const k of FILTERS) {
      const v = f[k].value.trim();
      if (v) q.set(k, v);
    }
    const next = `#/calls${q.toString() ? `?${q}` : ''}`;
    if (next === location.hash) load(shown);
    else location.hash = next;
  });

  const fillRules = () => scorecards().then((cards) => {
    f.rule_failed.replaceChildren(...ruleOptions(cards, shown.get('rule_failed') || '', '—'));
    f.alert.replaceChildren(h('option', { value: '', text: 'all calls' }), h('option', { value: 'any', text: 'any alert' }),
      ...ruleOptions(cards, shown.get('alert') || '', '', (r) => r.realtime !== false).slice(1));
    f.alert.value = shown.get('alert') || '';
  }).catch(() => {});
  fillRules();

  function pageLink(p, page, label, id) {
    const q = new URLSearchParams(p);
    if (page > 1) q.set('page', page); else q.delete('page');
    return h('a', { id, href: `#/calls${q.toString() ? `?${q}` : ''}`, class: 'button-link', text: label });
  }

  function load(p) {
    shown = p;
    state.lastList = location.hash || '#/calls';
    for (const k of FILTERS) f[k].value = p.get(k) || '';
    const page = Math.max(1, parseInt(p.get('page') || '1', 10) || 1);
    const q = callQuery(p);
    exports.replaceChildren();
    if (may(REVIEW)) {
      const qs = q.toString();
      exports.append(
        h('a', { id: 'export-csv', class: 'button-link', href: `${API}/export${qs ? `?${qs}` : ''}`, download: 'voxgate-calls.csv', text: 'Export CSV' }),
        h('a', { id: 'export-json', class: 'button-link', href: `${API}/export?${qs ? `${qs}&` : ''}format=json`, download: 'voxgate-calls.json', text: 'Export JSON' }));
    }
    q.set('limit', PAGE_SIZE);
    q.set('offset', (page - 1) * PAGE_SIZE);
    tbody.classList.add('loading');
    api(`/calls?${q}`, { signal: ctx.signal }).then((d) => {
      tbody.classList.remove('loading');
      const calls = (d && d.calls) || [];
      const n = num(d && d.total) || 0;
      total.textContent = n ? `${(page - 1) * PAGE_SIZE + 1}–${(page - 1) * PAGE_SIZE + calls.length} of ${n}` : 'no calls';
      total.dataset.total = n;
      pager.replaceChildren(
        page > 1 ? pageLink(p, page - 1, '‹ Prev', 'page-prev') : '',
        page * PAGE_SIZE < n ? pageLink(p, page + 1, 'Next ›', 'page-next') : '');
      tbody.replaceChildren(...calls.map((c) => {
        const end = c.ended_at_ms != null ? c.ended_at_ms - (c.answered_at_ms || c.started_at_ms) : null;
        const tr = h('tr', { testid: 'call-row', data: { id: c.id, callId: c.call_id } },
          h('td', {}, h('a', { href: `#/calls/${c.id}`, text: String(c.id) })),
          h('td', { class: 'nowrap', text: fmtDateTime(c.started_at_ms) }),
          h('td', { title: c.from_uri, text: uriLabel(c.from_uri) }),
          h('td', { title: c.to_uri, text: uriLabel(c.to_uri) }),
          h('td', { class: 'num' }, c.ended_at_ms == null ? badge('live', 'st-talking') : fmtDuration(end)),
          h('td', { text: words(c.end_reason) || '—' }),
          h('td', { text: c.language || '—' }),
          h('td', { text: words(c.intent) || '—' }),
          h('td', { text: c.agent || '—' }),
          h('td', { text: c.contained == null ? '—' : c.contained ? 'yes' : 'no' }),
          h('td', { class: 'num' }, c.alerts ? badge(String(c.alerts), 'alerts-count') : '0'),
          h('td', { class: 'num' }, scoreBadge(c.score, c.passed)));
        tr.addEventListener('click', (ev) => { if (!ev.target.closest('a')) location.hash = `#/calls/${c.id}`; });
        return tr;
      }));
      if (!calls.length) tbody.append(h('tr', { class: 'empty' }, h('td', { colspan: 12, class: 'muted', text: 'No calls match.' })));
    }).catch((e) => {
      tbody.classList.remove('loading');
      if (e.status === 400) total.textContent = `Filter error: ${e.message}`;
      else showError(root, e);
    });
  }
  load(params);
  return (p) => { load(p); fillRules(); };
}

// ---------------------------------------------------------------- call page

/** Which turn an evidence item points at: its index when that turn fits, else the turn that spans it. */
function evidenceTurn(turns, ev) {
  const fits = (t) => t && (!ev.speaker || t.speaker === ev.speaker);
  if (Number.isInteger(ev.turn) && fits(turns[ev.turn])) return ev.turn;
  const s = num(ev.start_ms), e = num(ev.end_ms) ?? s;
  if (s == null) return Number.isInteger(ev.turn) && turns[ev.turn] ? ev.turn : -1;
  let best = -1;
  turns.forEach((t, i) => {
    if (fits(t) && t.start_ms <= e && t.end_ms >= s && (best < 0 || findQuote(t.text, ev.quote))) best = i;
  });
  return best;
}

/** Where `quote` is in `text`, ignoring case and runs of white space; null when absent. */
function findQuote(text, quote) {
  const q = String(quote || '').trim();
  if (!q) return null;
  const src = q.split(/\s+/).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('\\s+');
  const m = new RegExp(src, 'iu').exec(text || '');
  return m ? [m.index, m.index + m[0].length] : null;
}

/**
 * Every evidence quote of every rule that points at a turn, as marked ranges per turn index (overlaps
 * merged). Evidence without a turn (silences, events) is a measure, not words: it is only drawn on the
 * timeline.
 */
function evidenceMarks(call) {
  const per = new Map();
  for (const s of call.scores || []) {
    for (const r of (s.result && s.result.rules) || []) {
      for (const ev of r.evidence || []) {
        if (!Number.isInteger(ev.turn)) continue;
        const i = evidenceTurn(call.turns || [], ev);
        if (i < 0) continue;
        const text = call.turns[i].text || '';
        const at = findQuote(text, ev.quote) || [0, text.length];
        if (!per.has(i)) per.set(i, []);
        per.get(i).push({ a: at[0], b: at[1], rules: new Set([r.rule]), titles: new Set([r.title || r.rule]) });
      }
    }
  }
  for (const [i, list] of per) {
    list.sort((x, y) => x.a - y.a);
    const merged = [];
    for (const m of list) {
      const last = merged[merged.length - 1];
      if (last && m.a < last.b) {
        last.b = Math.max(last.b, m.b);
        m.rules.forEach((x) => last.rules.add(x));
        m.titles.forEach((x) => last.titles.add(x));
      } else merged.push(m);
    }
    per.set(i, merged);
  }
  return per;
}

function markedText(text, marks) {
  const out = [];
  let at = 0;
  for (const m of marks || []) {
    if (m.a > at) out.push(text.slice(at, m.a));
    out.push(h('mark', { class: 'ev', text: text.slice(m.a, m.b) || text, title: [...m.titles].join(' · '), data: { rules: [...m.rules].join(' ') } }));
    at = m.b;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

function acousticsLine(a) {
  if (!a) return null;
  const parts = [];
  if (num(a.loudness_dbfs) != null) parts.push(h('span', { title: 'loudness', text: `${a.loudness_dbfs.toFixed(1)} dBFS` }));
  if (num(a.pitch_hz) != null) {
    const range = num(a.pitch_p10_hz) != null && num(a.pitch_p90_hz) != null ? ` (${Math.round(a.pitch_p10_hz)}–${Math.round(a.pitch_p90_hz)})` : '';
    parts.push(h('span', { title: 'median pitch (10th–90th percentile)', text: `${Math.round(a.pitch_hz)} Hz${range}` }));
  }
  if (num(a.words_per_min) != null) parts.push(h('span', { title: 'speech rate', text: `${Math.round(a.words_per_min)} wpm` }));
  if (num(a.speech_ms) != null) parts.push(h('span', { title: 'voiced speech', text: `${(a.speech_ms / 1000).toFixed(1)} s speech` }));
  if (num(a.arousal) != null) {
    parts.push(h('span', { class: a.arousal > 1.5 ? 'hot' : '', title: 'arousal over the speaker’s own baseline (>1.5 = markedly aroused)', text: `arousal ${a.arousal.toFixed(2)}` }));
  }
  return parts.length ? h('span', { class: 'acoustics', testid: 'acoustics' }, parts) : null;
}

function callPage(ctx, root, params, id) {
  root.append(h('p', { class: 'muted pad', text: `Loading call #${id}…` }));
  let call = null;
  const audio = h('audio', { id: 'player', controls: true, preload: 'metadata', testid: 'player' });
  ctx.onLeave(() => { audio.pause(); audio.removeAttribute('src'); audio.load(); });
  const view = { canvas: h('canvas', { id: 'waveform', class: 'waveform', testid: 'waveform' }), peaks: null, pos: 0, duration_ms: 1 };
  let pendingSeek = null;
  let turnEls = [];

  const seek = (ms, turnIndex) => {
    if (audio.getAttribute('src')) {
      if (audio.readyState >= 1) audio.currentTime = ms / 1000;
      else pendingSeek = ms;
    }
    view.pos = ms;
    drawWave(view, call);
    const i = turnIndex != null && turnIndex >= 0 ? turnIndex : turnAt(ms);
    const el = turnEls[i];
    if (el) {
      el.scrollIntoView({ block: 'center', behavior: 'smooth' });
      el.classList.remove('flash');
      void el.offsetWidth;
      el.classList.add('flash');
    }
  };
  const turnAt = (ms) => (call.turns || []).findIndex((t) => t.start_ms <= ms && ms <= t.end_ms);
  audio.addEventListener('loadedmetadata', () => {
    if (pendingSeek != null) { audio.currentTime = pendingSeek / 1000; pendingSeek = null; }
  });
  let raf = 0;
  const follow = () => {
    view.pos = audio.currentTime * 1000;
    drawWave(view, call);
    const i = turnAt(view.pos);
    turnEls.forEach((el, k) => el.classList.toggle('playing', k === i));
    raf = audio.paused ? 0 : requestAnimationFrame(follow);
  };
  audio.addEventListener('play', () => { if (!raf) raf = requestAnimationFrame(follow); });
  audio.addEventListener('seeked', () => { if (!raf) follow(); });
  ctx.onLeave(() => cancelAnimationFrame(raf));
  view.canvas.addEventListener('click', (ev) => {
    const r = view.canvas.getBoundingClientRect();
    seek(Math.max(0, (ev.clientX - r.left) / r.width) * view.duration_ms);
  });

  const scoreSlot = h('span', { id: 'call-score' });
  const headerSlot = h('div');
  const transcriptEl = h('ol', { id: 'transcript', class: 'transcript', testid: 'transcript' });
  const scoresEl = h('div', { id: 'scorecards', testid: 'scorecards' });
  const reviewSlot = h('div');

  function renderScoreHead() {
    const s = call.scores && call.scores[0];
    scoreSlot.replaceChildren(s ? scoreBadge(s.result.score, s.result.passed, 'call-score') : badge('not scored', 'none'));
  }

  function renderTranscript() {
    const marks = evidenceMarks(call);
    turnEls = (call.turns || []).map((t, i) => {
      const conf = num(t.confidence);
      const li = h('li', {
        class: `turn spk-${t.speaker}`, testid: 'turn', id: `turn-${i}`,
        data: { index: i, speaker: t.speaker, startMs: t.start_ms, endMs: t.end_ms },
      },
      h('div', { class: 'turn-meta' },
        h('span', { class: 'spk', text: SPEAKERS[t.speaker] || t.speaker }),
        h('button', { type: 'button', class: 'ts link', title: 'play from here', text: `${fmtOffset(t.start_ms, true)}–${fmtOffset(t.end_ms, true)}`, onclick: () => seek(t.start_ms, i) }),
        conf != null ? h('span', { class: `conf${conf < 0.6 ? ' low' : ''}`, title: 'recogniser confidence', text: `conf ${conf.toFixed(2)}` }) : null,
        t.interrupted ? h('span', { class: 'tag', text: 'cut off' }) : null,
        acousticsLine(t.acoustics)),
      h('div', { class: 'turn-text' }, markedText(t.text || '', marks.get(i))));
      return li;
    });
    transcriptEl.replaceChildren(...turnEls);
    if (!turnEls.length) transcriptEl.append(h('li', { class: 'muted', text: 'No transcript.' }));
  }

  function renderScores() {
    scoresEl.replaceChildren();
    if (!call.scores || !call.scores.length) {
      scoresEl.append(h('div', { class: 'panel muted pad', text: call.ended_at_ms == null ? 'Scored when the call ends.' : 'Not scored.' }));
      return;
    }
    const titles = new Map((state.scorecards || []).map((c) => [c.name, c.title]));
    call.scores.forEach((s, si) => {
      const res = s.result;
      const orig = new Map(((s.original && s.original.rules) || []).map((r) => [r.rule, r]));
      const sections = (res.sections || []).slice();
      const known = new Set(sections.map((x) => x.name));
      if ((res.rules || []).some((r) => !known.has(r.section))) sections.push({ name: null, title: 'Other rules' });
      const card = h('details', { class: 'panel scorecard', open: si === 0, testid: 'scorecard', data: { scorecard: res.scorecard } },
        h('summary', {},
          h('span', { class: 'sc-title', text: `${titles.get(res.scorecard) || res.scorecard} v${res.version}` }),
          scoreBadge(res.score, res.passed, 'scorecard-score'),
          badge(res.passed ? 'passed' : 'failed', res.passed ? 'pass' : 'fail'),
          res.critical_failed ? badge('critical failed', 'fail') : null,
          h('span', { class: 'muted', text: ` pass mark ${fmtScore(s.pass_mark)}` }),
          s.original && num(s.original.score) !== num(res.score)
            ? h('span', { class: 'muted orig-score', testid: 'original-score', text: ` · originally ${fmtScore(s.original.score)}` }) : null));
      for (const sec of sections) {
        const rules = (res.rules || []).filter((r) => (sec.name == null ? !known.has(r.section) : r.section === sec.name));
        if (!rules.length) continue;
        card.append(h('div', { class: 'sc-section' },
          h('h3', {}, h('span', { text: sec.title || words(sec.name) }),
            num(sec.possible) != null ? h('span', { class: 'muted', text: ` ${fmtScore(sec.earned)}/${fmtScore(sec.possible)}` }) : null),
          h('ul', { class: 'rules' }, rules.map((r) => ruleItem(s, r, orig.get(r.rule))))));
      }
      scoresEl.append(card);
    });
  }

  function ruleItem(s, r, o) {
    const reviews = (s.reviews || []).filter((v) => v.rule === r.rule);
    const overridden = reviews.length > 0 || (o && o.outcome !== r.outcome);
    return h('li', {
      class: `rule o-${r.outcome}${overridden ? ' overridden' : ''}`, testid: 'rule',
      data: { rule: r.rule, scorecard: s.result.scorecard, outcome: r.outcome },
    },
    h('div', { class: 'rule-head' },
      outcomeBadge(r.outcome),
      h('span', { class: 'rule-title', text: r.title || r.rule, title: `${r.rule} (${words(r.kind)})` }),
      h('span', { class: 'weight muted', title: 'weight', text: `w${r.weight}` }),
      r.critical ? h('span', { class: 'critical', text: 'critical' }) : null,
      may(REVIEW) && s.result ? h('button', { type: 'button', class: 'link override', text: 'override', onclick: () => pickForReview(s.result.scorecard, r.rule) }) : null),
    r.note ? h('div', { class: 'rule-note', text: r.note }) : null,
    overridden && o ? h('div', { class: 'rule-original', testid: 'rule-original' }, 'originally ', outcomeBadge(o.outcome)) : null,
    reviews.length ? h('ol', { class: 'audit', testid: 'audit' }, reviews.map((v) => h('li', { testid: 'audit-entry', data: { reviewer: v.reviewer } },
      h('b', { class: 'reviewer', text: v.reviewer }), ` ${fmtDateTime(v.at_ms)} `,
      outcomeBadge(v.previous), ' → ', outcomeBadge(v.outcome),
      h('div', { class: 'comment', text: v.comment })))) : null,
    (r.evidence || []).length ? h('ul', { class: 'evidence-list' }, r.evidence.map((ev) =>
      h('li', {}, h('button', {
        type: 'button', class: 'evidence', data: { startMs: ev.start_ms, turn: ev.turn },
        title: 'play and show in the transcript',
        onclick: () => seek(ev.start_ms, Number.isInteger(ev.turn) ? evidenceTurn(call.turns || [], ev) : -1),
      }, h('span', { class: 'ev-time', text: fmtOffset(ev.start_ms, true) }), h('span', { class: 'ev-quote', text: ev.quote }))))) : null);
  }

  // -- review form
  const rf = {
    scorecard: h('select', { id: 'review-scorecard' }),
    rule: h('select', { id: 'review-rule' }),
    outcome: h('select', { id: 'review-outcome' }, OUTCOMES.map((o) => h('option', { value: o, text: words(o) }))),
    comment: h('textarea', { id: 'review-comment', rows: 3, maxlength: 4000, placeholder: 'Why the result changes (required)' }),
    error: h('p', { id: 'review-error', class: 'error', role: 'alert', hidden: true }),
    ok: h('p', { id: 'review-ok', class: 'ok', hidden: true }),
    submit: h('button', { type: 'submit', id: 'review-submit', text: 'Save override' }),
  };
  const ruleOf = () => {
    const s = (call.scores || []).find((x) => x.result.scorecard === rf.scorecard.value);
    return s && s.result.rules.find((r) => r.rule === rf.rule.value);
  };
  const fillRulesSelect = () => {
    const s = (call.scores || []).find((x) => x.result.scorecard === rf.scorecard.value) || (call.scores || [])[0];
    const keep = rf.rule.value;
    rf.rule.replaceChildren(...((s && s.result.rules) || []).map((r) => h('option', { value: r.rule, text: `${r.title || r.rule} — ${words(r.outcome)}` })));
    if (keep) rf.rule.value = keep;
    if (!rf.rule.value && rf.rule.options.length) rf.rule.selectedIndex = 0;
    suggestOutcome();
  };
  const suggestOutcome = () => {
    const r = ruleOf();
    if (r) rf.outcome.value = r.outcome === 'pass' ? 'fail' : 'pass';
  };
  rf.scorecard.addEventListener('change', fillRulesSelect);
  rf.rule.addEventListener('change', suggestOutcome);
  function pickForReview(sc, rule) {
    rf.scorecard.value = sc;
    fillRulesSelect();
    rf.rule.value = rule;
    suggestOutcome();
    rf.comment.scrollIntoView({ block: 'center', behavior: 'smooth' });
    rf.comment.focus({ preventScroll: true });
  }
  const reviewForm = h('form', { id: 'review-form', class: 'review-form', testid: 'review-form' },
    h('label', {}, 'Scorecard', rf.scorecard), h('label', {}, 'Rule', rf.rule), h('label', {}, 'New outcome', rf.outcome),
    h('label', { class: 'wide' }, 'Comment', rf.comment), rf.submit, rf.error, rf.ok);
  reviewForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    rf.error.hidden = true;
    rf.ok.hidden = true;
    const comment = rf.comment.value.trim();
    if (!comment) {
      rf.error.textContent = 'A comment is required: say why the result changes.';
      rf.error.dataset.status = '';
      rf.error.hidden = false;
      rf.comment.focus();
      return;
    }
    rf.submit.disabled = true;
    const body = { scorecard: rf.scorecard.value, rule: rf.rule.value, outcome: rf.outcome.value, comment };
    try {
      const d = await api(`/calls/${id}/reviews`, { method: 'POST', body, signal: ctx.signal });
      call.scores = d.scores || call.scores;
      rf.comment.value = '';
      rf.ok.textContent = `Saved: ${d.review ? d.review.rule : body.rule} is now ${words(body.outcome)}; score ${fmtScore(call.scores[0] && call.scores[0].result.score)}.`;
      rf.ok.hidden = false;
      rerender();
    } catch (e) {
      if (e.name === 'AbortError' || e.status === 401) return;
      rf.error.dataset.status = e.status || '';
      rf.error.textContent = e.status === 409 ? `Not saved — no change: ${e.message}`
        : e.status === 403 ? 'Your role may not override results.' : `Not saved: ${e.message}`;
      rf.error.hidden = false;
    } finally {
      rf.submit.disabled = false;
    }
  });

  function renderReview() {
    reviewSlot.replaceChildren();
    if (!may(REVIEW) || !(call.scores || []).length) return;
    const keep = rf.scorecard.value;
    rf.scorecard.replaceChildren(...call.scores.map((s) => h('option', { value: s.result.scorecard, text: s.result.scorecard })));
    if (keep) rf.scorecard.value = keep;
    fillRulesSelect();
    reviewSlot.append(h('section', { class: 'panel', id: 'review-card' }, h('h2', { text: 'Override a rule' }), reviewForm));
  }

  function rerender() {
    renderScoreHead();
    renderTranscript();
    renderScores();
    renderReview();
    drawWave(view, call);
  }

  function header() {
    const d = call.dialog || {};
    const ho = d.handoff;
    const answered = call.answered_at_ms;
    const rows = [
      ['Caller', call.from_uri], ['Dialled', call.to_uri],
      ['Started', fmtDateTime(call.started_at_ms)], ['Answered', fmtDateTime(answered)], ['Ended', fmtDateTime(call.ended_at_ms)],
      ['Duration', call.ended_at_ms != null ? fmtDuration(call.ended_at_ms - (answered || call.started_at_ms)) : 'in progress'],
      ['End reason', words(call.end_reason) || '—'], ['Language', call.language || '—'],
      ['Intent', d.intent ? `${words(d.intent.name)} (${(d.intent.confidence || 0).toFixed(2)})` : '—'],
      ['Verification', words(d.verification) || '—'], ['Voiceprint', words(d.voiceprint) || null],
      ['Handled by', d.contained == null ? '—' : d.contained ? 'voxgate alone' : 'handed off'],
      ['Hand-off', ho ? [words(ho.skill), ho.reason, ho.agent ? `agent ${ho.agent}` : 'no agent', ho.priority ? 'priority' : '', ...(ho.tags || [])].filter(Boolean).join(' · ') : null],
      ['Flow', d.flow || null], ['Digits', call.digits || null],
      ['Slots', Object.entries(d.slots || {}).map(([k, v]) => `${words(k)}: ${v.display}`).join(' · ') || null],
      ['No input / no match', d.no_input || d.no_match ? `${d.no_input || 0} / ${d.no_match || 0}` : null],
      ['Media', [call.codec, call.transport, call.remote_addr].filter(Boolean).join(' · ') || null],
    ];
    return h('dl', { id: 'call-header', class: 'facts', testid: 'call-header' },
      rows.filter(([, v]) => v != null).map(([k, v]) => [h('dt', { text: k }), h('dd', { text: v, data: { field: k.toLowerCase().replace(/\W+/g, '-') } })]));
  }

  function eventsTable(id, title, events) {
    return h('details', { class: 'panel events', id, testid: id },
      h('summary', { text: `${title} (${events.length})` }),
      h('table', { class: 'grid' }, h('tbody', {}, events.map((e) => h('tr', {},
        h('td', { class: 'num' }, h('button', { type: 'button', class: 'link ts', text: fmtOffset(e.at_ms, true), onclick: () => seek(e.at_ms) })),
        h('td', { text: words(e.kind) }), h('td', { text: e.detail || '' }))))));
  }

  api(`/calls/${id}`, { signal: ctx.signal }).then(async (c) => {
    call = c;
    call.turns = call.turns || [];
    await scorecards().catch(() => []);
    if (!ctx.alive) return;
    const back = h('a', { href: state.lastList, id: 'back-to-list', class: 'button-link', text: '‹ Calls' });
    const recUrl = typeof call.recording_url === 'string' && call.recording_url.startsWith('/') ? call.recording_url : null;
    if (recUrl) audio.src = recUrl;
    const alerts = call.alerts || [];
    root.replaceChildren(
      h('div', { class: 'toolbar' }, back, h('h1', { text: `Call #${call.id}` }),
        h('span', { class: 'muted', text: `${uriLabel(call.from_uri)} · ${fmtDateTime(call.started_at_ms)}` }),
        h('span', { class: 'spacer' }), scoreSlot),
      h('div', { id: 'call-page', data: { id: call.id }, class: 'call-grid' },
        h('section', { class: 'panel header-panel' }, headerSlot),
        h('section', { class: 'panel media-panel' },
          h('div', { class: 'wave-wrap' }, view.canvas),
          h('div', { class: 'legend muted' },
            h('span', { class: 'lg lg-caller', text: 'caller' }), h('span', { class: 'lg lg-voxgate', text: 'voxgate' }),
            h('span', { class: 'lg lg-agent', text: 'agent' }), h('span', { class: 'lg lg-silence', text: `silence ≥ ${SILENCE_MS / 1000} s` }),
            h('span', { class: 'lg lg-evidence', text: 'evidence' }), h('span', { class: 'lg lg-alert', text: 'alert' }),
            h('span', { class: 'spacer' }), h('span', { id: 'wave-status', text: recUrl ? 'loading recording…' : 'no recording' })),
          recUrl ? audio : null),
        h('div', { class: 'col-main' },
          h('section', { class: 'panel' }, h('h2', { text: `Transcript (${call.turns.length} turns)` }), transcriptEl)),
        h('div', { class: 'col-side' },
          scoresEl, reviewSlot,
          h('section', { class: 'panel' }, h('h2', { text: `Alerts (${alerts.length})` }),
            h('ol', { id: 'call-alerts', class: 'alerts-list compact', testid: 'call-alerts' },
              alerts.map((a) => alertItem(a, { onSelect: (x) => seek(x.start_ms) })))),
          eventsTable('timeline-events', 'Timeline', call.timeline || []),
          (call.dialog && (call.dialog.events || []).length) ? eventsTable('dialog-events', 'Dialog events', call.dialog.events) : null)));
    headerSlot.append(header());
    view.duration_ms = Math.max(1, ...call.turns.map((t) => t.end_ms || 0), ...alerts.map((a) => a.end_ms || 0),
      call.ended_at_ms != null ? call.ended_at_ms - call.started_at_ms : 0);
    rerender();
    ctx.observeSize(view.canvas.parentElement, () => drawWave(view, call));
    if (recUrl) loadPeaks(recUrl, ctx.signal).then((p) => {
      view.peaks = p;
      view.duration_ms = Math.max(p.duration_ms, 1);
      document.getElementById('wave-status').textContent = `${fmtOffset(p.duration_ms)} · ${p.channels} ch · ${p.rate} Hz`;
      drawWave(view, call);
    }).catch((e) => {
      if (e.name === 'AbortError' || !ctx.alive) return;
      const st = document.getElementById('wave-status');
      if (st) st.textContent = `recording unavailable: ${e.message}`;
    });
    const target = parseHash().params.get('t');
    if (target != null && num(+target) != null) seek(+target);
  }).catch((e) => showError(root, e));
}

// ---------------------------------------------------------------- recording → peaks

const PEAK_BUCKETS = 4000;

async function loadPeaks(url, signal) {
  const r = await fetch(url, { signal, credentials: 'same-origin' });
  if (r.status === 401) { needLogin(); throw new HttpError(401, 'Log in first'); }
  if (!r.ok) throw new HttpError(r.status, `${r.status} ${r.statusText}`);
  const buf = await r.arrayBuffer();
  return wavPeaks(buf) || decodedPeaks(buf);
}

/** Max |sample| per bucket and channel straight from PCM; null for a WAV this does not read. */
function wavPeaks(buf) {
  const dv = new DataView(buf);
  const tag = (o) => String.fromCharCode(dv.getUint8(o), dv.getUint8(o + 1), dv.getUint8(o + 2), dv.getUint8(o + 3));
  if (buf.byteLength < 44 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') return null;
  let fmt = null, off = 0, len = 0;
  for (let o = 12; o + 8 <= buf.byteLength;) {
    const id = tag(o), size = dv.getUint32(o + 4, true), body = o + 8;
    if (id === 'fmt ' && size >= 16) {
      fmt = { code: dv.getUint16(body, true), ch: dv.getUint16(body + 2, true), rate: dv.getUint32(body + 4, true), bits: dv.getUint16(body + 14, true) };
      if (fmt.code === 0xfffe && size >= 26) fmt.code = dv.getUint16(body + 24, true);
    } else if (id === 'data') {
      off = body;
      len = Math.min(size, buf.byteLength - body);
      break;
    }
    o = body + size + (size & 1);
  }
  if (!fmt || !off || !fmt.ch || !fmt.rate) return null;
  const read = fmt.code === 1 && fmt.bits === 16 ? (o) => dv.getInt16(o, true) / 32768
    : fmt.code === 1 && fmt.bits === 8 ? (o) => (dv.getUint8(o) - 128) / 128
    : fmt.code === 1 && fmt.bits === 32 ? (o) => dv.getInt32(o, true) / 2147483648
    : fmt.code === 3 && fmt.bits === 32 ? (o) => dv.getFloat32(o, true) : null;
  if (!read) return null;
  const bytes = fmt.bits / 8, frameBytes = bytes * fmt.ch;
  const frames = Math.floor(len / frameBytes);
  const n = Math.max(1, Math.min(PEAK_BUCKETS, frames));
  const peaks = [];
  for (let c = 0; c < Math.min(fmt.ch, 2); c++) {
    const p = new Float32Array(n);
    for (let i = 0; i < frames; i++) {
      const v = Math.abs(read(off + i * frameBytes + c * bytes));
      const b = Math.floor((i * n) / frames);
      if (v > p[b]) p[b] = v;
    }
    peaks.push(p);
  }
  return { peaks, frames, rate: fmt.rate, channels: fmt.ch, duration_ms: (frames / fmt.rate) * 1000 };
}

/** Scale so the loudest moment fills a lane: phone audio is often quiet, and shape matters more than level. */
function peakScale(peaks) {
  let m = 0;
  for (const p of peaks) for (const v of p) if (v > m) m = v;
  return 1 / Math.max(m, 0.01);
}

async function decodedPeaks(buf) {
  const ab = await new OfflineAudioContext(1, 1, 8000).decodeAudioData(buf.slice(0));
  const frames = ab.length, n = Math.max(1, Math.min(PEAK_BUCKETS, frames));
  const peaks = [];
  for (let c = 0; c < Math.min(ab.numberOfChannels, 2); c++) {
    const d = ab.getChannelData(c), p = new Float32Array(n);
    for (let i = 0; i < frames; i++) {
      const b = Math.floor((i * n) / frames), v = Math.abs(d[i]);
      if (v > p[b]) p[b] = v;
    }
    peaks.push(p);
  }
  return { peaks, frames, rate: ab.sampleRate, channels: ab.numberOfChannels, duration_ms: ab.duration * 1000 };
}

// ---------------------------------------------------------------- canvas drawing

/** A canvas as wide as its box, sharp on high-DPI screens; returns a context in CSS pixels. */
function setupCanvas(canvas, cssH) {
  const w = Math.max(120, Math.floor((canvas.parentElement || canvas).clientWidth || 600));
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(cssH * dpr);
  canvas.style.height = `${cssH}px`;
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, cssH);
  g.font = '11px system-ui, sans-serif';
  g.textBaseline = 'middle';
  return { g, w, h: cssH };
}

function silences(turns, dur) {
  const spans = turns.map((t) => [t.start_ms, t.end_ms]).sort((a, b) => a[0] - b[0]);
  const out = [];
  let at = 0;
  for (const [s, e] of spans) {
    if (s - at >= SILENCE_MS) out.push([at, s]);
    at = Math.max(at, e);
  }
  if (dur - at >= SILENCE_MS) out.push([at, dur]);
  return out;
}

function niceStep(span, px) {
  const target = span / Math.max(1, px / 70);
  for (const s of [1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000, 300000, 600000, 1800000, 3600000]) {
    if (s >= target) return s;
  }
  return 3600000;
}

function drawWave(view, call) {
  if (!call || !view.canvas.isConnected) return;
  const { g, w } = setupCanvas(view.canvas, 168);
  const col = {
    caller: cssVar('--c-caller'), voxgate: cssVar('--c-voxgate'), agent: cssVar('--c-agent'), lane: cssVar('--c-lane'),
    silence: cssVar('--c-silence'), text: cssVar('--c-muted'), evidence: cssVar('--c-evidence'), head: cssVar('--c-head'),
    info: cssVar('--c-info'), warning: cssVar('--c-warning'), critical: cssVar('--c-critical'),
  };
  const dur = Math.max(1, view.duration_ms);
  const X = (ms) => (Math.min(Math.max(ms, 0), dur) / dur) * w;
  const laneH = 52, l1 = 14, l2 = l1 + laneH + 4, segY = l2 + laneH + 4, segH = 18, axisY = segY + segH + 8;
  const turns = call.turns || [];
  g.fillStyle = col.lane;
  g.fillRect(0, l1, w, laneH);
  g.fillRect(0, l2, w, laneH);
  g.fillStyle = col.silence;
  for (const [a, b] of silences(turns, dur)) g.fillRect(X(a), l1, Math.max(1, X(b) - X(a)), segY + segH - l1);
  if (view.peaks) {
    const p = view.peaks;
    const span = X(p.duration_ms);
    const k = p.scale || (p.scale = peakScale(p.peaks));
    p.peaks.forEach((arr, c) => {
      const mid = (c ? l2 : l1) + laneH / 2;
      g.fillStyle = c ? (turns.some((t) => t.speaker === 'agent') ? col.agent : col.voxgate) : col.caller;
      for (let x = 0; x < span; x++) {
        const b0 = Math.floor((x / span) * arr.length), b1 = Math.max(b0 + 1, Math.floor(((x + 1) / span) * arr.length));
        let m = 0;
        for (let b = b0; b < b1 && b < arr.length; b++) if (arr[b] > m) m = arr[b];
        const hh = Math.max(0.5, Math.min(1, m * k) * (laneH / 2 - 1));
        g.fillRect(x, mid - hh, 1, hh * 2);
      }
    });
  }
  for (const t of turns) {
    g.fillStyle = col[t.speaker] || col.voxgate;
    g.fillRect(X(t.start_ms), t.speaker === 'caller' ? segY : segY + segH / 2, Math.max(1.5, X(t.end_ms) - X(t.start_ms)), segH / 2 - 1);
  }
  g.fillStyle = col.text;
  g.textAlign = 'left';
  g.fillText('caller', 4, l1 + 8);
  g.fillText('voxgate / agent', 4, l2 + 8);
  // evidence on top, alerts below the lanes: both thin lines through the waveform
  for (const s of call.scores || []) {
    for (const r of s.result.rules || []) {
      for (const e of r.evidence || []) {
        const x = X(e.start_ms);
        g.fillStyle = col.evidence;
        // words and gaps get their span shaded; whole-call measures ("call 14:02") only their start
        if (e.end_ms - e.start_ms < dur / 3) {
          g.globalAlpha = 0.18;
          g.fillRect(x, l1, Math.max(1, X(e.end_ms) - x), segY - l1);
          g.globalAlpha = 1;
        }
        g.fillRect(x - 0.5, l1, 1, segY - l1);
        g.beginPath(); g.moveTo(x - 5, 2); g.lineTo(x + 5, 2); g.lineTo(x, 11); g.fill();
      }
    }
  }
  for (const a of call.alerts || []) {
    const x = X(a.start_ms);
    g.fillStyle = col[a.severity] || col.warning;
    g.fillRect(x - 1, l1, 2, segY + segH - l1);
    g.beginPath(); g.moveTo(x, segY + segH - 7); g.lineTo(x + 6, segY + segH + 3); g.lineTo(x - 6, segY + segH + 3); g.fill();
  }
  const step = niceStep(dur, w);
  g.fillStyle = col.text;
  g.textAlign = 'center';
  for (let t = 0; t <= dur; t += step) {
    const x = X(t);
    g.fillRect(x, axisY - 4, 1, 4);
    g.fillText(fmtOffset(t), Math.min(Math.max(x, 14), w - 14), axisY + 6);
  }
  if (view.pos > 0) {
    g.fillStyle = col.head;
    g.fillRect(X(view.pos) - 1, l1 - 2, 2, segY + segH - l1 + 4);
  }
  view.canvas.dataset.drawn = view.peaks ? 'wave' : 'timeline';
  if (view.peaks) view.canvas.dataset.frames = view.peaks.frames;
}

/**
 * Bars with labels: horizontal (a ranked list) or vertical (a series). `rows` are {label, value, color?};
 * clicks on a bar call onPick(row).
 */
function barChart(canvas, rows, { horizontal = false, height = 200, color, onPick, fmt = String, labelEvery = 1 } = {}) {
  const H = horizontal ? Math.max(40, rows.length * 22 + 8) : height;
  const { g, w } = setupCanvas(canvas, H);
  const text = cssVar('--c-text'), muted = cssVar('--c-muted'), grid = cssVar('--c-lane');
  const hits = [];
  const max = Math.max(1, ...rows.map((r) => r.value || 0));
  if (!rows.length || rows.every((r) => !r.value)) {
    g.fillStyle = muted;
    g.textAlign = 'center';
    g.fillText('no data', w / 2, H / 2);
  } else if (horizontal) {
    const labelW = Math.min(240, Math.floor(w * 0.45)), valW = 48, barW = w - labelW - valW - 8;
    rows.forEach((r, i) => {
      const y = 4 + i * 22;
      g.fillStyle = text;
      g.textAlign = 'right';
      let label = r.label;
      while (label.length > 3 && g.measureText(label).width > labelW - 8) label = `${label.slice(0, -2)}…`;
      g.fillText(label, labelW - 6, y + 9);
      const bw = Math.max(2, ((r.value || 0) / max) * barW);
      g.fillStyle = r.color || color;
      g.fillRect(labelW, y + 1, bw, 16);
      g.fillStyle = muted;
      g.textAlign = 'left';
      g.fillText(fmt(r.value), labelW + bw + 4, y + 9);
      hits.push({ x: 0, y, w, h: 20, row: r });
    });
  } else {
    const left = 34, bottom = 18, top = 8, plotH = H - bottom - top, plotW = w - left - 4;
    const bw = plotW / rows.length;
    g.fillStyle = grid;
    for (let k = 0; k <= 4; k++) g.fillRect(left, top + (plotH * k) / 4, plotW, 1);
    g.fillStyle = muted;
    g.textAlign = 'right';
    g.fillText(fmt(max), left - 4, top);
    g.fillText('0', left - 4, top + plotH);
    rows.forEach((r, i) => {
      const x = left + i * bw, bh = ((r.value || 0) / max) * plotH;
      g.fillStyle = r.color || color;
      g.fillRect(x + Math.min(2, bw * 0.15), top + plotH - bh, Math.max(1, bw - Math.min(4, bw * 0.3)), bh);
      if (i % labelEvery === 0) {
        g.fillStyle = muted;
        g.textAlign = 'center';
        g.fillText(r.label, Math.min(Math.max(x + bw / 2, 12), w - 12), H - 8);
      }
      hits.push({ x, y: top, w: bw, h: plotH, row: r });
    });
  }
  canvas.dataset.drawn = String(rows.length);
  canvas.classList.toggle('clickable', !!onPick);
  canvas.onclick = onPick ? (ev) => {
    const rect = canvas.getBoundingClientRect();
    const x = ev.clientX - rect.left, y = ev.clientY - rect.top;
    const hit = hits.find((b) => x >= b.x && x < b.x + b.w && y >= b.y && y < b.y + b.h);
    if (hit) onPick(hit.row);
  } : null;
}

// ---------------------------------------------------------------- dashboard

function dashboardPage(ctx, root, params) {
  const from = h('input', { id: 'd-from', type: 'date' });
  const to = h('input', { id: 'd-to', type: 'date' });
  const form = h('form', { id: 'dash-form', class: 'filters' },
    h('label', { class: 'f' }, h('span', { text: 'From' }), from), h('label', { class: 'f' }, h('span', { text: 'To' }), to),
    h('button', { type: 'submit', text: 'Show' }),
    [['Today', 0], ['7 days', 6], ['30 days', 29]].map(([label, n]) =>
      h('a', { class: 'button-link', href: `#/dashboard?from=${daysAgo(n)}&to=${daysAgo(0)}`, text: label })));
  const tiles = h('div', { class: 'tiles', id: 'dash-tiles' });
  const charts = h('div', { class: 'charts' });
  root.append(h('div', { class: 'toolbar' }, h('h1', { text: 'Dashboard' }), form), tiles, charts);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = `#/dashboard?from=${from.value}&to=${to.value}`;
  });

  const chart = (id, title, note) => {
    const canvas = h('canvas', { id, class: 'chart', testid: id });
    charts.append(h('section', { class: 'panel chart-card' }, h('h2', {}, title, note ? h('span', { class: 'muted', text: ` ${note}` }) : null),
      h('div', { class: 'chart-box' }, canvas)));
    return canvas;
  };

  let data = null, range = null;
  const draw = () => {
    if (!data) return;
    const d = data;
    const listLink = (extra) => {
      const q = new URLSearchParams({ from: range.from, to: range.to, ...extra });
      return `#/calls?${q}`;
    };
    charts.replaceChildren();
    const hist = (d.score_histogram || []).map((v, i) => ({
      label: i === 9 ? '90–100' : `${i * 10}–${i * 10 + 9}`, value: v, band: i, color: cssVar(i >= 8 ? '--c-pass' : i >= 5 ? '--c-warning' : '--c-critical'),
    }));
    barChart(chart('chart-scores', 'Score distribution', `${d.scored} scored`), hist, {
      onPick: (r) => { location.hash = listLink({ min_score: r.band * 10, max_score: r.band === 9 ? 100 : r.band * 10 + 9.99 }); },
    });
    barChart(chart('chart-failed', 'Top failed rules', 'calls'), (d.top_failed_rules || []).map((r) => ({ label: r.title || r.rule, value: r.calls, rule: r.rule })), {
      horizontal: true, color: cssVar('--c-critical'), onPick: (r) => { location.hash = listLink({ rule_failed: r.rule }); },
    });
    barChart(chart('chart-intents', 'Intents', 'calls'), (d.intents || []).map((r) => ({ label: words(r.name), value: r.count, name: r.name })), {
      horizontal: true, color: cssVar('--c-voxgate'), onPick: (r) => { location.hash = listLink({ intent: r.name }); },
    });
    const other = Math.max(0, (d.finished || 0) - (d.contained || 0) - (d.handed_off || 0));
    barChart(chart('chart-containment', 'Containment', fmtPct(d.containment_rate)), [
      { label: 'voxgate alone', value: d.contained || 0, color: cssVar('--c-pass') },
      { label: 'handed off', value: d.handed_off || 0, color: cssVar('--c-agent') },
      { label: 'other / unknown', value: other, color: cssVar('--c-muted') }], { horizontal: true });
    barChart(chart('chart-severity', 'Alerts by severity', `${d.alerts} alerts`),
      ['critical', 'warning', 'info'].map((s) => ({ label: s, value: ((d.alerts_by_severity || []).find((x) => x.name === s) || {}).count || 0, color: cssVar(`--c-${s}`) }))
        .concat((d.alerts_by_severity || []).filter((x) => !['critical', 'warning', 'info'].includes(x.name)).map((x) => ({ label: x.name, value: x.count }))),
      { horizontal: true, color: cssVar('--c-muted') });
    // alerts per hour over the whole range (days when it is long), zeros included
    const byHour = new Map((d.alerts_per_hour || []).map((x) => [x.hour_ms, x.count]));
    const start = localDayMs(range.from, 0), end = Math.min(localDayMs(range.to, 1), Date.now() + 3600000);
    const hours = Math.ceil((end - start) / 3600000);
    const daily = hours > 24 * 7, multiDay = hours > 24;
    const stepMs = daily ? 86400000 : 3600000;
    const series = [];
    for (let t = start; t < end; t += stepMs) {
      const d = new Date(t);
      series.push({ label: multiDay ? localDay(d).slice(5) : `${pad(d.getHours())}h`, value: 0, t });
    }
    for (const [t, n] of byHour) {
      const i = Math.floor((t - start) / stepMs);
      if (i >= 0 && i < series.length) series[i].value += n;
    }
    barChart(chart('chart-alerts-hour', daily ? 'Alerts per day' : 'Alerts per hour'), series, {
      color: cssVar('--c-warning'), height: 180,
      labelEvery: daily ? Math.max(1, Math.ceil(series.length / 12)) : multiDay ? 24 * Math.ceil(series.length / 24 / 10) : Math.max(1, Math.ceil(series.length / 12)),
    });
  };
  ctx.observeSize(charts, draw);

  const tile = (id, label, value, cls) => h('div', { class: `tile ${cls || ''}`, testid: `tile-${id}` }, h('div', { class: 'tile-v', text: value }), h('div', { class: 'tile-l', text: label }));
  const load = (p) => {
    range = { from: p.get('from') || daysAgo(6), to: p.get('to') || daysAgo(0) };
    from.value = range.from;
    to.value = range.to;
    const q = new URLSearchParams({ from: localDayMs(range.from, 0) ?? '', to: localDayMs(range.to, 1) ?? '' });
    api(`/dashboard?${q}`, { signal: ctx.signal }).then((d) => {
      data = d;
      tiles.replaceChildren(
        tile('calls', 'calls', String(d.calls)), tile('finished', 'finished', String(d.finished)),
        tile('scored', 'scored', String(d.scored)), tile('average', 'average score', fmtScore(d.average_score)),
        tile('passed', 'passed', d.scored ? fmtPct(d.passed / d.scored) : '—'),
        tile('containment', 'containment', fmtPct(d.containment_rate)),
        tile('aht', 'avg handle time', num(d.average_handle_ms) != null ? fmtDuration(d.average_handle_ms) : '—'),
        tile('alerts', 'alerts', String(d.alerts), d.alerts ? 'warn' : ''));
      draw();
    }).catch((e) => showError(root, e));
  };
  load(params);
  return load;
}

// ---------------------------------------------------------------- start

api('/me').then(loggedIn, (e) => {
  if (e.status !== 401) app.replaceChildren(h('div', { class: 'error-box', text: `voxgate is not answering: ${e.message}` }));
});
