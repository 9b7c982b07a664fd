//! The call controller: turns SIP endpoint events into media sessions and call records, and media-side
//! requests (hang up, digits, timeline) back into SIP and storage.
//!
//! It runs on the signalling task and owns the sans-IO [`Endpoint`]; it never blocks: storage and media
//! each have their own threads behind queues.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, watch};
use voxgate_backend::{flow_ops, Backend};
use voxgate_config::Config;
use voxgate_dialog::flow::{
    Analytics, BackendFailure, Op, Say, TransferFailure, TransferOutcome, Value,
};
use voxgate_dialog::nlu::redact_numbers;
use voxgate_media::codec::CodecKind;
use voxgate_media::rtcp::SplitMix64;
use voxgate_media::session::SessionConfig;
use voxgate_media::speech::PipelineConfig;
use voxgate_qa::scorecard::{LiveScorer, ScorecardSet};
use voxgate_qa::{
    Acoustics, CallRecord, DialogEvent, Handoff, IntentResult, SlotValue, Speaker, TimelineEvent,
    Turn, TurnSegment,
};
use voxgate_sip::endpoint::{
    CallHandle, EndReason, Endpoint, Event, IncomingCall, OutgoingCall, Transport,
};
use voxgate_sip::sdp::{self, LocalMedia, Negotiated, SessionDescription};

use crate::dialogs::{uri_user, DialogSet, Dialogs};
use crate::handoff::{AgentPool, HoldQueue, Join, QueueEvent, Traits};
use crate::live::{JsonPoster, LiveCall, LiveTurn};
use crate::media_engine::{
    BridgeLeg, DialogNote, MediaCommand, MediaEvent, MediaPool, NewCall, Recognition,
    AGENT_UTTERANCE_BASE,
};
use crate::metrics::Metrics;
use crate::ports::{PortPair, PortPool};
use crate::store_thread::StoreHandle;
use crate::voiceprint::{Check, Voiceprints};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// 180 sent; 200 OK goes out at `answer_at` (a ring before answering, as callers expect).
    Ringing { answer_at: Instant },
    /// 200 OK sent, waiting for ACK.
    Answered,
    /// ACK received; media runs.
    Confirmed,
    /// Signalling is over; waiting for the media thread to hand back stats and ports.
    Ending,
}

struct Call {
    handle: CallHandle,
    record: CallRecord,
    arrived: Instant,
    phase: Phase,
    /// Ports stay here until media starts, then belong to the media thread until it reports `Removed`.
    ports: Option<PortPair>,
    port: u16,
    local_ip: IpAddr,
    negotiated: Negotiated,
    sdp_session: u64,
    sdp_version: u64,
    media_running: bool,
    hangup_cause: Option<&'static str>,
    span: tracing::Span,
    /// Utterances sent to the recogniser whose final result has not come back: (start, end, cut).
    pending_asr: HashMap<u32, PendingUtterance>,
    /// Once signalling and media are over: the call is stored when `pending_asr` empties or at this time.
    store_by: Option<Instant>,
    /// The flow and prompts chosen when the call arrived (a reload does not change them).
    dialog: DialogSet,
    caller: Option<String>,
    called: Option<String>,
    /// The agent leg ringing or bridged, and the agents already tried for this hand-off.
    agent_leg: Option<CallHandle>,
    agents_tried: Vec<usize>,
    /// Realtime QA rules over the turns so far (`None` when QA is off or no scorecard has the language).
    scorer: Option<LiveScorer>,
    /// The caller sounded angry or distressed (routing prefers agents skilled at soothing).
    upset: bool,
    /// What routing knows about the caller for the current hand-off.
    traits: Traits,
    /// A blind transfer is under way: REFER sent (`None` deadline) or accepted and waiting for the final
    /// NOTIFY until the deadline.
    refer: Option<Option<Instant>>,
    /// The last turns, for the supervisor board.
    recent: std::collections::VecDeque<LiveTurn>,
    alerts: u32,
}

/// After a REFER is accepted, voxgate leaves the call this long after it at the latest, final NOTIFY or not.
const REFER_NOTIFY_WAIT: Duration = Duration::from_secs(30);
/// A caller turn this negative (lexical sentiment, -1..=1) marks the caller as upset for routing.
const UPSET_SENTIMENT: f32 = -0.5;
/// Turns kept per call for the live board.
const RECENT_TURNS: usize = 6;
/// The live board is republished at most this often.
const BOARD_EVERY: Duration = Duration::from_millis(250);

/// What the controller feeds supervisors: live alerts (through the scorecards' realtime rules), the live
/// transcript and the board of active calls.
pub struct LiveServices {
    /// `None` when QA is off.
    pub scorecards: Option<watch::Receiver<ScorecardSet>>,
    /// Realtime rules also look at partial transcripts.
    pub partials: bool,
    pub turns: broadcast::Sender<Arc<LiveTurn>>,
    pub board: watch::Sender<Arc<Vec<LiveCall>>>,
}

/// An utterance sent to the recogniser: when, cut at the maximum length, and who spoke.
#[derive(Clone, Copy)]
struct PendingUtterance {
    start: Instant,
    end: Instant,
    cut: bool,
    speaker: Speaker,
    /// The transcript is not passed to the dialog (see `MediaEvent::Utterance`).
    record_only: bool,
}

/// The call voxgate places to an agent for a hand-off (the B2BUA's second leg).
struct AgentLeg {
    caller: CallHandle,
    agent: usize,
    /// Held here until the agent answers, then owned by the caller's media thread.
    ports: Option<PortPair>,
    local: LocalMedia,
    /// Ringing gives up at this time; `None` once answered or cancelled.
    ring_until: Option<Instant>,
    /// When the agent picked up (their handle time is measured from here).
    answered_at: Option<Instant>,
}

impl Call {
    /// A turn whose words never came (recogniser refused, failed or heard nothing): kept, without text, so
    /// QA sees that someone spoke.
    fn push_wordless_turn(&mut self, p: PendingUtterance) {
        let (start, end, cut) = (p.start, p.end, p.cut);
        self.record.turns.push(Turn {
            speaker: p.speaker,
            start_ms: ms_since(self.arrived, start),
            end_ms: ms_since(self.arrived, end),
            text: String::new(),
            confidence: None,
            interrupted: cut,
            segments: Vec::new(),
            acoustics: None,
        });
    }

    /// Remembers a turn for the board and announces it on the live transcript stream.
    fn show_turn(&mut self, turns: &broadcast::Sender<Arc<LiveTurn>>, turn: LiveTurn) {
        if !turn.partial {
            if self.recent.len() == RECENT_TURNS {
                self.recent.pop_front();
            }
            self.recent.push_back(turn.clone());
        }
        // Nobody listening is fine.
        let _ = turns.send(Arc::new(turn));
    }

    fn live_turn(&self, speaker: Speaker, utterance: u32, t: &Turn, partial: bool) -> LiveTurn {
        LiveTurn {
            call_id: self.record.call_id.clone(),
            speaker: speaker.as_str(),
            utterance,
            start_ms: t.start_ms,
            end_ms: t.end_ms,
            text: t.text.clone(),
            partial,
        }
    }

    /// The board row of a call in progress (`queued`: waiting in the hand-off queue).
    fn board_row(&self, queued: bool) -> LiveCall {
        let d = &self.record.dialog;
        let state = match self.phase {
            Phase::Ringing { .. } | Phase::Answered => "ringing",
            Phase::Ending => "ending",
            Phase::Confirmed => match (self.agent_leg, d.handoff.as_ref()) {
                (Some(_), Some(h)) if h.agent.is_some() => "with_agent",
                (Some(_), _) => "transferring",
                _ if queued => "queued",
                _ => "talking",
            },
        };
        LiveCall {
            call_id: self.record.call_id.clone(),
            from_uri: self.record.from_uri.clone(),
            to_uri: self.record.to_uri.clone(),
            started_at_ms: self.record.started_at_ms,
            language: self.record.language.clone(),
            state,
            step: d
                .events
                .iter()
                .rev()
                .find(|e| e.kind == "form")
                .map(|e| e.detail.clone()),
            intent: d.intent.as_ref().map(|i| i.name.clone()),
            verification: d.verification.clone(),
            agent: d.handoff.as_ref().and_then(|h| h.agent.clone()),
            alerts: self.alerts,
            recent: self.recent.iter().cloned().collect(),
        }
    }
}

/// Everything the controller needs from the config, resolved once.
pub struct ControllerConfig {
    pub public_address: Option<IpAddr>,
    pub codecs: Vec<voxgate_config::CodecName>,
    pub ptime_ms: u32,
    pub recording_dir: Option<PathBuf>,
    pub no_packet_timeout: Option<Duration>,
    pub max_duration: Duration,
    pub inband_dtmf: bool,
    pub answer_delay: Duration,
    pub jitter_min: Duration,
    pub jitter_max: Duration,
    pub speech: Option<PipelineConfig>,
    pub speech_barge_in: bool,
    pub asr_prompt: Option<Arc<str>>,
    /// How long an agent's phone rings before the next agent is tried.
    pub ring_timeout: Duration,
    /// Longest wait in the hand-off queue, and how often the caller hears their position.
    pub queue_timeout: Duration,
    pub announce_every: Duration,
    /// Blind-transfer hand-offs here (REFER) instead of bridging agents.
    pub refer_target: Option<String>,
    /// UDP listeners; agent calls go out from the first of the agent's address family.
    pub sip_udp: Vec<SocketAddr>,
}

impl ControllerConfig {
    pub fn from_config(cfg: &Config) -> Self {
        let public_address = cfg
            .sip
            .public_address
            .as_deref()
            .and_then(|a| a.parse().ok());
        Self {
            public_address,
            codecs: cfg.media.codecs.clone(),
            ptime_ms: cfg.media.ptime_ms,
            recording_dir: cfg.recording.enabled.then(|| cfg.recording.dir.clone()),
            no_packet_timeout: cfg.media.no_packet_timeout(),
            max_duration: cfg.call.max_duration(),
            inband_dtmf: cfg.media.inband_dtmf,
            answer_delay: cfg.call.answer_delay(),
            jitter_min: cfg.media.jitter_min(),
            jitter_max: cfg.media.jitter_max(),
            speech: crate::speech::pipeline_config(cfg),
            speech_barge_in: cfg.speech.bargein,
            // The pool applies the configured biasing prompt; flow steps may name their own.
            asr_prompt: None,
            ring_timeout: cfg.handoff.ring_timeout(),
            queue_timeout: cfg.handoff.queue_timeout(),
            announce_every: cfg.handoff.announce_every(),
            refer_target: cfg.handoff.refer_target.clone(),
            sip_udp: cfg.sip.udp.clone(),
        }
    }
}

/// What call flows run on: the current flows (replaced on reload) and the self-service backend.
pub struct CallServices {
    pub dialogs: watch::Receiver<Arc<Dialogs>>,
    pub backend: Arc<dyn Backend>,
    pub agents: AgentPool,
    /// `None` when voiceprints are off or their model could not be loaded.
    pub voiceprints: Option<Voiceprints>,
    pub live: LiveServices,
    /// `[handoff] screen_pop_url`: told about every agent call as it rings.
    pub screen_pop: Option<JsonPoster>,
}

pub struct Controller {
    pub endpoint: Endpoint,
    cfg: ControllerConfig,
    calls: HashMap<CallHandle, Call>,
    ports: PortPool,
    media: MediaPool,
    store: StoreHandle,
    metrics: Arc<Metrics>,
    /// SSRCs, sequence numbers and SDP session ids must differ per call (RFC 3550 §5.1); not cryptographic.
    rng: SplitMix64,
    /// The current flows; replaced on reload.
    dialogs: watch::Receiver<Arc<Dialogs>>,
    backend: Arc<dyn Backend>,
    agents: AgentPool,
    voiceprints: Option<Voiceprints>,
    /// Agent legs by their own handle.
    legs: HashMap<CallHandle, AgentLeg>,
    live: LiveServices,
    screen_pop: Option<JsonPoster>,
    /// Callers waiting for an agent.
    queue: HoldQueue,
    /// The board changed since it was last published; next publication allowed at `board_next`.
    board_dirty: bool,
    board_next: Instant,
}

impl Controller {
    pub fn new(
        endpoint: Endpoint,
        cfg: ControllerConfig,
        ports: PortPool,
        media: MediaPool,
        store: StoreHandle,
        metrics: Arc<Metrics>,
        services: CallServices,
    ) -> Self {
        let CallServices {
            dialogs,
            backend,
            agents,
            voiceprints,
            live,
            screen_pop,
        } = services;
        let seed = random_seed();
        Self {
            endpoint,
            cfg,
            calls: HashMap::new(),
            ports,
            media,
            store,
            metrics,
            rng: SplitMix64::new(seed),
            dialogs,
            backend,
            agents,
            voiceprints,
            legs: HashMap::new(),
            live,
            screen_pop,
            queue: HoldQueue::default(),
            board_dirty: false,
            board_next: Instant::now(),
        }
    }

    /// Publishes the supervisor board when it changed, at most every [`BOARD_EVERY`].
    fn publish_board(&mut self, now: Instant) {
        if !self.board_dirty || now < self.board_next {
            return;
        }
        let mut rows: Vec<LiveCall> = self
            .calls
            .iter()
            .filter(|(_, c)| c.phase != Phase::Ending)
            .map(|(h, c)| c.board_row(self.queue.contains(h.0)))
            .collect();
        rows.sort_by_key(|r| r.started_at_ms);
        let _ = self.live.board.send(Arc::new(rows));
        self.board_dirty = false;
        self.board_next = now + BOARD_EVERY;
    }

    /// Runs the call's realtime QA rules on a new turn; alerts go to the store (which announces them).
    fn check_live(&mut self, handle: CallHandle, turn: &Turn, partial: bool, now: Instant) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        let Some(scorer) = call.scorer.as_mut() else {
            return;
        };
        // Rules read the conversation in time order; recognition lags the audio.
        call.record.turns.sort_by_key(|t| t.start_ms);
        let alerts = scorer.on_turn(&call.record, turn, partial);
        for alert in alerts {
            call.alerts += 1;
            call.record.timeline.push(TimelineEvent {
                at_ms: ms_since(call.arrived, now),
                kind: "alert".into(),
                detail: format!("{} {}", alert.rule, alert.quote),
            });
            self.store
                .alert(handle.0, call.record.call_id.clone(), alert, wall_ms());
        }
    }

    /// Calls still in progress (ended calls waiting for their last transcripts do not count).
    pub fn active_calls(&self) -> usize {
        self.calls
            .values()
            .filter(|c| c.phase != Phase::Ending)
            .count()
    }

    /// Handles every event the endpoint has queued; call after each input or timeout.
    pub fn drain_sip_events(&mut self, now: Instant) {
        while let Some(ev) = self.endpoint.poll_event() {
            match ev {
                Event::IncomingCall(inc) => self.on_incoming(now, inc),
                Event::OutgoingProgress { call, status, .. } => {
                    self.on_agent_progress(now, call, status)
                }
                Event::OutgoingAnswered { call, answer } => {
                    self.on_agent_answered(now, call, &answer)
                }
                Event::OutgoingFailed {
                    call,
                    status,
                    reason,
                } => {
                    let why = match status {
                        Some(s) => format!("{s} {reason}"),
                        None => reason.to_string(),
                    };
                    self.on_agent_gone(now, call, &why);
                }
                Event::CallEnded { call, .. } if self.legs.contains_key(&call) => {
                    self.on_agent_gone(now, call, "hung up");
                }
                Event::CallConfirmed { call } => self.on_confirmed(now, call),
                Event::ReferResponse { call, status } => self.on_refer_response(now, call, status),
                Event::ReferNotify {
                    call,
                    status,
                    terminated,
                } => self.on_refer_notify(now, call, status, terminated),
                Event::ReInvite { call, offer } => self.on_reinvite(now, call, offer),
                Event::DtmfInfo {
                    call,
                    digit,
                    duration_ms,
                } => {
                    let key = call.0;
                    if !self.media.send(
                        key,
                        MediaCommand::InfoDigit {
                            key,
                            digit,
                            duration_ms,
                        },
                    ) {
                        tracing::debug!(key, "SIP INFO digit for a call without media");
                    }
                }
                Event::CallEnded { call, reason } => self.on_ended(now, call, reason),
            }
            self.board_dirty = true;
        }
        self.publish_board(now);
    }

    fn on_incoming(&mut self, now: Instant, inc: IncomingCall) {
        let span = tracing::info_span!("call", call_id = %inc.call_id);
        let _guard = span.enter();
        Metrics::inc(&self.metrics.calls_total);
        tracing::info!(from = %inc.from, to = %inc.to, remote = %inc.remote, "incoming call");
        // The network-asserted identity wins over the From the caller chose.
        let caller = inc
            .p_asserted_identity
            .as_deref()
            .and_then(uri_user)
            .or_else(|| uri_user(&inc.from));
        let called = uri_user(&inc.to);
        let dialog = self.dialogs.borrow().for_called(called.as_deref()).clone();
        let mut record = CallRecord {
            call_id: inc.call_id.clone(),
            from_uri: inc.from.clone(),
            to_uri: inc.to.clone(),
            remote_addr: inc.remote.to_string(),
            transport: match inc.transport {
                Transport::Udp => "udp".into(),
                Transport::Tcp => "tcp".into(),
            },
            started_at_ms: wall_ms(),
            media_stats: serde_json::json!({}),
            ..Default::default()
        };
        record.dialog.flow = dialog.flow.name.clone();
        record.language = dialog.flow.language.clone();
        let scorer = self.live.scorecards.as_ref().and_then(|s| {
            let cards = s.borrow().for_language(&record.language);
            (!cards.is_empty()).then(|| LiveScorer::new(cards))
        });

        let reject = |this: &mut Self, record: &mut CallRecord, status: u16, why: &str| {
            tracing::warn!(status, why, "rejecting call");
            Metrics::inc(&this.metrics.calls_rejected_total);
            let _ = this.endpoint.reject(now, inc.call, status);
            record.ended_at_ms = Some(wall_ms());
            record.end_reason = Some(format!("rejected_{status}"));
            record.timeline.push(TimelineEvent {
                at_ms: 0,
                kind: "rejected".into(),
                detail: format!("{status} {why}"),
            });
            this.store.insert_finished(record.clone());
        };

        let Some(offer) = inc.offer.as_ref() else {
            // Late offer (INVITE without SDP) needs an offer in the 200 and the answer in the ACK.
            reject(
                self,
                &mut record,
                488,
                "INVITE without SDP offer is not supported",
            );
            return;
        };
        let local_ip = self.local_ip_for(inc.remote);
        let ports = match self.ports.allocate() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "no RTP ports");
                reject(self, &mut record, 503, "no RTP ports left");
                return;
            }
        };
        let sdp_session = self.rng.next_u64() >> 2;
        let sdp_version = 1;
        let local = self.local_media(local_ip, ports.port, sdp_session, sdp_version);
        let negotiated = match sdp::negotiate(offer, &local) {
            Ok(n) => n,
            Err(e) => {
                self.ports.release(ports.port);
                reject(self, &mut record, 488, &e.to_string());
                return;
            }
        };
        record.codec = negotiated.codec.name.encoding_name().to_string();
        if let Err(e) = self.endpoint.send_provisional(now, inc.call, 180, None) {
            tracing::debug!(error = %e, "cannot send 180");
        }
        if let Some(dir) = &self.cfg.recording_dir {
            record.recording_path = Some(
                dir.join(format!(
                    "{}-{}.wav",
                    record.started_at_ms,
                    sanitize(&inc.call_id)
                ))
                .to_string_lossy()
                .into_owned(),
            );
        }
        record.timeline.push(TimelineEvent {
            at_ms: 0,
            kind: "arrived".into(),
            detail: format!("from {}", inc.remote),
        });
        self.store.insert(inc.call.0, record.clone());
        drop(_guard);
        let port = ports.port;
        self.calls.insert(
            inc.call,
            Call {
                handle: inc.call,
                record,
                arrived: now,
                phase: Phase::Ringing {
                    answer_at: now + self.cfg.answer_delay,
                },
                ports: Some(ports),
                port,
                local_ip,
                negotiated,
                sdp_session,
                sdp_version,
                media_running: false,
                hangup_cause: None,
                span,
                pending_asr: HashMap::new(),
                store_by: None,
                dialog,
                caller,
                called,
                agent_leg: None,
                agents_tried: Vec::new(),
                scorer,
                upset: false,
                traits: Traits::default(),
                refer: None,
                recent: std::collections::VecDeque::new(),
                alerts: 0,
            },
        );
        if self.cfg.answer_delay.is_zero() {
            self.answer(now, inc.call);
        }
    }

    /// Earliest moment the controller or the endpoint needs [`Controller::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ring = self
            .calls
            .values()
            .filter_map(|c| match c.phase {
                Phase::Ringing { answer_at } => Some(answer_at),
                _ => c.store_by,
            })
            .chain(self.legs.values().filter_map(|l| l.ring_until))
            .chain(self.board_dirty.then_some(self.board_next))
            .chain(self.queue.poll_timeout())
            .chain(self.calls.values().filter_map(|c| c.refer.flatten()))
            .min();
        match (ring, self.endpoint.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.endpoint.handle_timeout(now);
        self.publish_board(now);
        // Agents who let it ring too long: cancel; the failure event moves on to the next agent.
        let unanswered: Vec<CallHandle> = self
            .legs
            .iter_mut()
            .filter(|(_, l)| l.ring_until.is_some_and(|t| t <= now))
            .map(|(h, l)| {
                l.ring_until = None;
                *h
            })
            .collect();
        for h in unanswered {
            if self.endpoint.hangup(now, h).is_err() {
                self.on_agent_gone(now, h, "no answer");
            }
        }
        for ev in self
            .queue
            .handle_timeout(now, self.cfg.announce_every, &self.agents)
        {
            self.on_queue_event(now, ev);
        }
        let referred: Vec<CallHandle> = self
            .calls
            .values()
            .filter(|c| c.refer.flatten().is_some_and(|t| t <= now))
            .map(|c| c.handle)
            .collect();
        for h in referred {
            self.transferred(now, h);
        }
        let due: Vec<CallHandle> = self
            .calls
            .values()
            .filter(|c| matches!(c.phase, Phase::Ringing { answer_at } if answer_at <= now))
            .map(|c| c.handle)
            .collect();
        for h in due {
            self.answer(now, h);
        }
        let overdue: Vec<CallHandle> = self
            .calls
            .values()
            .filter(|c| c.store_by.is_some_and(|t| t <= now))
            .map(|c| c.handle)
            .collect();
        for h in overdue {
            if let Some(call) = self.calls.get(&h) {
                let _g = call.span.enter();
                tracing::warn!(
                    pending = call.pending_asr.len(),
                    "recognition results did not arrive in time; storing the call without them"
                );
            }
            self.finish(h);
        }
    }

    fn answer(&mut self, now: Instant, handle: CallHandle) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        let _g = call.span.enter();
        let answer = sdp_text(&call.negotiated.answer);
        if let Err(e) = self.endpoint.answer(now, handle, answer) {
            tracing::warn!(error = %e, "cannot answer");
            return;
        }
        call.phase = Phase::Answered;
        Metrics::inc(&self.metrics.calls_answered_total);
        call.record.answered_at_ms = Some(wall_ms());
        call.record.timeline.push(TimelineEvent {
            at_ms: ms_since(call.arrived, now),
            kind: "answered".into(),
            detail: format!("{} rtp {}:{}", call.record.codec, call.local_ip, call.port),
        });
    }

    fn on_confirmed(&mut self, now: Instant, handle: CallHandle) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        if call.phase != Phase::Answered {
            return;
        }
        call.phase = Phase::Confirmed;
        call.record.timeline.push(TimelineEvent {
            at_ms: ms_since(call.arrived, now),
            kind: "confirmed".into(),
            detail: String::new(),
        });
        let Some(ports) = call.ports.take() else {
            return;
        };
        let session = session_config(
            &call.negotiated,
            &self.cfg,
            &mut self.rng,
            &call.record.call_id,
        );
        let new = NewCall {
            key: handle.0,
            call_id: call.record.call_id.clone(),
            ports,
            session,
            recording: call.record.recording_path.as_ref().map(PathBuf::from),
            flow: call.dialog.flow.clone(),
            prompts: call.dialog.prompts.clone(),
            caller: call.caller.clone(),
            called: call.called.clone(),
            no_packet_timeout: self.cfg.no_packet_timeout,
            max_duration: self.cfg.max_duration,
            inband_dtmf: self.cfg.inband_dtmf,
            speech: self.cfg.speech,
            speech_barge_in: self.cfg.speech_barge_in,
            asr_prompt: self.cfg.asr_prompt.clone(),
        };
        call.media_running = true;
        if let Err(new) = self.media.add(new) {
            // No media thread left: the call cannot be served. Free its ports and end it.
            call.media_running = false;
            let port = new.ports.port;
            drop(new);
            self.ports.release(port);
            let _g = call.span.enter();
            tracing::error!("no media thread available; hanging up");
            call.hangup_cause = Some("media_unavailable");
            drop(_g);
            let _ = self.endpoint.hangup(now, handle);
        }
    }

    fn on_reinvite(&mut self, now: Instant, handle: CallHandle, offer: Option<SessionDescription>) {
        let Some(call) = self.calls.get(&handle) else {
            let _ = self.endpoint.answer_reinvite(now, handle, Err(481));
            return;
        };
        let (ip, port, session_id, version) = (
            call.local_ip,
            call.port,
            call.sdp_session,
            call.sdp_version + 1,
        );
        let Some(offer) = offer else {
            // An offerless re-INVITE (often a session refresh): offer what we have, unchanged, with the same
            // o= version (RFC 3264 §8); the peer's answer comes in the ACK.
            let current = sdp_text(&call.negotiated.answer);
            let _ = self.endpoint.answer_reinvite(now, handle, Ok(current));
            return;
        };
        let negotiated =
            match sdp::negotiate(&offer, &self.local_media(ip, port, session_id, version)) {
                Ok(n) => n,
                Err(e) => {
                    tracing::info!(error = %e, "re-INVITE not acceptable");
                    let _ = self.endpoint.answer_reinvite(now, handle, Err(488));
                    return;
                }
            };
        let answer = sdp_text(&negotiated.answer);
        if self
            .endpoint
            .answer_reinvite(now, handle, Ok(answer))
            .is_err()
        {
            return;
        }
        let session = {
            let Some(call) = self.calls.get_mut(&handle) else {
                return;
            };
            // The o= version moves by exactly one per new description we send (RFC 3264 §8).
            call.sdp_version = version;
            let held = !negotiated.direction.can_send();
            call.record.timeline.push(TimelineEvent {
                at_ms: ms_since(call.arrived, now),
                kind: "reinvite".into(),
                detail: format!(
                    "{} {}",
                    negotiated.codec.name.encoding_name(),
                    if held { "hold" } else { "active" }
                ),
            });
            call.record.codec = negotiated.codec.name.encoding_name().to_string();
            let session =
                session_config(&negotiated, &self.cfg, &mut self.rng, &call.record.call_id);
            call.negotiated = negotiated;
            session
        };
        self.media.send(
            handle.0,
            MediaCommand::Update {
                key: handle.0,
                session: Box::new(session),
            },
        );
    }

    fn on_ended(&mut self, now: Instant, handle: CallHandle, reason: EndReason) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        let _g = call.span.enter();
        let reason_str = match reason {
            EndReason::RemoteBye => "remote_bye".to_string(),
            EndReason::Cancelled => "cancelled".to_string(),
            EndReason::LocalHangup => call.hangup_cause.unwrap_or("local_hangup").to_string(),
            EndReason::AckTimeout => "ack_timeout".to_string(),
            EndReason::TransactionTimeout => "transaction_timeout".to_string(),
            EndReason::Rejected(code) => format!("rejected_{code}"),
        };
        tracing::info!(reason = %reason_str, "call ended");
        call.record.end_reason = Some(reason_str.clone());
        call.record.ended_at_ms = Some(wall_ms());
        call.record.timeline.push(TimelineEvent {
            at_ms: ms_since(call.arrived, now),
            kind: "ended".into(),
            detail: reason_str,
        });
        call.phase = Phase::Ending;
        drop(_g);
        let agent_leg = call.agent_leg.take();
        if self.queue.leave(handle.0).is_some() {
            Metrics::set(&self.metrics.queue_waiting, self.queue.len() as u64);
        }
        // If the media thread is gone its sockets went with it: finish without waiting for `Removed`.
        let removing = call.media_running
            && self
                .media
                .send(handle.0, MediaCommand::Remove { key: handle.0 });
        if !removing {
            if call.media_running {
                self.ports.release(call.port);
                self.media.forget(handle.0);
            }
            self.finish_when_transcribed(now, handle);
        }
        if let Some(leg) = agent_leg {
            // The caller left: the agent's call ends too (CANCEL while ringing, BYE once bridged).
            if self.endpoint.hangup(now, leg).is_err() {
                self.drop_leg(now, leg);
            }
        }
    }

    /// Stores the call now, or once the recognition of its last utterances is in (bounded wait).
    fn finish_when_transcribed(&mut self, now: Instant, handle: CallHandle) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        if call.pending_asr.is_empty() {
            self.finish(handle);
        } else if call.store_by.is_none() {
            call.store_by = Some(now + crate::speech::FINAL_RESULT_GRACE);
        }
    }

    pub fn on_media_event(&mut self, now: Instant, ev: MediaEvent) {
        self.board_dirty = true;
        match ev {
            MediaEvent::Timeline {
                key,
                at,
                kind,
                detail,
            } => {
                if let Some(call) = self.calls.get_mut(&CallHandle(key)) {
                    call.record.timeline.push(TimelineEvent {
                        at_ms: ms_since(call.arrived, at),
                        kind: kind.into(),
                        detail,
                    });
                }
            }
            MediaEvent::Utterance {
                key,
                utterance,
                start,
                end,
                cut,
                submitted,
                agent,
                record_only,
            } => {
                if let Some(call) = self.calls.get_mut(&CallHandle(key)) {
                    let pending = PendingUtterance {
                        start,
                        end,
                        cut,
                        record_only,
                        speaker: if agent {
                            Speaker::Agent
                        } else {
                            Speaker::Caller
                        },
                    };
                    call.record.timeline.push(TimelineEvent {
                        at_ms: ms_since(call.arrived, now),
                        kind: "utterance".into(),
                        detail: format!(
                            "#{utterance} {}..{} ms{}",
                            ms_since(call.arrived, start),
                            ms_since(call.arrived, end),
                            if cut { " cut at max length" } else { "" }
                        ),
                    });
                    if submitted {
                        call.pending_asr.insert(utterance, pending);
                    } else {
                        // Refused by the saturated pool: the turn is kept, without words, so QA sees it.
                        call.push_wordless_turn(pending);
                    }
                }
            }
            MediaEvent::BotTurn {
                key,
                start,
                end,
                prompts,
                interrupted,
            } => {
                if let Some(call) = self.calls.get_mut(&CallHandle(key)) {
                    let texts = &call.dialog.texts;
                    let text = prompts
                        .iter()
                        .map(|p| texts.get(&**p).map_or(&**p, String::as_str))
                        .collect::<Vec<_>>()
                        .join(" ");
                    let turn = Turn {
                        speaker: Speaker::Voxgate,
                        start_ms: ms_since(call.arrived, start),
                        end_ms: ms_since(call.arrived, end),
                        text,
                        confidence: None,
                        interrupted,
                        segments: Vec::new(),
                        acoustics: None,
                    };
                    let live = call.live_turn(Speaker::Voxgate, 0, &turn, false);
                    call.show_turn(&self.live.turns, live);
                    call.record.turns.push(turn.clone());
                    self.check_live(CallHandle(key), &turn, false, now);
                }
            }
            MediaEvent::Asr(result, acoustics) => self.on_asr(now, *result, acoustics),
            MediaEvent::Dialog { key, at, note } => {
                if let Some(call) = self.calls.get_mut(&CallHandle(key)) {
                    let at_ms = ms_since(call.arrived, at);
                    apply_note(&mut call.record, at_ms, note);
                }
            }
            MediaEvent::Invoke { key, id, op, args } => self.invoke(key, id, op, args),
            MediaEvent::Voiceprint {
                key,
                outcome,
                detail,
            } => {
                if let Some(call) = self.calls.get_mut(&CallHandle(key)) {
                    call.record.dialog.voiceprint = Some(outcome.into());
                    call.record.dialog.events.push(DialogEvent {
                        at_ms: ms_since(call.arrived, now),
                        kind: "voiceprint".into(),
                        detail: format!("{outcome}: {detail}"),
                    });
                }
            }
            MediaEvent::Transfer {
                key,
                skill,
                priority,
                reason,
            } => self.transfer(now, key, skill, priority, reason),
            MediaEvent::Digit { key, shown } => {
                if let Some(call) = self.calls.get_mut(&CallHandle(key)) {
                    call.record.digits.push(shown);
                }
            }
            MediaEvent::Hangup { key, cause } => {
                let handle = CallHandle(key);
                if let Some(call) = self.calls.get_mut(&handle) {
                    if call.phase != Phase::Ending && call.hangup_cause.is_none() {
                        call.hangup_cause = Some(cause);
                        let _g = call.span.enter();
                        tracing::info!(cause, "voxgate hangs up");
                        drop(_g);
                        if let Err(e) = self.endpoint.hangup(now, handle) {
                            tracing::warn!(error = %e, "hangup failed");
                        }
                    }
                }
            }
            MediaEvent::Removed {
                key,
                port,
                agent_port,
                stats,
            } => {
                self.media.forget(key);
                self.ports.release(port);
                if let Some(v) = &self.voiceprints {
                    v.end(key);
                }
                if let Some(p) = agent_port {
                    self.ports.release(p);
                }
                let handle = CallHandle(key);
                if let Some(call) = self.calls.get_mut(&handle) {
                    call.media_running = false;
                    call.record.media_stats = stats;
                    if call.phase == Phase::Ending {
                        self.finish_when_transcribed(now, handle);
                    } else if let Err(e) = self.endpoint.hangup(now, handle) {
                        // Media stopped on its own (error); the call cannot go on without it.
                        tracing::warn!(error = %e, "hangup after media stop failed");
                    }
                }
            }
        }
    }

    /// Runs a backend operation on a blocking worker (the webhook may take seconds) and hands the answer
    /// straight to the call's media thread. A backend that panics counts as unavailable. Voiceprint operations
    /// are answered by the voiceprint worker instead of the bank.
    fn invoke(&mut self, key: u64, id: u64, op: Op, args: Vec<(String, Value)>) {
        let Some(commands) = self.media.commands_for(key) else {
            return;
        };
        let backend = self.backend.clone();
        let metrics = self.metrics.clone();
        let voiceprints = self.voiceprints.clone();
        tokio::task::spawn_blocking(move || {
            let result = match op {
                Op::VoiceprintVerify | Op::VoiceprintEnroll => {
                    voiceprint_op(voiceprints.as_ref(), key, op, &args)
                }
                _ => {
                    let mut result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        flow_ops::run(backend.as_ref(), op, &args)
                    }))
                    .unwrap_or(Err(BackendFailure::Unavailable));
                    if result == Err(BackendFailure::Unavailable) {
                        Metrics::inc(&metrics.backend_failures_total);
                    }
                    Metrics::inc(&metrics.backend_calls_total);
                    if let (Op::VerifyPin, Ok(vars)) = (op, result.as_mut()) {
                        offer_voiceprint(voiceprints.as_ref(), vars);
                    }
                    result
                }
            };
            let _ = commands.send(MediaCommand::BackendResult { key, id, result });
        });
    }

    /// Hands the caller to a human: rings agents with the skill (and the flow's language), longest-idle first,
    /// each for `ring_timeout`, and bridges the first who answers. When nobody can take the call the dialog
    /// hears so and continues with its `transfer_failed` form.
    fn transfer(&mut self, now: Instant, key: u64, skill: String, priority: bool, reason: String) {
        let caller = CallHandle(key);
        let Some(call) = self.calls.get_mut(&caller) else {
            return;
        };
        Metrics::inc(&self.metrics.handoffs_total);
        let traits = Traits {
            vip: call
                .record
                .dialog
                .slots
                .get("vip")
                .is_some_and(|v| v.display == "true"),
            upset: call.upset,
        };
        call.traits = traits;
        call.record.dialog.handoff = Some(Handoff {
            skill,
            reason,
            priority,
            agent: None,
            tags: traits.tags(),
        });
        call.agents_tried.clear();
        // The context an agent needs (intent, verification, slots, transcript so far) is readable at
        // `GET /api/v1/calls/{id}` from the moment the hand-off starts.
        self.snapshot(caller);
        match self.cfg.refer_target.clone() {
            Some(target) => self.refer(now, caller, &target),
            None => self.try_next_agent(now, caller),
        }
    }

    /// Blind transfer: asks the caller's side to call `target` itself (REFER); voxgate leaves the call once
    /// the far end reports the new call answered.
    fn refer(&mut self, now: Instant, caller: CallHandle, target: &str) {
        let Some(call) = self.calls.get_mut(&caller) else {
            return;
        };
        let referred_by = call.record.to_uri.clone();
        match self.endpoint.refer(now, caller, target, Some(&referred_by)) {
            Ok(()) => {
                call.refer = Some(None);
                call.record.timeline.push(TimelineEvent {
                    at_ms: ms_since(call.arrived, now),
                    kind: "refer".into(),
                    detail: target.to_string(),
                });
            }
            Err(e) => {
                let why = format!("REFER not sent: {e}");
                self.refer_failed(now, caller, why);
            }
        }
    }

    fn on_refer_response(&mut self, now: Instant, handle: CallHandle, status: u16) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        // Only while a REFER waits for its answer.
        if call.refer != Some(None) {
            return;
        }
        if (200..300).contains(&status) {
            call.refer = Some(Some(now + REFER_NOTIFY_WAIT));
            call.record.timeline.push(TimelineEvent {
                at_ms: ms_since(call.arrived, now),
                kind: "refer_accepted".into(),
                detail: status.to_string(),
            });
        } else {
            self.refer_failed(now, handle, format!("REFER answered {status}"));
        }
    }

    fn on_refer_notify(
        &mut self,
        now: Instant,
        handle: CallHandle,
        status: Option<u16>,
        terminated: bool,
    ) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        if call.refer.is_none() {
            return;
        }
        call.record.timeline.push(TimelineEvent {
            at_ms: ms_since(call.arrived, now),
            kind: "refer_notify".into(),
            detail: format!(
                "{}{}",
                status.map_or_else(|| "?".to_string(), |s| s.to_string()),
                if terminated { " terminated" } else { "" }
            ),
        });
        match status {
            Some(s) if (200..300).contains(&s) => self.transferred(now, handle),
            Some(s) if s >= 300 => {
                self.refer_failed(now, handle, format!("transfer target answered {s}"))
            }
            // A final NOTIFY without a usable status: the far end gave up on telling us.
            _ if terminated => self.transferred(now, handle),
            _ => {}
        }
    }

    /// The caller is with the transfer target: voxgate leaves.
    fn transferred(&mut self, now: Instant, handle: CallHandle) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        call.refer = None;
        Metrics::inc(&self.metrics.refers_total);
        if call.hangup_cause.is_none() {
            call.hangup_cause = Some("transferred");
            let _ = self.endpoint.hangup(now, handle);
        }
    }

    /// The blind transfer did not happen: configured agents are tried instead, else the flow hears so.
    fn refer_failed(&mut self, now: Instant, handle: CallHandle, why: String) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        call.refer = None;
        call.record.timeline.push(TimelineEvent {
            at_ms: ms_since(call.arrived, now),
            kind: "refer_failed".into(),
            detail: why.clone(),
        });
        if self.agents.len() > 0 {
            self.try_next_agent(now, handle);
        } else {
            self.transfer_failed(now, handle, TransferFailure::Failed, why);
        }
    }

    /// Writes the record of a call in progress so the API shows its current state.
    fn snapshot(&self, handle: CallHandle) {
        if let Some(call) = self.calls.get(&handle) {
            let mut rec = call.record.clone();
            in_time_order(&mut rec);
            self.store.update(handle.0, rec);
        }
    }

    /// Rings the best free agent for the caller's hand-off; with nobody free the caller queues, and with
    /// nobody able at all the dialog hears so.
    fn try_next_agent(&mut self, now: Instant, caller: CallHandle) {
        loop {
            let Some(call) = self.calls.get(&caller) else {
                return;
            };
            if call.phase != Phase::Confirmed || call.agent_leg.is_some() {
                return;
            }
            let skill = call
                .record
                .dialog
                .handoff
                .as_ref()
                .map_or_else(String::new, |h| h.skill.clone());
            let language = call.dialog.flow.language.clone();
            let Some(agent) = self
                .agents
                .pick(&skill, &language, call.traits, &call.agents_tried)
            else {
                if self.agents.able(&skill, &language) == 0 {
                    let why = format!("no agent for skill {skill} in {language}");
                    return self.transfer_failed(now, caller, TransferFailure::NoAgents, why);
                }
                return self.enqueue(now, caller);
            };
            match self.place_agent_call(now, caller, agent) {
                Ok(()) => return,
                Err(e) => {
                    if let Some(call) = self.calls.get_mut(&caller) {
                        let _g = call.span.enter();
                        tracing::warn!(error = %e, "cannot call the agent; trying the next");
                        call.agents_tried.push(agent);
                    }
                }
            }
        }
    }

    /// Every able agent is busy (or let it ring): the caller waits, hearing their place and the expected
    /// wait, then hold music.
    fn enqueue(&mut self, now: Instant, caller: CallHandle) {
        let Some(call) = self.calls.get_mut(&caller) else {
            return;
        };
        let Some(h) = call.record.dialog.handoff.as_ref() else {
            return;
        };
        if self.queue.contains(caller.0) {
            return;
        }
        let position = self.queue.join(
            Join {
                key: caller.0,
                skill: &h.skill,
                language: &call.dialog.flow.language,
                priority: h.priority,
                traits: call.traits,
            },
            now,
            self.cfg.announce_every,
            self.cfg.queue_timeout,
        );
        let minutes = self.queue.wait_minutes(caller.0, &self.agents).unwrap_or(1);
        call.record.timeline.push(TimelineEvent {
            at_ms: ms_since(call.arrived, now),
            kind: "queued".into(),
            detail: format!("{}, position {position}, about {minutes} min", h.skill),
        });
        Metrics::inc(&self.metrics.queued_total);
        Metrics::set(&self.metrics.queue_waiting, self.queue.len() as u64);
        self.media.send(
            caller.0,
            MediaCommand::Queue {
                key: caller.0,
                announce: announcement(position, minutes),
            },
        );
    }

    fn on_queue_event(&mut self, now: Instant, ev: QueueEvent) {
        match ev {
            QueueEvent::Announce {
                key,
                position,
                wait_minutes,
            } => {
                let caller = CallHandle(key);
                // Agents who let it ring earlier are tried again.
                if let Some(call) = self.calls.get_mut(&caller) {
                    call.agents_tried.clear();
                    let skill = call.record.dialog.handoff.as_ref().map(|h| h.skill.clone());
                    let language = &call.dialog.flow.language;
                    let free = skill.and_then(|s| self.agents.pick(&s, language, call.traits, &[]));
                    if free.is_some() {
                        self.queue.leave(key);
                        Metrics::set(&self.metrics.queue_waiting, self.queue.len() as u64);
                        return self.try_next_agent(now, caller);
                    }
                    call.record.timeline.push(TimelineEvent {
                        at_ms: ms_since(call.arrived, now),
                        kind: "queue_announce".into(),
                        detail: format!("position {position}, about {wait_minutes} min"),
                    });
                }
                self.media.send(
                    key,
                    MediaCommand::Queue {
                        key,
                        announce: announcement(position, wait_minutes),
                    },
                );
            }
            QueueEvent::TimedOut { key } => {
                Metrics::inc(&self.metrics.queue_timeouts_total);
                Metrics::set(&self.metrics.queue_waiting, self.queue.len() as u64);
                self.transfer_failed(
                    now,
                    CallHandle(key),
                    TransferFailure::QueueTimeout,
                    "queue timeout".into(),
                );
            }
        }
    }

    /// An agent is free again: the first queued caller they can serve gets them.
    fn offer_agent(&mut self, now: Instant, agent: usize) {
        if self.agents.is_busy(agent) {
            return;
        }
        let Some(key) = self.queue.next_for(&self.agents, agent) else {
            return;
        };
        self.queue.leave(key);
        Metrics::set(&self.metrics.queue_waiting, self.queue.len() as u64);
        let caller = CallHandle(key);
        if let Some(call) = self.calls.get_mut(&caller) {
            call.agents_tried.clear();
        }
        if let Err(e) = self.place_agent_call(now, caller, agent) {
            tracing::warn!(error = %e, "cannot call the freed agent");
            self.try_next_agent(now, caller);
        }
    }

    fn place_agent_call(
        &mut self,
        now: Instant,
        caller: CallHandle,
        agent: usize,
    ) -> Result<(), PlaceError> {
        let a = self.agents.get(agent).ok_or(PlaceError::NoAgent)?;
        let (target, addr, name) = (a.target.clone(), a.addr, a.name.clone());
        let local_sip = self
            .cfg
            .sip_udp
            .iter()
            .find(|l| l.is_ipv4() == addr.is_ipv4())
            .copied()
            .ok_or(PlaceError::NoListener)?;
        let ports = self.ports.allocate().map_err(|_| PlaceError::NoPorts)?;
        let local_ip = self.local_ip_for(addr);
        let session_id = self.rng.next_u64() >> 2;
        let media = self.local_media(local_ip, ports.port, session_id, 1);
        let offer = sdp_text(&sdp::build_offer(&media));
        let Some(call) = self.calls.get_mut(&caller) else {
            self.ports.release(ports.port);
            return Err(PlaceError::NoAgent);
        };
        let d = &call.record.dialog;
        let header = |v: Option<&str>| {
            v.unwrap_or("")
                .chars()
                .filter(|c| c.is_ascii_graphic() || *c == ' ')
                .collect::<String>()
        };
        let extra_headers = vec![
            (
                "X-Voxgate-Call-Id".to_string(),
                header(Some(&call.record.call_id)),
            ),
            (
                "X-Voxgate-Skill".to_string(),
                header(d.handoff.as_ref().map(|h| h.skill.as_str())),
            ),
            (
                "X-Voxgate-Intent".to_string(),
                header(d.intent.as_ref().map(|i| i.name.as_str())),
            ),
            (
                "X-Voxgate-Verified".to_string(),
                header(d.verification.as_deref().or(Some("no"))),
            ),
        ];
        let from_user = call
            .caller
            .clone()
            .filter(|u| u.chars().all(|c| c.is_ascii_digit() || c == '+'))
            .unwrap_or_default();
        let out = OutgoingCall {
            target,
            to: None,
            from_user,
            from_display: d
                .slots
                .get("customer_name")
                .map(|v| header(Some(&v.display))),
            remote: addr,
            transport: Transport::Udp,
            local: local_sip,
            sdp_offer: offer,
            extra_headers,
        };
        match self.endpoint.invite(now, out) {
            Ok(leg) => {
                call.agents_tried.push(agent);
                call.agent_leg = Some(leg);
                call.record.timeline.push(TimelineEvent {
                    at_ms: ms_since(call.arrived, now),
                    kind: "agent_ringing".into(),
                    detail: name.clone(),
                });
                if let Some(pop) = &self.screen_pop {
                    // The agent's CRM gets the context as the phone rings: what the caller wants, whether
                    // they were verified, what was said (masked as stored).
                    let mut rec = call.record.clone();
                    in_time_order(&mut rec);
                    pop.post(serde_json::json!({
                        "event": "agent_ringing",
                        "agent": name,
                        "call_id": rec.call_id,
                        "lookup": format!("/api/v1/calls?call_id={}", percent_encode(&rec.call_id)),
                        "record": rec,
                    }));
                }
                self.agents.set_busy(agent);
                self.legs.insert(
                    leg,
                    AgentLeg {
                        caller,
                        agent,
                        ports: Some(ports),
                        local: media,
                        ring_until: Some(now + self.cfg.ring_timeout),
                        answered_at: None,
                    },
                );
                Ok(())
            }
            Err(e) => {
                self.ports.release(ports.port);
                Err(PlaceError::Invite(e))
            }
        }
    }

    fn transfer_failed(
        &mut self,
        now: Instant,
        caller: CallHandle,
        failure: TransferFailure,
        why: String,
    ) {
        if let Some(call) = self.calls.get_mut(&caller) {
            call.record.timeline.push(TimelineEvent {
                at_ms: ms_since(call.arrived, now),
                kind: "transfer_failed".into(),
                detail: why,
            });
        }
        self.media.send(
            caller.0,
            MediaCommand::TransferResult {
                key: caller.0,
                outcome: TransferOutcome::Failed(failure),
            },
        );
    }

    fn on_agent_progress(&mut self, now: Instant, leg: CallHandle, status: u16) {
        let Some(l) = self.legs.get(&leg) else {
            return;
        };
        if let Some(call) = self.calls.get_mut(&l.caller) {
            call.record.timeline.push(TimelineEvent {
                at_ms: ms_since(call.arrived, now),
                kind: "agent_progress".into(),
                detail: status.to_string(),
            });
        }
    }

    /// The agent picked up: their leg joins the caller's media thread and the dialog hears it is done.
    fn on_agent_answered(&mut self, now: Instant, leg: CallHandle, answer: &SessionDescription) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        l.ring_until = None;
        let caller = l.caller;
        let negotiated = match sdp::negotiate_answer(&l.local, answer) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "agent's SDP answer unusable; hanging up the agent leg");
                if self.endpoint.hangup(now, leg).is_err() {
                    self.on_agent_gone(now, leg, "bad SDP answer");
                }
                return;
            }
        };
        let Some(call) = self.calls.get_mut(&caller) else {
            let _ = self.endpoint.hangup(now, leg);
            return;
        };
        let Some(ports) = l.ports.take() else {
            return;
        };
        l.answered_at = Some(now);
        let name = self
            .agents
            .get(l.agent)
            .map_or_else(String::new, |a| a.name.clone());
        let session = session_config(
            &negotiated,
            &self.cfg,
            &mut self.rng,
            &format!("{}-agent", call.record.call_id),
        );
        call.record.timeline.push(TimelineEvent {
            at_ms: ms_since(call.arrived, now),
            kind: "agent_answered".into(),
            detail: name.clone(),
        });
        if let Some(h) = call.record.dialog.handoff.as_mut() {
            h.agent = Some(name);
        }
        let port = ports.port;
        let bridged = self.media.send(
            caller.0,
            MediaCommand::Bridge {
                key: caller.0,
                leg: Box::new(BridgeLeg { ports, session }),
            },
        );
        if !bridged {
            // The caller's media is gone; nothing to bridge to.
            self.ports.release(port);
            let _ = self.endpoint.hangup(now, leg);
            return;
        }
        self.media.send(
            caller.0,
            MediaCommand::TransferResult {
                key: caller.0,
                outcome: TransferOutcome::Connected,
            },
        );
        self.snapshot(caller);
    }

    /// The agent leg ended: failed, cancelled, or hung up after talking. An agent who never answered is
    /// replaced by the next; one who talked and hung up ends the call.
    fn on_agent_gone(&mut self, now: Instant, leg: CallHandle, why: &str) {
        let Some(l) = self.legs.get(&leg) else {
            return;
        };
        let (caller, answered) = (l.caller, l.answered_at.is_some());
        self.drop_leg(now, leg);
        let Some(call) = self.calls.get_mut(&caller) else {
            return;
        };
        if call.agent_leg != Some(leg) {
            return;
        }
        call.agent_leg = None;
        call.record.timeline.push(TimelineEvent {
            at_ms: ms_since(call.arrived, now),
            kind: "agent_left".into(),
            detail: why.to_string(),
        });
        if answered {
            if call.phase != Phase::Ending && call.hangup_cause.is_none() {
                call.hangup_cause = Some("agent_hangup");
                let _ = self.endpoint.hangup(now, caller);
            }
        } else {
            self.try_next_agent(now, caller);
        }
    }

    /// Forgets an agent leg: the agent is free again and ports it still holds go back to the pool.
    fn drop_leg(&mut self, now: Instant, leg: CallHandle) {
        if let Some(l) = self.legs.remove(&leg) {
            if let Some(at) = l.answered_at {
                self.agents
                    .record_handle_time(now.saturating_duration_since(at));
            }
            self.agents.set_free(l.agent, now);
            if let Some(p) = l.ports {
                self.ports.release(p.port);
            }
            self.offer_agent(now, l.agent);
        }
    }

    fn on_asr(&mut self, now: Instant, r: voxgate_asr::AsrResult, acoustics: Option<Acoustics>) {
        Metrics::add(
            &self.metrics.asr_decode_ms_total,
            r.decode.as_millis().min(u128::from(u64::MAX)) as u64,
        );
        let handle = CallHandle(r.call.0);
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        let speaker = if r.utterance >= AGENT_UTTERANCE_BASE {
            Speaker::Agent
        } else {
            Speaker::Caller
        };
        if r.partial {
            Metrics::inc(&self.metrics.asr_partials_total);
            let Ok(t) = &r.outcome else {
                return;
            };
            let text = redact_numbers(t.text().trim());
            if text.is_empty() {
                return;
            }
            {
                let _g = call.span.enter();
                tracing::debug!(utterance = r.utterance, text = %text, "partial");
            }
            // The utterance is still going: the audio decoded so far ended about when the decode started,
            // so evidence from a partial points at the words' place in the call, not at "now".
            let end = ms_since(call.arrived, now.checked_sub(r.decode).unwrap_or(now));
            let start = end.saturating_sub(u64::from(t.audio_ms));
            let turn = Turn {
                speaker,
                start_ms: start,
                end_ms: end,
                text,
                confidence: Some(t.confidence),
                interrupted: false,
                segments: segments_from(start, &t.segments),
                acoustics: None,
            };
            let live = call.live_turn(speaker, r.utterance, &turn, true);
            call.show_turn(&self.live.turns, live);
            if self.live.partials {
                self.check_live(handle, &turn, true, now);
            }
            return;
        }
        let Some(pending) = call.pending_asr.remove(&r.utterance) else {
            return;
        };
        let (start, end, cut, record_only) =
            (pending.start, pending.end, pending.cut, pending.record_only);
        let mut final_turn = None;
        let result = match &r.outcome {
            Ok(t) if !t.text().trim().is_empty() => {
                Metrics::inc(&self.metrics.asr_results_total);
                let base = ms_since(call.arrived, start);
                let text = t.text();
                // Stored and shown text never holds an account or card number said aloud; the dialog
                // still gets the words as heard.
                let shown = redact_numbers(&text);
                // Arousal is relative to the same speaker's earlier turns in this call.
                let acoustics = acoustics.map(|mut a| {
                    let baseline: Vec<&Acoustics> = call
                        .record
                        .turns
                        .iter()
                        .filter(|t| t.speaker == pending.speaker && t.start_ms < base)
                        .filter_map(|t| t.acoustics.as_ref())
                        .collect();
                    a.arousal = voxgate_qa::acoustics::arousal(&baseline, &a);
                    a
                });
                let turn = Turn {
                    speaker: pending.speaker,
                    start_ms: base,
                    end_ms: ms_since(call.arrived, end),
                    text: shown,
                    confidence: Some(t.confidence),
                    interrupted: cut,
                    segments: segments_from(base, &t.segments),
                    acoustics,
                };
                let live = call.live_turn(pending.speaker, r.utterance, &turn, false);
                call.show_turn(&self.live.turns, live);
                if pending.speaker == Speaker::Caller && !call.upset {
                    // An angry or distressed caller is routed to agents skilled at calming them.
                    let mood = voxgate_qa::sentiment::lexical(&turn.text);
                    if mood.score <= UPSET_SENTIMENT {
                        call.upset = true;
                        call.record.timeline.push(TimelineEvent {
                            at_ms: base,
                            kind: "upset".into(),
                            detail: format!("{:.2} {}", mood.score, turn.text),
                        });
                    }
                }
                call.record.turns.push(turn.clone());
                final_turn = Some(turn);
                call.record.timeline.push(TimelineEvent {
                    at_ms: ms_since(call.arrived, now),
                    kind: "recognized".into(),
                    detail: format!(
                        "#{} {:.2} {} ms decode",
                        r.utterance,
                        t.confidence,
                        r.decode.as_millis()
                    ),
                });
                Recognition::Text {
                    text,
                    confidence: t.confidence,
                }
            }
            outcome => {
                Metrics::inc(&self.metrics.asr_failed_total);
                let overloaded = matches!(outcome, Err(voxgate_asr::AsrError::DroppedUnderLoad));
                if overloaded {
                    Metrics::inc(&self.metrics.asr_overloaded_total);
                }
                call.push_wordless_turn(pending);
                let detail = match outcome {
                    Ok(_) => format!("#{} no words", r.utterance),
                    Err(e) => format!("#{} {e}", r.utterance),
                };
                call.record.timeline.push(TimelineEvent {
                    at_ms: ms_since(call.arrived, now),
                    kind: "recognition_failed".into(),
                    detail,
                });
                Recognition::Failed { overloaded }
            }
        };
        if let Some(turn) = final_turn {
            self.check_live(handle, &turn, false, now);
        }
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        if record_only {
            // The agent's words, or the caller's cut short by a key: the dialog does not hear them.
            if call.phase == Phase::Ending && call.pending_asr.is_empty() {
                self.finish(handle);
            }
        } else if call.media_running {
            self.media.send(
                handle.0,
                MediaCommand::Recognized {
                    key: handle.0,
                    result,
                },
            );
        } else if call.phase == Phase::Ending && call.pending_asr.is_empty() {
            self.finish(handle);
        }
    }

    fn finish(&mut self, handle: CallHandle) {
        let Some(mut call) = self.calls.remove(&handle) else {
            return;
        };
        if let Some(p) = call.ports.take() {
            self.ports.release(p.port);
        }
        in_time_order(&mut call.record);
        self.store.save(handle.0, call.record);
    }

    /// Ends every call (shutdown); returns how many were hung up.
    pub fn hangup_all(&mut self, now: Instant) -> usize {
        let handles: Vec<CallHandle> = self.calls.keys().copied().collect();
        for h in &handles {
            if let Some(call) = self.calls.get_mut(h) {
                call.hangup_cause.get_or_insert("shutdown");
            }
            let _ = self.endpoint.hangup(now, *h);
        }
        handles.len()
    }

    /// Calls still held: in progress, or over and waiting for media stats or transcripts.
    pub fn open_calls(&self) -> usize {
        self.calls.len()
    }

    /// Shutdown: stores every call still held with what it has, so nothing is lost.
    pub fn store_remaining(&mut self) {
        let handles: Vec<CallHandle> = self.calls.keys().copied().collect();
        for h in handles {
            if let Some(call) = self.calls.get_mut(&h) {
                if call.record.ended_at_ms.is_none() {
                    call.record.ended_at_ms = Some(wall_ms());
                    call.record.end_reason = Some("shutdown".into());
                }
            }
            self.finish(h);
        }
    }

    pub fn shutdown_media(self) {
        self.media.shutdown();
    }

    fn local_media(&self, ip: IpAddr, port: u16, session_id: u64, version: u64) -> LocalMedia {
        let mut m = LocalMedia::new(ip, port, session_id);
        m.codecs = self
            .cfg
            .codecs
            .iter()
            .map(|c| match c {
                voxgate_config::CodecName::Pcmu => sdp::Codec::Pcmu,
                voxgate_config::CodecName::Pcma => sdp::Codec::Pcma,
                voxgate_config::CodecName::Opus => sdp::Codec::Opus,
            })
            .collect();
        m.ptime_ms = self.cfg.ptime_ms;
        m.session_version = version;
        m
    }

    /// The address callers must send RTP to: the configured public address, else the local address the OS
    /// would use to reach this caller (a connect() on a UDP socket only consults the routing table).
    fn local_ip_for(&self, remote: SocketAddr) -> IpAddr {
        if let Some(ip) = self.cfg.public_address {
            return ip;
        }
        let bind: SocketAddr = if remote.is_ipv6() {
            "[::]:0".parse().unwrap_or(remote)
        } else {
            "0.0.0.0:0".parse().unwrap_or(remote)
        };
        UdpSocket::bind(bind)
            .and_then(|s| {
                s.connect(remote)?;
                s.local_addr()
            })
            .map(|a| a.ip())
            .unwrap_or(remote.ip())
    }
}

fn session_config(
    n: &Negotiated,
    cfg: &ControllerConfig,
    rng: &mut SplitMix64,
    call_id: &str,
) -> SessionConfig {
    SessionConfig {
        codec: match n.codec.name {
            sdp::Codec::Pcmu => CodecKind::Pcmu,
            sdp::Codec::Pcma => CodecKind::Pcma,
            sdp::Codec::Opus => CodecKind::Opus,
        },
        payload_type: n.codec.payload_type,
        telephone_event_pt: n.telephone_event_pt,
        remote_rtp: n.remote_rtp,
        remote_rtcp: n.remote_rtcp,
        ptime_ms: n.ptime_ms,
        direction: direction(n.direction),
        ssrc: rng.next_u64() as u32,
        initial_seq: rng.next_u64() as u16,
        initial_ts: rng.next_u64() as u32,
        cname: format!("voxgate-{}", sanitize(call_id)),
        symmetric_latching: true,
        jitter_min: cfg.jitter_min,
        jitter_max: cfg.jitter_max,
    }
}

fn sdp_text(sdp: &SessionDescription) -> String {
    String::from_utf8_lossy(&sdp.to_bytes()).into_owned()
}

/// What we may do on the wire, from the SDP answer's point of view.
fn direction(d: sdp::Direction) -> voxgate_media::session::Direction {
    use voxgate_media::session::Direction as M;
    match d {
        sdp::Direction::SendRecv => M::SendRecv,
        sdp::Direction::SendOnly => M::SendOnly,
        sdp::Direction::RecvOnly => M::RecvOnly,
        sdp::Direction::Inactive => M::Inactive,
    }
}

/// Why an agent could not be called.
#[derive(Debug, thiserror::Error)]
enum PlaceError {
    #[error("agent vanished from the pool")]
    NoAgent,
    #[error("no SIP UDP listener of the agent's address family")]
    NoListener,
    #[error("no RTP ports left")]
    NoPorts,
    #[error("INVITE refused: {0}")]
    Invite(voxgate_sip::endpoint::CallError),
}

/// `voiceprint_verify` / `voiceprint_enroll`, answered from the call's speech. Voiceprints off answer `off`;
/// a failing worker answers as unavailable; flows treat both like "not recognised".
fn voiceprint_op(
    voiceprints: Option<&Voiceprints>,
    key: u64,
    op: Op,
    args: &[(String, Value)],
) -> Result<Vec<(String, Value)>, BackendFailure> {
    let arg = |name: &str| flow_ops::text_arg(args, name);
    let text = |s: &str| Value::Text(s.into());
    // Off on this box: an answer, not a failure (the flow falls back to the PIN without a backend_failed event).
    let Some(v) = voiceprints else {
        return Ok(vec![("voiceprint".into(), text("off"))]);
    };
    let customer = arg("customer_id").ok_or(BackendFailure::Refused)?;
    match op {
        Op::VoiceprintEnroll => {
            let account = arg("account").ok_or(BackendFailure::Refused)?;
            let done = v
                .enroll(key, customer, account)
                .map_err(|_| BackendFailure::Unavailable)?;
            let outcome = if done { "enrolled" } else { "enrolling" };
            Ok(vec![("voiceprint".into(), text(outcome))])
        }
        _ => {
            let check = v
                .verify(key, customer)
                .map_err(|_| BackendFailure::Unavailable)?;
            let mut out = vec![("voiceprint".into(), text(check.outcome()))];
            match check {
                Check::Accept { score, account } => {
                    out.push(("voiceprint_score".into(), text(&format!("{score:.3}"))));
                    out.push(("account".into(), Value::Digits(account)));
                }
                Check::Reject { score } => {
                    out.push(("voiceprint_score".into(), text(&format!("{score:.3}"))));
                }
                Check::NotEnoughSpeech { .. } | Check::NoTemplate => {}
            }
            Ok(out)
        }
    }
}

/// After a correct PIN: offer enrolment to a customer who has no voiceprint yet (when voiceprints are on).
fn offer_voiceprint(voiceprints: Option<&Voiceprints>, vars: &mut Vec<(String, Value)>) {
    let customer = vars.iter().find_map(|(k, v)| match v {
        Value::Text(c) if k == "customer_id" => Some(c.clone()),
        _ => None,
    });
    let offer = match (voiceprints, customer) {
        (Some(v), Some(c)) => v.has_template(c).map(|has| !has).unwrap_or(false),
        _ => false,
    };
    vars.push(("voiceprint_offer".into(), Value::Bool(offer)));
}

/// "All our agents are busy. You are number N in the queue. The estimated waiting time is about M minutes."
fn announcement(position: usize, minutes: u64) -> Vec<Say> {
    let p = |k: &str| Say::Prompt(Arc::from(k));
    vec![
        p("queue_position"),
        Say::Number(position as i64),
        p("queue_in_line"),
        p("queue_wait"),
        Say::Number(minutes.min(i64::MAX as u64) as i64),
        p(if minutes == 1 {
            "queue_minute"
        } else {
            "queue_minutes"
        }),
    ]
}

/// Events and turns arrive out of order (recognition lags the audio): stored records are in time order.
fn in_time_order(rec: &mut CallRecord) {
    rec.timeline.sort_by_key(|e| e.at_ms);
    rec.turns.sort_by_key(|t| t.start_ms);
}

/// Keeps the record's dialog summary current: the agent's screen-pop and QA read it.
fn apply_note(rec: &mut CallRecord, at_ms: u64, note: DialogNote) {
    let d = &mut rec.dialog;
    let mut event = |kind: &str, detail: String| {
        d.events.push(DialogEvent {
            at_ms,
            kind: kind.into(),
            detail,
        })
    };
    match note {
        DialogNote::SlotFilled {
            name,
            display,
            confidence,
        } => {
            d.slots.insert(
                name,
                SlotValue {
                    display,
                    confidence,
                },
            );
        }
        DialogNote::SlotCleared { name } => {
            d.slots.remove(&name);
        }
        DialogNote::Analytics(a) => match a {
            Analytics::FormEntered { form } => event("form", form),
            Analytics::Intent {
                slot,
                intent,
                confidence,
                margin,
            } => {
                event(
                    "intent",
                    format!("{slot}: {intent} {confidence:.2} (margin {margin:.2})"),
                );
                // Flows name the caller's request `intent`; other intent slots are follow-up answers.
                if slot == "intent" {
                    d.intent = Some(IntentResult {
                        name: intent,
                        confidence,
                        margin,
                    });
                }
            }
            Analytics::OutOfScope { slot, reason } => {
                event("out_of_scope", format!("{slot}: {reason}"))
            }
            Analytics::NoInput { slot, count } => {
                event("no_input", format!("{slot} #{count}"));
                d.no_input += 1;
            }
            Analytics::NoMatch { slot, count } => {
                event("no_match", format!("{slot} #{count}"));
                d.no_match += 1;
            }
            Analytics::Command { name } => event("command", name),
            Analytics::Confirmation { slot, accepted } => event(
                "confirmation",
                format!("{slot} {}", if accepted { "yes" } else { "no" }),
            ),
            Analytics::Escalated { errors } => event("escalated", format!("{errors} errors")),
            Analytics::Verification { outcome } => {
                event("verification", outcome.clone());
                d.verification = Some(outcome);
            }
            Analytics::Voiceprint { outcome } => {
                event("voiceprint", outcome.clone());
                d.voiceprint = Some(outcome);
            }
            Analytics::BackendFailed { op, failure } => {
                event("backend_failed", format!("{op} {failure:?}"))
            }
            Analytics::Handoff { skill, reason } => event("handoff", format!("{skill} ({reason})")),
            Analytics::TransferFailed { reason } => event("transfer_failed", reason.into()),
            Analytics::Ended { contained } => {
                event(
                    "ended",
                    if contained { "contained" } else { "handed off" }.into(),
                );
                d.contained = Some(contained);
            }
        },
    }
}

/// A per-process seed for identifiers that must differ between runs.
pub fn random_seed() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

fn ms_since(start: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(start).as_millis() as u64
}

pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Percent-encodes everything but unreserved URL characters (RFC 3986 §2.3).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Call-IDs come from the network: keep file names to a safe alphabet and length.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

/// Whisper's segments placed in the call (`base` = where the decoded audio starts), numbers redacted.
fn segments_from(base: u64, segments: &[voxgate_asr::Segment]) -> Vec<TurnSegment> {
    segments
        .iter()
        .map(|seg| TurnSegment {
            start_ms: base + u64::from(seg.start_ms),
            end_ms: base + u64::from(seg.end_ms),
            text: redact_numbers(seg.text.trim()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn call_ids_become_safe_file_names() {
        assert_eq!(sanitize("a/../b@10.0.0.1"), "a_.._b_10.0.0.1");
        assert_eq!(sanitize(&"x".repeat(200)).len(), 64);
    }
}
