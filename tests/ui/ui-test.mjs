// Drives voxgate's web UI in Debian's headless Chromium (playwright-core, no browser download) for the Rust
// integration test. Protocol: every stdout line is one JSON object with an "event" field; human-readable
// failure text goes to stderr. See tests/ui/README.md.
//
// env: VOXGATE_URL, VOXGATE_USER, VOXGATE_PASSWORD (required); VOXGATE_SCREENSHOTS (dir); VOXGATE_UI_MODE
// (live | review); VOXGATE_CALL_ID; VOXGATE_ALERT_RULE; VOXGATE_EVIDENCE_RULE; VOXGATE_OVERRIDE_RULE;
// VOXGATE_TIMEOUT_MS; VOXGATE_CHROMIUM.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { chromium } from 'playwright-core';

const env = process.env;
const BASE = (env.VOXGATE_URL || '').replace(/\/+$/, '');
const USER = env.VOXGATE_USER || '';
const PASSWORD = env.VOXGATE_PASSWORD || '';
const MODE = env.VOXGATE_UI_MODE || 'live';
const TIMEOUT = +(env.VOXGATE_TIMEOUT_MS || 90000);
const SHOTS = env.VOXGATE_SCREENSHOTS || fs.mkdtempSync(path.join(os.tmpdir(), 'voxgate-ui-shots-'));
const CHROMIUM = env.VOXGATE_CHROMIUM || '/usr/bin/chromium';

const out = (event, fields = {}) => process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class CheckFailed extends Error {}
class Stopped extends CheckFailed {}
function check(cond, message) {
  if (!cond) throw new CheckFailed(message);
}

if (!BASE || !USER || !PASSWORD || !['live', 'review'].includes(MODE) || (MODE === 'review' && !env.VOXGATE_CALL_ID)) {
  process.stderr.write('usage: VOXGATE_URL=http://127.0.0.1:PORT VOXGATE_USER=.. VOXGATE_PASSWORD=.. [VOXGATE_UI_MODE=live|review]'
    + ' [VOXGATE_CALL_ID=N (required for review)] [VOXGATE_SCREENSHOTS=dir] node tests/ui/ui-test.mjs\n');
  process.exit(2);
}
fs.mkdirSync(SHOTS, { recursive: true });

// stdin commands (optional): "call N" = review store id N instead of the alerted call; "quit" = stop now
let stdinCall = null;
let quit = false;
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === 'call' && /^\d+$/.test(arg || '')) stdinCall = +arg;
  else if (cmd === 'quit') quit = true;
  else if (cmd) out('ignored', { line });
});

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'voxgate-ui-profile-'));
let context = null;
let page = null;
let stepName = 'start';
const shots = [];
const pageErrors = [];

async function shot(name) {
  const file = path.join(SHOTS, `${name}.png`);
  await page.evaluate(() => window.scrollTo(0, 0)).catch(() => {});
  await page.screenshot({ path: file, fullPage: true });
  shots.push(file);
  out('screenshot', { name, path: file });
}

async function step(name, fn) {
  stepName = name;
  if (quit) throw new Stopped('stopped by "quit" on stdin');
  return fn();
}

/** Polls `fn` (in Node) until it returns something truthy; stdin "quit" and the deadline end it. */
async function until(what, fn, timeout = TIMEOUT, every = 200) {
  const end = Date.now() + timeout;
  for (;;) {
    if (quit) throw new Stopped(`stopped by "quit" on stdin while waiting for ${what}`);
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new CheckFailed(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(every);
  }
}

/** A GET through the page, with its session cookie. */
const apiGet = (p) => page.evaluate(async (u) => {
  const r = await fetch(u, { credentials: 'same-origin' });
  return { status: r.status, body: r.headers.get('content-type')?.includes('json') ? await r.json() : null };
}, p);

/** Pixels of a canvas that were drawn (alpha > 0), and those near the given CSS colour variables. */
const canvasInk = (sel, vars = [], band = null) => page.evaluate(([s, vs, b]) => {
  const c = document.querySelector(s);
  if (!c || !c.width || !c.height) return { ink: 0, colored: 0 };
  const dpr = c.width / c.getBoundingClientRect().width || 1;
  const y0 = b ? Math.floor(b[0] * dpr) : 0, y1 = b ? Math.ceil(b[1] * dpr) : c.height;
  const d = c.getContext('2d').getImageData(0, y0, c.width, Math.max(1, y1 - y0)).data;
  const probe = document.createElement('canvas').getContext('2d');
  const rgb = vs.map((v) => {
    probe.fillStyle = getComputedStyle(document.documentElement).getPropertyValue(v).trim();
    probe.fillRect(0, 0, 1, 1);
    return [...probe.getImageData(0, 0, 1, 1).data.slice(0, 3)];
  });
  let ink = 0, colored = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (!d[i + 3]) continue;
    ink++;
    if (rgb.some(([r, g, bl]) => Math.abs(d[i] - r) + Math.abs(d[i + 1] - g) + Math.abs(d[i + 2] - bl) < 60 && d[i + 3] > 200)) colored++;
  }
  return { ink, colored };
}, [sel, vars, band]);

async function main() {
  // ---- unauthenticated API and the login screen
  await step('unauthenticated', async () => {
    const r = await fetch(`${BASE}/api/v1/calls`);
    out('unauthenticated', { path: '/api/v1/calls', status: r.status, www_authenticate: r.headers.get('www-authenticate') });
    check(r.status === 401, `GET /api/v1/calls without credentials answered ${r.status}, expected 401`);
  });

  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
  });
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(20000);
  page.on('pageerror', (e) => { pageErrors.push(`uncaught: ${e.message}`); out('page_error', { message: e.message }); });
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    // a 401/403/409 answer is logged by Chromium as a failed resource; those are expected here
    if (/Failed to load resource/.test(text)) return;
    if (/Content.Security.Policy|Refused to/i.test(text)) pageErrors.push(`CSP: ${text}`);
    out('console_error', { text });
  });

  await step('bad_login', async () => {
    await page.goto(`${BASE}/`);
    await page.locator('#login-form').waitFor({ state: 'visible' });
    await page.fill('#login-user', USER);
    await page.fill('#login-password', `${PASSWORD}-wrong`);
    await page.click('#login-submit');
    const err = page.locator('#login-error');
    await err.waitFor({ state: 'visible' });
    const message = (await err.textContent()).trim();
    out('bad_login', { message });
    check(/wrong|password/i.test(message), `wrong password showed "${message}"`);
    check(await page.locator('#topbar').isHidden(), 'the navigation is shown after a wrong password');
    await shot('01-login-error');
  });

  let me;
  await step('login', async () => {
    await page.fill('#login-user', USER);
    await page.fill('#login-password', PASSWORD);
    await page.click('#login-submit');
    await page.locator('#topbar').waitFor({ state: 'visible' });
    me = (await apiGet('/api/v1/me')).body;
    out('logged_in', { user: me.user, role: me.role, whoami: (await page.textContent('#whoami')).trim() });
    check(me.user === USER, `/me says ${me.user}`);
    check(me.role === 'admin' || me.role === 'qa_reviewer' || MODE === 'live', 'review mode needs a qa_reviewer or admin');
    if (MODE === 'live') check(me.role === 'admin', `live mode needs an admin (supervisor + qa_reviewer), got ${me.role}`);
  });

  let callId = env.VOXGATE_CALL_ID ? +env.VOXGATE_CALL_ID : null;
  let alert = null;
  if (MODE === 'live') {
    await step('live_ready', async () => {
      await page.click('#nav-live');
      await page.locator('#alerts-status[data-state="open"]').waitFor({ timeout: 20000 });
      const known = await page.evaluate(() => {
        window.__seen = {};
        window.__partials = 0;
        const stamp = (root, fn) => new MutationObserver((ms) => ms.forEach((m) => m.addedNodes.forEach((n) => n.dataset && fn(n)))).observe(root, { childList: true });
        stamp(document.getElementById('alerts-list'), (n) => { if (n.dataset.alertId && !window.__seen[n.dataset.alertId]) window.__seen[n.dataset.alertId] = Date.now(); });
        stamp(document.getElementById('live-transcript'), (n) => { if (n.dataset.partial === '1') window.__partials++; });
        return [...document.querySelectorAll('#alerts-list [data-testid=alert]')].map((a) => +a.dataset.alertId);
      });
      await shot('02-live-ready');
      out('ready', { known_alerts: known.length, max_alert_id: Math.max(0, ...known) });
      const knownSet = new Set(known);
      const boardSeen = new Set();
      let watching = null;
      const readyAt = Date.now();
      alert = await until('a new alert in the live alerts panel', async () => {
        const snap = await page.evaluate(() => ({
          rows: [...document.querySelectorAll('[data-testid=live-call]')].map((r) => ({ call_id: r.dataset.callId, id: r.dataset.id ? +r.dataset.id : null, state: r.dataset.state })),
          alerts: [...document.querySelectorAll('#alerts-list [data-testid=alert]')].map((a) => ({
            id: +a.dataset.alertId, call: +a.dataset.call, call_id: a.dataset.callId, rule: a.dataset.rule, scorecard: a.dataset.scorecard,
            severity: a.dataset.severity, title: a.querySelector('.alert-title')?.textContent ?? null, quote: a.querySelector('.quote')?.textContent ?? null,
            offset: a.querySelector('.alert-offset')?.textContent ?? null, link: a.querySelector('a.call-link')?.getAttribute('href') ?? null,
          })),
          seen: window.__seen,
        }));
        for (const r of snap.rows) {
          if (boardSeen.has(r.call_id)) continue;
          boardSeen.add(r.call_id);
          out('board_call', r);
          if (!watching) {
            watching = r.call_id;
            await page.click(`[data-testid=live-call][data-call-id="${CSS_escape(r.call_id)}"]`).catch(() => {});
          }
        }
        const a = snap.alerts.find((x) => !knownSet.has(x.id) && (!env.VOXGATE_ALERT_RULE || x.rule === env.VOXGATE_ALERT_RULE));
        return a ? { ...a, seen_at_ms: snap.seen[a.id] || Date.now() } : null;
      }, TIMEOUT, 100);
      const stored = (await apiGet(`/api/v1/alerts?call=${alert.call}&limit=100`)).body;
      const full = ((stored && stored.alerts) || []).find((x) => x.id === alert.id) || {};
      out('alert', { ...alert, raised_at_ms: full.raised_at_ms ?? null, end_ms: full.end_ms ?? null, after_ready_ms: alert.seen_at_ms - readyAt });
      check(alert.quote && alert.quote.trim(), 'the alert has no caller quote (.quote)');
      check(alert.title && alert.title.trim(), 'the alert has no rule title');
      check(alert.link === `#/calls/${alert.call}`, `the alert links to ${alert.link}, expected #/calls/${alert.call}`);
      check(full.quote === alert.quote, `panel quote "${alert.quote}" differs from the stored alert's "${full.quote}"`);
      await shot('03-live-alert');

      if (!watching || watching !== alert.call_id) {
        watching = alert.call_id;
        await page.evaluate((c) => { location.hash = `#/live?call=${encodeURIComponent(c)}`; }, alert.call_id);
      }
      // the alerted call: watch its live transcript until it ends and is scored
      let lastTurns = [];
      const scored = await until(`call ${alert.call} to end and be scored`, async () => {
        const t = await page.evaluate(() => [...document.querySelectorAll('#live-transcript [data-testid=live-turn]')]
          .map((li) => ({ speaker: li.dataset.speaker, partial: li.dataset.partial === '1', text: li.querySelector('.txt')?.textContent ?? '' })));
        if (t.length) lastTurns = t;
        const id = stdinCall || alert.call;
        const r = await apiGet(`/api/v1/calls/${id}`);
        return r.status === 200 && r.body.ended_at_ms != null && (r.body.scores || []).length ? r.body : null;
      }, TIMEOUT, 500);
      const partials = await page.evaluate(() => window.__partials);
      out('live_transcript', { call_id: alert.call_id, turns: lastTurns, partials_seen: partials });
      await shot('04-live-transcript');
      callId = scored.id;
      const s = scored.scores[0].result;
      out('call_scored', { id: scored.id, call_id: scored.call_id, score: s.score, passed: s.passed, scorecard: s.scorecard, end_reason: scored.end_reason });
    });
  }

  // ---- the call list, filtered, then the call page
  await step('call_list', async () => {
    await page.click('#nav-calls');
    await page.locator('#calls-table').waitFor();
    if (alert) {
      await page.selectOption('#f-alert', { value: 'any' });
      await page.click('#f-apply');
      await page.waitForFunction(() => location.hash.includes('alert=any'));
    }
    const row = page.locator(`[data-testid=call-row][data-id="${callId}"]`);
    await row.waitFor({ timeout: 20000 });
    const score = await row.locator('[data-testid=score]').textContent();
    const hash = await page.evaluate(() => location.hash);
    out('call_list', { id: callId, score_badge: score, hash, total: await page.getAttribute('#calls-total', 'data-total') });
    check(/\d/.test(score), `the list shows no score for call ${callId}: "${score}"`);
    await shot('05-call-list');
    await row.locator('a').first().click();
    await page.locator('#call-page').waitFor();
    if (alert) {
      const back = await page.getAttribute('#back-to-list', 'href');
      check(back.includes('alert=any'), `the call page's way back lost the list's filters: ${back}`);
    }
  });

  let call;
  let evidenceRule;
  await step('call_page', async () => {
    call = (await apiGet(`/api/v1/calls/${callId}`)).body;
    await page.locator('[data-testid=turn]').first().waitFor();
    const rules = call.scores.flatMap((s) => s.result.rules.map((r) => ({ ...r, scorecard: s.result.scorecard })));
    const inTurns = (r) => (r.evidence || []).some((ev) => Number.isInteger(ev.turn));
    evidenceRule = env.VOXGATE_EVIDENCE_RULE || null;
    if (evidenceRule) {
      const r = rules.find((x) => x.rule === evidenceRule);
      check(r, `rule ${evidenceRule} is not in the call's scores`);
      check(inTurns(r), `rule ${evidenceRule} (${r.outcome}) has no evidence in a turn in the stored score`);
    } else {
      // the alerted rule when the final transcript still has its words (a partial can raise an alert the
      // final text no longer supports), else the first failed rule with words, else any rule with words
      const r = rules.find((x) => alert && x.rule === alert.rule && inTurns(x))
        || rules.find((x) => x.outcome === 'fail' && inTurns(x)) || rules.find(inTurns);
      check(r, 'no rule of the call has evidence in a turn: nothing to find highlighted');
      evidenceRule = r.rule;
      if (alert && r.rule !== alert.rule) out('note', { message: `alerted rule ${alert.rule} has no evidence in the final transcript; checking ${r.rule}` });
    }
    // evidence tied to a turn is words in it; the rest (silences, events) is a measure, drawn on the timeline only
    const items = rules.flatMap((r) => (r.evidence || []).filter((ev) => Number.isInteger(ev.turn)).map((ev) => ({ rule: r.rule, quote: ev.quote, turn: ev.turn })));
    const marks = await page.evaluate((list) => {
      const norm = (s) => String(s || '').toLowerCase().replace(/\s+/g, ' ').trim();
      const texts = [...document.querySelectorAll('#transcript [data-testid=turn] .turn-text')];
      return list.map((ev) => {
        const q = norm(ev.quote);
        const mine = [...document.querySelectorAll('#transcript mark')].filter((m) => (m.dataset.rules || '').split(' ').includes(ev.rule));
        const inTurn = (m) => +m.closest('[data-testid=turn]').dataset.index === ev.turn;
        const hit = mine.find((m) => inTurn(m) && norm(m.textContent).includes(q)) || mine.find((m) => norm(m.textContent).includes(q));
        if (hit) return { ...ev, marked: true, how: 'quote', in_turn: +hit.closest('[data-testid=turn]').dataset.index };
        const inText = texts.some((t) => norm(t.textContent).includes(q));
        const whole = mine.find((m) => norm(m.textContent) === norm(m.closest('.turn-text').textContent));
        return { ...ev, marked: !inText && !!whole, how: whole ? 'whole_turn' : 'none', in_turn: whole ? +whole.closest('[data-testid=turn]').dataset.index : null };
      });
    }, items);
    const audioSrc = await page.getAttribute('#player', 'src').catch(() => null);
    await page.waitForFunction(() => document.getElementById('waveform')?.dataset.drawn === 'wave', null, { timeout: 30000 })
      .catch(() => { throw new CheckFailed('the waveform was not drawn from the recording (data-drawn != wave)'); });
    const wave = await page.evaluate(() => ({ drawn: document.getElementById('waveform').dataset.drawn, frames: +document.getElementById('waveform').dataset.frames, status: document.getElementById('wave-status')?.textContent }));
    const lanes = await canvasInk('#waveform', ['--c-caller', '--c-voxgate', '--c-agent'], [14, 124]);
    out('call_page', {
      id: callId, turns: call.turns.length, evidence: marks, marks_in_transcript: await page.locator('#transcript mark').count(),
      audio_src: audioSrc, waveform: { ...wave, ...lanes }, alerts: call.alerts.length,
      header: await page.locator('#call-header').innerText(),
    });
    for (const m of marks) check(m.marked, `evidence "${m.quote}" of rule ${m.rule} is not highlighted with <mark> in the transcript`);
    if (evidenceRule) check(marks.some((m) => m.rule === evidenceRule), `no evidence of ${evidenceRule} checked`);
    check(audioSrc && audioSrc.includes(`/api/v1/calls/${callId}/recording`), `the audio player's src is "${audioSrc}"`);
    check(wave.frames > 0, 'the waveform decoded no audio frames');
    check(lanes.colored > 100, `the waveform lanes have only ${lanes.colored} drawn speech pixels`);
    await shot('06-call-page');
  });

  await step('evidence_seek', async () => {
    const rule = evidenceRule || await page.locator('[data-testid=rule]:has(button.evidence[data-turn])').first().getAttribute('data-rule');
    const btn = page.locator(`[data-testid=rule][data-rule="${rule}"] button.evidence[data-turn]`).first();
    const start = +(await btn.getAttribute('data-start-ms'));
    await page.waitForFunction(() => document.getElementById('player').readyState >= 1, null, { timeout: 20000 })
      .catch(() => { throw new CheckFailed('the recording never loaded in the <audio> player'); });
    await btn.click();
    const got = await until('the player to seek to the evidence', async () => {
      const t = await page.evaluate(() => document.getElementById('player').currentTime * 1000);
      return Math.abs(t - start) < 300 ? { t } : null;
    }, 5000, 100);
    const flashed = await page.locator('#transcript [data-testid=turn].flash').count();
    out('evidence_seek', { rule, start_ms: start, current_time_ms: Math.round(got.t), flashed_turns: flashed });
    check(flashed === 1, `clicking evidence highlighted ${flashed} turns`);
    await shot('07-evidence-seek');
  });

  await step('review', async () => {
    const rules = call.scores[0].result.rules;
    // default: a failed rule that carries weight (its override moves the score), else the evidence rule
    const chosen = env.VOXGATE_OVERRIDE_RULE
      || (rules.find((r) => r.outcome === 'fail' && r.weight > 0 && !r.critical) || {}).rule
      || (rules.some((r) => r.rule === evidenceRule) ? evidenceRule : rules[0].rule);
    const chosenRule = rules.find((r) => r.rule === chosen);
    const before0 = call.scores[0].result;
    const sc = call.scores[0].result.scorecard;
    const ruleEl = page.locator(`[data-testid=scorecard][data-scorecard="${sc}"] [data-testid=rule][data-rule="${chosen}"]`);
    const before = await ruleEl.getAttribute('data-outcome');
    const target = before === 'pass' ? 'fail' : 'pass';
    const scoreBefore = await page.getAttribute('[data-testid=call-score]', 'data-score');
    await ruleEl.locator('button.override').click();
    check(await page.inputValue('#review-rule') === chosen, 'the override button did not pick the rule in the form');
    // no change → 409 shown inline
    await page.selectOption('#review-outcome', { value: before });
    await page.fill('#review-comment', 'UI test: same outcome, must be refused');
    await page.click('#review-submit');
    await page.locator('#review-error').waitFor({ state: 'visible' });
    const conflict = { status: await page.getAttribute('#review-error', 'data-status'), message: (await page.textContent('#review-error')).trim() };
    out('review_conflict', conflict);
    check(conflict.status === '409', `an unchanged outcome gave "${conflict.message}" (status ${conflict.status}), expected 409`);
    await shot('08-review-conflict');
    // the real override
    const comment = `UI test override ${new Date().toISOString()}: reviewer disagrees`;
    await page.selectOption('#review-outcome', { value: target });
    await page.fill('#review-comment', comment);
    await page.click('#review-submit');
    await page.locator('#review-ok').waitFor({ state: 'visible' });
    await ruleEl.and(page.locator(`[data-outcome="${target}"]`)).waitFor();
    const after = (await apiGet(`/api/v1/calls/${callId}`)).body.scores[0];
    const scoreAfter = await page.getAttribute('[data-testid=call-score]', 'data-score');
    const audit = await ruleEl.locator('[data-testid=audit-entry]').last();
    const auditText = (await audit.innerText()).trim();
    const original = (await ruleEl.locator('[data-testid=rule-original]').textContent().catch(() => '')).trim();
    out('review', {
      scorecard: sc, rule: chosen, from: before, to: target, score_before: num(scoreBefore), score_after: num(scoreAfter),
      api_score: after.result.score, reviewer: await audit.getAttribute('data-reviewer'), audit: auditText, original,
      reviews: after.reviews.length,
    });
    check(after.result.rules.find((r) => r.rule === chosen).outcome === target, 'the stored result did not change');
    check(num(scoreAfter) === after.result.score, `the page shows score ${scoreAfter}, the API ${after.result.score}`);
    if (chosenRule && chosenRule.weight > 0 && before !== 'not_applicable' && !before0.critical_failed && !after.result.critical_failed) {
      check(after.result.score !== before0.score, `overriding ${chosen} (weight ${chosenRule.weight}) left the score at ${before0.score}`);
    }
    check(await audit.getAttribute('data-reviewer') === USER && auditText.includes(comment), `the audit trail shows "${auditText}"`);
    check(original.includes(before.replace(/_/g, ' ')), `the original outcome is not shown ("${original}")`);
    await shot('09-review-saved');
  });

  await step('dashboard', async () => {
    await page.click('#nav-dashboard');
    await page.locator('[data-testid=tile-calls]').waitFor();
    const ids = ['chart-scores', 'chart-failed', 'chart-intents', 'chart-containment', 'chart-severity', 'chart-alerts-hour'];
    await page.waitForFunction((l) => l.every((id) => document.getElementById(id)?.dataset.drawn != null), ids);
    const charts = {};
    for (const id of ids) charts[id] = (await canvasInk(`#${id}`)).ink;
    const tiles = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll('.tile')].map((t) => [t.dataset.testid.replace('tile-', ''), t.querySelector('.tile-v').textContent])));
    out('dashboard', { tiles, charts });
    for (const id of ids) check(charts[id] > 0, `the dashboard chart ${id} is blank`);
    check(+tiles.calls >= 1, `the dashboard counts ${tiles.calls} calls`);
    await shot('10-dashboard');
  });

  check(!pageErrors.length, `the page logged errors: ${pageErrors.join(' | ')}`);
}

function num(v) {
  return v == null || v === '' ? null : +v;
}
function CSS_escape(s) {
  return String(s).replace(/["\\]/g, '\\$&');
}

let code = 0;
try {
  await main();
  out('done', { ok: true, mode: MODE, screenshots: shots });
} catch (e) {
  code = e instanceof Stopped ? 3 : e instanceof CheckFailed ? 1 : 4;
  const message = e instanceof CheckFailed ? e.message : (e && e.stack) || String(e);
  out('fail', { step: stepName, message: message.split('\n')[0] });
  process.stderr.write(`voxgate UI test failed in step "${stepName}": ${message}\n`);
  if (page) await shot(`fail-${stepName}`).catch(() => {});
} finally {
  if (context) await context.close().catch(() => {});
  fs.rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
