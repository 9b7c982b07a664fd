// A stand-in for voxgate's HTTP API (docs/api.md), for working on the web UI without building the binary:
// serves src/ui/* with the real server's CSP, fake calls, scores, alerts, SSE streams and a scripted live
// fraud call started by `POST /mock/fraud-call`.
//
//   node tests/ui/mock-server.mjs [port]      users: admin / sup / qa, password "secret"
//
// Not a test of voxgate: only the UI and the test script are exercised against it.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

const UI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/ui');
const CSP = "default-src 'self'; img-src 'self' data:; media-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
const USERS = { admin: 'admin', sup: 'supervisor', qa: 'qa_reviewer' };
const PASSWORD = process.env.MOCK_PASSWORD || 'secret';
const sessions = new Map();

// ------------------------------------------------------------------ scorecards and scoring
const RULES = [
  ['greeting', 'Greeted within the first 10 s', 'opening', 'phrase_present', 10, false],
  ['verify_before_disclosure', 'Verified before account data was disclosed', 'verification', 'event', 20, true],
  ['fees_disclosed', 'Fees and risks disclosed before confirmation', 'compliance', 'phrase_present', 15, false],
  ['no_guarantee', 'No promise of guaranteed returns', 'compliance', 'phrase_absent', 15, true],
  ['fraud_safe_account', 'Fraud indicator: "safe account" / told to move money', 'risk', 'phrase_absent', 10, false],
  ['pressure_urgency', 'Caller under time pressure by a third party', 'risk', 'phrase_absent', 5, false],
  ['asked_for_human', 'Caller asked for a human repeatedly', 'risk', 'event', 5, false],
  ['long_silence', 'No silence longer than 8 s', 'conduct', 'silence', 10, false],
  ['agent_empathy', 'Agent acknowledged the caller', 'conduct', 'sentiment', 5, false],
  ['closing', 'Proper closing', 'closing', 'phrase_present', 5, false],
].map(([rule, title, section, kind, weight, critical]) => ({ rule, title, section, kind, weight, critical }));
const SECTIONS = [['opening', 'Opening'], ['verification', 'Verification'], ['compliance', 'Compliance'],
  ['risk', 'Risk and fraud'], ['conduct', 'Conduct'], ['closing', 'Closing']].map(([name, title]) => ({ name, title }));
const CARD = { name: 'bank_en', title: 'Bank hotline (English)', language: 'en', version: '3', pass_mark: 80 };
const REALTIME = { fraud_safe_account: 'critical', pressure_urgency: 'warning', asked_for_human: 'warning' };

function scoreOf(rules) {
  const sections = SECTIONS.map((s) => {
    const rs = rules.filter((r) => r.section === s.name && r.outcome !== 'not_applicable');
    const possible = rs.reduce((a, r) => a + r.weight, 0);
    const earned = rs.filter((r) => r.outcome === 'pass').reduce((a, r) => a + r.weight, 0);
    return { ...s, possible, earned, score: possible ? Math.round((1000 * earned) / possible) / 10 : null };
  });
  const possible = sections.reduce((a, s) => a + s.possible, 0);
  const earned = sections.reduce((a, s) => a + s.earned, 0);
  const raw = possible ? Math.round((1000 * earned) / possible) / 10 : 100;
  const critical_failed = rules.some((r) => r.critical && r.outcome === 'fail');
  return {
    scorecard: CARD.name, version: CARD.version, score: critical_failed ? 0 : raw, raw_score: raw,
    passed: raw >= CARD.pass_mark && !critical_failed, critical_failed, sections, rules,
  };
}

function makeScore(outcomes, evidence, at) {
  const rules = RULES.map((r) => ({ ...r, outcome: outcomes[r.rule] || 'pass', evidence: evidence[r.rule] || [], note: '' }));
  rules.find((r) => r.rule === 'long_silence').note = outcomes.long_silence === 'fail' ? 'gap of 9.4 s at 0:16' : '';
  const result = scoreOf(rules);
  return { result, original: structuredClone(result), pass_mark: CARD.pass_mark, scored_at_ms: at, reviews: [] };
}

// ------------------------------------------------------------------ fake history
let nextId = 1, nextAlert = 1, nextReview = 1;
const calls = new Map();
const alerts = [];
const rand = (() => { let s = 42; return () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648); })();
const pick = (a) => a[Math.floor(rand() * a.length)];
const ac = (db, hz, wpm, ar) => ({ speech_ms: 2400, loudness_dbfs: db, pitch_hz: hz, pitch_p10_hz: hz * 0.8, pitch_p90_hz: hz * 1.25, words_per_min: wpm, ...(ar == null ? {} : { arousal: ar }) });

function historyTurns(intent) {
  return [
    { speaker: 'voxgate', start_ms: 800, end_ms: 4200, text: 'Welcome to Example Bank. This call is recorded. How can I help you today?' },
    { speaker: 'caller', start_ms: 5000, end_ms: 8100, text: intent === 'lost_card' ? 'Hi, I think I lost my card yesterday.' : 'I would like to know my balance please.', confidence: 0.91, acoustics: ac(-21.5, 182, 150) },
    { speaker: 'voxgate', start_ms: 8600, end_ms: 11900, text: 'Please tell me your account number.' },
    { speaker: 'caller', start_ms: 12500, end_ms: 16000, text: 'It is ********', confidence: 0.55, acoustics: ac(-22.1, 176, 128, 0.4) },
    { speaker: 'voxgate', start_ms: 25400, end_ms: 28800, text: 'Thank you. Please key in your PIN.', interrupted: true },
    { speaker: 'caller', start_ms: 28300, end_ms: 31000, text: 'Why does this take so long, I want to talk to a person!', confidence: 0.8, acoustics: ac(-15.2, 231, 190, 1.9) },
    { speaker: 'voxgate', start_ms: 31500, end_ms: 35000, text: 'Thank you for calling Example Bank. Goodbye.' },
  ];
}

for (let i = 0; i < 140; i++) {
  const id = nextId++;
  const started = Date.now() - Math.floor(rand() * 10 * 86400000) - 600000;
  const intent = pick(['lost_card', 'balance', 'balance', 'fraud_report', 'agent_request', 'address_change']);
  const handoff = intent === 'agent_request' || intent === 'fraud_report' || rand() < 0.15;
  const agent = handoff ? pick(['alice', 'bob', 'chen']) : null;
  const dur = 35000 + Math.floor(rand() * 300000);
  const outcomes = {};
  for (const r of RULES) outcomes[r.rule] = rand() < (r.critical ? 0.06 : 0.18) ? 'fail' : 'pass';
  outcomes.long_silence = 'fail';
  const turns = historyTurns(intent);
  const score = makeScore(outcomes, {
    greeting: [{ turn: 0, speaker: 'voxgate', quote: 'welcome to example bank', start_ms: 800, end_ms: 2200 }],
    asked_for_human: outcomes.asked_for_human === 'fail' ? [{ turn: 5, speaker: 'caller', quote: 'I want to talk to a person', start_ms: 28300, end_ms: 31000 }] : [],
    long_silence: [{ turn: null, speaker: null, quote: 'silence 9.4 s', start_ms: 16000, end_ms: 25400 }],
  }, started + dur + 900);
  const call = {
    id, call_id: `hist-${id}@trunk.example`, from_uri: `"Caller ${id}" <sip:+49301234${String(id).padStart(3, '0')}@trunk.example>`,
    to_uri: 'sip:hotline@bank.example', remote_addr: '192.0.2.10:5060', transport: 'udp', codec: 'PCMU',
    started_at_ms: started, answered_at_ms: started + 600, ended_at_ms: started + dur,
    end_reason: pick(['remote_bye', 'remote_bye', 'completed']), digits: '****#', recording_path: '/x.wav', media_stats: {},
    timeline: [{ at_ms: 0, kind: 'invite' }, { at_ms: 600, kind: 'answered' }, { at_ms: 13000, kind: 'dtmf', detail: '*' }, { at_ms: 25000, kind: 'barge_in' }, { at_ms: dur, kind: 'hangup', detail: 'remote BYE' }],
    turns, language: rand() < 0.1 ? 'zh' : 'en',
    dialog: {
      flow: 'bank.en', intent: { name: intent, confidence: 0.8 + rand() * 0.2, margin: 0.3 }, slots: { account: { display: '****1234', confidence: 0.9 } },
      verification: pick(['verified', 'verified', 'wrong_pin']), no_input: 0, no_match: Math.floor(rand() * 2), contained: !handoff,
      handoff: handoff ? { skill: 'general', reason: intent, priority: false, agent, tags: rand() < 0.3 ? ['upset'] : [] } : undefined,
      events: [{ at_ms: 8200, kind: 'intent', detail: intent }],
    },
    scores: [score],
  };
  calls.set(id, call);
  if (outcomes.asked_for_human === 'fail') {
    alerts.push({ id: nextAlert++, call: id, call_id: call.call_id, raised_at_ms: started + 31500, scorecard: 'bank_en', rule: 'asked_for_human', title: 'Caller asked for a human', severity: 'warning', speaker: 'caller', quote: 'I want to talk to a person', start_ms: 28300, end_ms: 31000, from_partial: false, note: '' });
  }
}
alerts.sort((a, b) => a.raised_at_ms - b.raised_at_ms).forEach((a, i) => { a.id = i + 1; });

function summary(c) {
  const s = c.scores[0];
  return {
    id: c.id, call_id: c.call_id, from_uri: c.from_uri, to_uri: c.to_uri, started_at_ms: c.started_at_ms, answered_at_ms: c.answered_at_ms,
    ended_at_ms: c.ended_at_ms, end_reason: c.end_reason, digits: c.digits, has_recording: true, language: c.language,
    intent: c.dialog.intent ? c.dialog.intent.name : null, agent: c.dialog.handoff ? c.dialog.handoff.agent || null : null,
    contained: c.dialog.contained ?? null, score: s ? s.result.score : null, passed: s ? s.result.passed : null,
    alerts: alerts.filter((a) => a.call === c.id).length,
  };
}

// ------------------------------------------------------------------ recordings: stereo 16-bit 8 kHz
const wavCache = new Map();
function recording(c) {
  if (wavCache.has(c.id)) return wavCache.get(c.id);
  const rate = 8000;
  const end = Math.max(...c.turns.map((t) => t.end_ms), 2000) + 1500;
  const frames = Math.floor((end / 1000) * rate);
  const buf = Buffer.alloc(44 + frames * 4);
  buf.write('RIFF', 0); buf.writeUInt32LE(36 + frames * 4, 4); buf.write('WAVE', 8); buf.write('fmt ', 12);
  buf.writeUInt32LE(16, 16); buf.writeUInt16LE(1, 20); buf.writeUInt16LE(2, 22); buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 4, 28); buf.writeUInt16LE(4, 32); buf.writeUInt16LE(16, 34); buf.write('data', 36); buf.writeUInt32LE(frames * 4, 40);
  for (let i = 0; i < frames; i++) {
    const ms = (i / rate) * 1000;
    for (let ch = 0; ch < 2; ch++) {
      let v = (Math.random() - 0.5) * 60;
      for (const t of c.turns) {
        if ((t.speaker === 'caller') !== (ch === 0) || ms < t.start_ms || ms > t.end_ms) continue;
        const syll = 0.5 + 0.5 * Math.sin(((ms - t.start_ms) / 1000) * Math.PI * 4);
        v += Math.sin((2 * Math.PI * (ch ? 140 : 210) * i) / rate) * 9000 * syll + (Math.random() - 0.5) * 4000 * syll;
      }
      buf.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(v))), 44 + i * 4 + ch * 2);
    }
  }
  wavCache.set(c.id, buf);
  return buf;
}

// ------------------------------------------------------------------ live: board, streams, the scripted fraud call
const board = new Map();
const sse = { alert: new Set(), turn: new Set() };
function emit(kind, obj, id) {
  for (const cl of sse[kind]) {
    if (kind === 'turn' && cl.callId && cl.callId !== obj.call_id) continue;
    cl.res.write(`event: ${kind}\n${id != null ? `id: ${id}\n` : ''}data: ${JSON.stringify(obj)}\n\n`);
  }
}
function liveTurn(row, t) {
  row.recent = row.recent.filter((x) => !(x.speaker === t.speaker && x.utterance === t.utterance && t.utterance > 0)).concat([t]).slice(-6);
  emit('turn', t);
}
function raise(c, a) {
  const alert = { id: nextAlert++, call: c.id, call_id: c.call_id, raised_at_ms: Date.now(), scorecard: 'bank_en', from_partial: false, note: '', ...a };
  alerts.push(alert);
  const row = board.get(c.call_id);
  if (row) row.alerts++;
  emit('alert', alert, alert.id);
}

function fraudCall(speed = 1) {
  const id = nextId++;
  const started = Date.now();
  const call_id = `fraud-${id}-${crypto.randomBytes(3).toString('hex')}@voxgate`;
  const c = {
    id, call_id, from_uri: '"Mrs Example" <sip:+4930555777@trunk.example>', to_uri: 'sip:hotline@bank.example',
    remote_addr: '192.0.2.20:5060', transport: 'udp', codec: 'PCMU', started_at_ms: started, answered_at_ms: null,
    ended_at_ms: null, end_reason: null, digits: '', recording_path: '/x.wav', media_stats: {}, timeline: [{ at_ms: 0, kind: 'invite' }],
    turns: [], language: 'en', dialog: { flow: 'bank.en', slots: {}, no_input: 0, no_match: 0, events: [] }, scores: [],
  };
  calls.set(id, c);
  const row = { id, call_id, from_uri: c.from_uri, to_uri: c.to_uri, started_at_ms: started, language: 'en', state: 'ringing', step: null, intent: null, verification: null, agent: null, alerts: 0, recent: [] };
  board.set(call_id, row);
  const T = [
    { speaker: 'voxgate', start_ms: 800, end_ms: 4000, text: 'Welcome to Example Bank. How can I help you today?' },
    { speaker: 'caller', start_ms: 4600, end_ms: 8400, text: 'Someone from the bank asked me to move my savings to a safe account.', confidence: 0.88, acoustics: ac(-19.8, 205, 162, 0.7) },
    { speaker: 'voxgate', start_ms: 8900, end_ms: 12000, text: 'I understand. Who asked you to do this?' },
    { speaker: 'caller', start_ms: 12600, end_ms: 16200, text: 'They said it is a SAFE ACCOUNT and I must act today.', confidence: 0.86, acoustics: ac(-16.1, 236, 188, 1.8) },
    { speaker: 'voxgate', start_ms: 16600, end_ms: 19200, text: 'I am connecting you to a fraud specialist now.' },
    { speaker: 'agent', start_ms: 20500, end_ms: 24800, text: 'Hello, this is Alice from the fraud team. You did the right thing by calling us.', confidence: 0.93, acoustics: ac(-20.5, 168, 140) },
  ];
  const at = (ms, fn) => setTimeout(fn, ms / speed);
  const say = (i, utt, partials) => {
    const t = T[i];
    partials.forEach((p, k) => at(t.start_ms + (k + 1) * ((t.end_ms - t.start_ms) / (partials.length + 1)), () =>
      liveTurn(row, { call_id, speaker: t.speaker, utterance: utt, start_ms: t.start_ms, end_ms: t.start_ms + 600 * (k + 1), text: p, partial: true })));
    at(t.end_ms, () => { c.turns.push(t); liveTurn(row, { call_id, speaker: t.speaker, utterance: utt, start_ms: t.start_ms, end_ms: t.end_ms, text: t.text, partial: false }); });
  };
  at(500, () => { row.state = 'talking'; row.step = 'greeting'; c.answered_at_ms = started + 500; c.timeline.push({ at_ms: 500, kind: 'answered' }); });
  say(0, 0, []);
  say(1, 1, ['someone from', 'someone from the bank asked me', 'someone from the bank asked me to move my savings']);
  at(8700, () => {
    row.intent = 'fraud_report'; row.step = 'fraud_check';
    raise(c, { rule: 'fraud_safe_account', title: 'Fraud indicator: "safe account" / told to move money', severity: 'critical', speaker: 'caller', quote: 'move my savings to a safe account', start_ms: 4600, end_ms: 8400 });
  });
  say(2, 0, []);
  say(3, 2, ['they said', 'they said it is a safe account']);
  at(16400, () => raise(c, { rule: 'pressure_urgency', title: 'Caller under time pressure', severity: 'warning', speaker: 'caller', quote: 'I must act today', start_ms: 12600, end_ms: 16200 }));
  say(4, 0, []);
  at(19300, () => { row.state = 'transferring'; row.step = 'handoff'; });
  at(20300, () => { row.state = 'with_agent'; row.agent = 'alice'; });
  say(5, 3, ['hello this is alice']);
  at(26000, () => {
    board.delete(call_id);
    c.ended_at_ms = started + 26000;
    c.end_reason = 'remote_bye';
    c.timeline.push({ at_ms: 8700, kind: 'alert', detail: 'fraud_safe_account' }, { at_ms: 19300, kind: 'transfer', detail: 'fraud' }, { at_ms: 26000, kind: 'hangup', detail: 'remote BYE' });
    c.dialog = {
      flow: 'bank.en', intent: { name: 'fraud_report', confidence: 0.94, margin: 0.5 }, slots: {}, verification: null, no_input: 0, no_match: 0, contained: false,
      handoff: { skill: 'fraud', reason: 'fraud indicators', priority: true, agent: 'alice', tags: ['upset'] },
      events: [{ at_ms: 8700, kind: 'intent', detail: 'fraud_report' }, { at_ms: 19300, kind: 'handoff', detail: 'fraud' }],
    };
    c.turns = T;
  });
  at(26600, () => {
    c.scores = [makeScore({ fraud_safe_account: 'fail', pressure_urgency: 'fail', verify_before_disclosure: 'not_applicable', fees_disclosed: 'not_applicable', closing: 'fail', long_silence: 'pass' }, {
      greeting: [{ turn: 0, speaker: 'voxgate', quote: 'Welcome to Example Bank', start_ms: 800, end_ms: 2000 }],
      fraud_safe_account: [
        { turn: 1, speaker: 'caller', quote: 'move my savings to a safe account', start_ms: 4600, end_ms: 8400 },
        { turn: 3, speaker: 'caller', quote: 'safe account', start_ms: 12600, end_ms: 16200 }],
      pressure_urgency: [{ turn: 3, speaker: 'caller', quote: 'i must act today', start_ms: 12600, end_ms: 16200 }],
      agent_empathy: [{ turn: 5, speaker: 'agent', quote: 'you did the right thing calling', start_ms: 20500, end_ms: 24800 }],
    }, Date.now())];
  });
  return c;
}

// ------------------------------------------------------------------ HTTP
function send(res, status, body, headers = {}) {
  const isBuf = Buffer.isBuffer(body);
  const data = isBuf || typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff', 'X-Frame-Options': 'DENY', 'Referrer-Policy': 'no-referrer',
    'Content-Type': isBuf || typeof body === 'string' ? 'text/plain' : 'application/json', ...headers,
  });
  res.end(data);
}
const err = (res, status, msg, h) => send(res, status, { error: msg }, h);
const may = (p, roles) => p.role === 'admin' || roles.includes(p.role);
const dayOrMs = (v, end) => {
  if (!v) return null;
  if (/^\d+$/.test(v)) return +v;
  const t = Date.parse(`${v}T00:00:00Z`);
  return Number.isNaN(t) ? NaN : t + (end ? 86400000 : 0);
};

function filterCalls(q) {
  const from = dayOrMs(q.get('from'), false), to = dayOrMs(q.get('to'), true);
  if (Number.isNaN(from) || Number.isNaN(to)) throw new Error('bad date');
  return [...calls.values()].filter((c) => {
    const s = summary(c);
    if (from != null && c.started_at_ms < from) return false;
    if (to != null && c.started_at_ms >= to) return false;
    if (q.get('min_score') && !(s.score >= +q.get('min_score'))) return false;
    if (q.get('max_score') && !(s.score <= +q.get('max_score'))) return false;
    if (q.get('passed') && String(s.passed) !== q.get('passed')) return false;
    if (q.get('rule_failed') && !(c.scores[0] && c.scores[0].result.rules.some((r) => r.rule === q.get('rule_failed') && r.outcome === 'fail'))) return false;
    if (q.get('agent') && s.agent !== q.get('agent')) return false;
    if (q.get('intent') && s.intent !== q.get('intent')) return false;
    if (q.get('alert') === 'any' && !s.alerts) return false;
    if (q.get('alert') && q.get('alert') !== 'any' && !alerts.some((a) => a.call === c.id && a.rule === q.get('alert'))) return false;
    return true;
  }).sort((a, b) => b.started_at_ms - a.started_at_ms);
}

function dashboard(q) {
  const list = filterCalls(new URLSearchParams({ from: q.get('from') || '', to: q.get('to') || '' }));
  const scored = list.filter((c) => c.scores.length);
  const hist = Array(10).fill(0);
  scored.forEach((c) => { hist[Math.min(9, Math.floor(c.scores[0].result.score / 10))]++; });
  const failed = new Map(), intents = new Map();
  scored.forEach((c) => c.scores[0].result.rules.filter((r) => r.outcome === 'fail').forEach((r) => failed.set(r.rule, (failed.get(r.rule) || 0) + 1)));
  list.forEach((c) => { const n = c.dialog.intent && c.dialog.intent.name; if (n) intents.set(n, (intents.get(n) || 0) + 1); });
  const ids = new Set(list.map((c) => c.id));
  const al = alerts.filter((a) => ids.has(a.call));
  const perHour = new Map(), sev = new Map();
  al.forEach((a) => { const hr = Math.floor(a.raised_at_ms / 3600000) * 3600000; perHour.set(hr, (perHour.get(hr) || 0) + 1); sev.set(a.severity, (sev.get(a.severity) || 0) + 1); });
  const finished = list.filter((c) => c.ended_at_ms != null);
  const contained = finished.filter((c) => c.dialog.contained === true).length, handed = finished.filter((c) => c.dialog.contained === false).length;
  return {
    calls: list.length, finished: finished.length, scored: scored.length,
    average_score: scored.length ? scored.reduce((a, c) => a + c.scores[0].result.score, 0) / scored.length : null,
    passed: scored.filter((c) => c.scores[0].result.passed).length, score_histogram: hist,
    top_failed_rules: [...failed].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([rule, n]) => ({ scorecard: 'bank_en', rule, title: RULES.find((r) => r.rule === rule).title, calls: n })),
    intents: [...intents].sort((a, b) => b[1] - a[1]).map(([name, count]) => ({ name, count })),
    contained, handed_off: handed, containment_rate: finished.length ? contained / finished.length : null,
    average_handle_ms: finished.length ? finished.reduce((a, c) => a + c.ended_at_ms - c.started_at_ms, 0) / finished.length : null,
    alerts: al.length, alerts_by_severity: [...sev].map(([name, count]) => ({ name, count })),
    alerts_per_hour: [...perHour].sort((a, b) => a[0] - b[0]).map(([hour_ms, count]) => ({ hour_ms, count })),
  };
}

function body(req) {
  return new Promise((resolve) => {
    let b = '';
    req.on('data', (d) => { b += d; });
    req.on('end', () => { try { resolve(JSON.parse(b || 'null')); } catch { resolve(undefined); } });
  });
}

const server = http.createServer(async (req, res) => {
  const u = new URL(req.url, 'http://x');
  const p = u.pathname, q = u.searchParams;
  if (req.method === 'GET' && p === '/') return send(res, 200, fs.readFileSync(path.join(UI, 'index.html'), 'utf8'), { 'Content-Type': 'text/html; charset=utf-8' });
  if (req.method === 'GET' && p === '/ui/app.js') return send(res, 200, fs.readFileSync(path.join(UI, 'app.js'), 'utf8'), { 'Content-Type': 'text/javascript; charset=utf-8' });
  if (req.method === 'GET' && p === '/ui/style.css') return send(res, 200, fs.readFileSync(path.join(UI, 'style.css'), 'utf8'), { 'Content-Type': 'text/css; charset=utf-8' });
  if (req.method === 'POST' && p === '/mock/fraud-call') return send(res, 200, { id: fraudCall(+(q.get('speed') || 1)).id });
  if (req.method === 'POST' && !(req.headers['content-type'] || '').startsWith('application/json')) return err(res, 415, 'POST bodies must be application/json');
  if (req.method === 'POST' && p === '/api/v1/login') {
    const b = await body(req);
    if (!b || !USERS[b.username] || b.password !== PASSWORD) return err(res, 401, 'wrong user name or password', { 'WWW-Authenticate': 'Bearer realm="voxgate"' });
    const sid = crypto.randomBytes(16).toString('hex');
    sessions.set(sid, { user: b.username, role: USERS[b.username] });
    return send(res, 200, { user: b.username, role: USERS[b.username] }, { 'Set-Cookie': `vx_session=${sid}; HttpOnly; SameSite=Strict; Path=/` });
  }
  if (!p.startsWith('/api/v1/')) return err(res, 404, 'not found');
  const sid = /(?:^|;\s*)vx_session=([^;]+)/.exec(req.headers.cookie || '');
  const me = sid && sessions.get(sid[1]);
  if (!me) return err(res, 401, 'log in first', { 'WWW-Authenticate': 'Bearer realm="voxgate"' });
  const m = /^\/api\/v1\/calls\/(\d+)(\/recording|\/reviews)?$/.exec(p);
  try {
    if (p === '/api/v1/logout') { sessions.delete(sid[1]); return send(res, 200, { ok: true }); }
    if (p === '/api/v1/me') return send(res, 200, me);
    if (p === '/api/v1/calls') {
      const all = filterCalls(q);
      const off = +(q.get('offset') || 0), lim = +(q.get('limit') || 100);
      return send(res, 200, { calls: all.slice(off, off + lim).map(summary), total: all.length });
    }
    if (m && !m[2]) {
      const c = calls.get(+m[1]);
      if (!c) return err(res, 404, 'not found');
      const { recording_path, ...rest } = c;
      return send(res, 200, { ...rest, recording_url: `/api/v1/calls/${c.id}/recording`, alerts: alerts.filter((a) => a.call === c.id).reverse() });
    }
    if (m && m[2] === '/recording') {
      const c = calls.get(+m[1]);
      if (!c) return err(res, 404, 'not found');
      const wav = recording(c);
      const r = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range || '');
      if (r) {
        const a = r[1] ? +r[1] : wav.length - +r[2], b = r[1] && r[2] ? Math.min(+r[2], wav.length - 1) : wav.length - 1;
        return send(res, 206, wav.subarray(a, b + 1), { 'Content-Type': 'audio/wav', 'Accept-Ranges': 'bytes', 'Content-Range': `bytes ${a}-${b}/${wav.length}` });
      }
      return send(res, 200, wav, { 'Content-Type': 'audio/wav', 'Accept-Ranges': 'bytes' });
    }
    if (m && m[2] === '/reviews' && req.method === 'POST') {
      if (!may(me, ['qa_reviewer'])) return err(res, 403, 'your role may not do this');
      const c = calls.get(+m[1]);
      const b = await body(req);
      if (!b) return err(res, 400, 'bad JSON');
      const s = c && c.scores.find((x) => x.result.scorecard === b.scorecard);
      if (!s) return err(res, 404, 'not found');
      if (!['pass', 'fail', 'not_applicable'].includes(b.outcome)) return err(res, 400, 'outcome must be pass, fail or not_applicable');
      if (!String(b.comment || '').trim()) return err(res, 400, 'a review needs a comment');
      const r = s.result.rules.find((x) => x.rule === b.rule);
      if (!r) return err(res, 400, `unknown rule ${b.rule}`);
      if (r.outcome === b.outcome) return err(res, 409, `rule ${b.rule} is already ${b.outcome}`);
      const review = { id: nextReview++, rule: b.rule, previous: r.outcome, outcome: b.outcome, comment: b.comment, reviewer: me.user, at_ms: Date.now() };
      r.outcome = b.outcome;
      s.reviews.push(review);
      s.result = scoreOf(s.result.rules);
      return send(res, 201, { review, scores: c.scores });
    }
    if (p === '/api/v1/alerts') {
      let list = alerts.slice().reverse();
      if (q.get('call')) list = list.filter((a) => a.call === +q.get('call'));
      if (q.get('after_id')) list = list.filter((a) => a.id > +q.get('after_id'));
      return send(res, 200, { alerts: list.slice(0, +(q.get('limit') || 100)) });
    }
    if (p === '/api/v1/alerts/stream' || p === '/api/v1/turns/stream') {
      if (!may(me, ['supervisor'])) return err(res, 403, 'your role may not do this');
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', 'Content-Security-Policy': CSP });
      res.write(': hi\n\n');
      const kind = p.includes('alerts') ? 'alert' : 'turn';
      const cl = { res, callId: q.get('call_id') };
      const after = q.get('after_id') || req.headers['last-event-id'];
      if (kind === 'alert' && after != null) for (const a of alerts.filter((x) => x.id > +after)) res.write(`event: alert\nid: ${a.id}\ndata: ${JSON.stringify(a)}\n\n`);
      sse[kind].add(cl);
      const ka = setInterval(() => res.write(': keep-alive\n\n'), 15000);
      req.on('close', () => { sse[kind].delete(cl); clearInterval(ka); });
      return undefined;
    }
    if (p === '/api/v1/live') {
      if (!may(me, ['supervisor'])) return err(res, 403, 'your role may not do this');
      return send(res, 200, { calls: [...board.values()] });
    }
    if (p === '/api/v1/scorecards') return send(res, 200, { scorecards: [{ ...CARD, rules: RULES.map((r) => ({ id: r.rule, title: r.title, section: r.section, kind: r.kind, weight: r.weight, critical: r.critical, realtime: !!REALTIME[r.rule], ...(REALTIME[r.rule] ? { severity: REALTIME[r.rule] } : {}) })) }] });
    if (p === '/api/v1/dashboard') return send(res, 200, dashboard(q));
    if (p === '/api/v1/export') {
      if (!may(me, ['qa_reviewer'])) return err(res, 403, 'your role may not do this');
      const list = filterCalls(q).map(summary);
      if (q.get('format') === 'json') return send(res, 200, { calls: list });
      return send(res, 200, ['id,call_id,started_at_ms,score,passed', ...list.map((c) => `${c.id},${c.call_id},${c.started_at_ms},${c.score},${c.passed}`)].join('\n'), { 'Content-Type': 'text/csv', 'Content-Disposition': 'attachment; filename="calls.csv"' });
    }
    return err(res, 404, 'not found');
  } catch (e) {
    return err(res, 400, e.message);
  }
});

server.listen(+(process.argv[2] || process.env.MOCK_PORT || 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ mock: 'listening', url: `http://127.0.0.1:${server.address().port}` }));
});
