//! Media threads: each owns a set of calls and drives them all from one drift-free 20 ms clock.
//!
//! Per tick and call: drain the RTP/RTCP sockets (non-blocking), pull one decoded frame, detect DTMF, let the
//! dialog engine react, play the next prompt frame, send it, and hand the stereo frame to the recorder. Nothing
//! here blocks on disk or on other calls: the only cross-thread paths are bounded or non-blocking queues.
//!
//! The call's dialog ([`Session`]) lives here, next to the audio it reacts to; what it needs from elsewhere
//! (backend operations, a human agent) goes to the controller as a [`MediaEvent`] and comes back as a
//! [`MediaCommand`], so the media clock never waits for it.

use std::collections::{HashMap, VecDeque};
use std::io::ErrorKind;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tokio::sync::mpsc::UnboundedSender;
use voxgate_asr::{AsrJob, CallKey, JobSubmitter, Language};
use voxgate_dialog::flow::{
    Action, Analytics, BackendFailure, Endpointing, Event as DialogEvent, Flow, Op, Say, Session,
    TransferOutcome, Value,
};
use voxgate_media::clock::MediaClock;
use voxgate_media::dtmf::{DtmfEvent, DtmfSource, DtmfUnifier, GoertzelDetector, InbandDtmf};
use voxgate_media::player::{Clip, PlayerTick, PromptCache, PromptPlayer, Source};
use voxgate_media::recorder::CallRecorder;
use voxgate_media::session::{Direction, RtpSession, SessionConfig, SessionStats};
use voxgate_media::speech::{
    BargeInEvent, EndReason as UtteranceEnd, EndpointerConfig, PipelineConfig, SpeechEvent,
    SpeechPipeline,
};
use voxgate_media::{readout, Frame, FRAME_SAMPLES};

use crate::metrics::Metrics;
use crate::ports::PortPair;
use crate::recording::{RecordingSink, CHUNK_FRAMES, STEREO_FRAME};

const TICK: Duration = Duration::from_millis(20);
/// Frames of caller audio the recorder holds back so DTMF found late can still be masked.
const RECORDER_DELAY_FRAMES: usize = 10;
/// Frames masked after an RFC 4733 / INFO digit is reported: the key press's tone, when the trunk also
/// sends it in-band, lasts about this long; in-band detections are masked precisely instead.
const DTMF_MASK_AFTER: u64 = 15;
/// How long before its report a key's tone may have started (in-band detection needs a few frames).
const KEY_TONE_LEAD: Duration = Duration::from_millis(80);
/// Longest key press we believe; longer claimed durations (INFO, RFC 4733) are clamped.
const MAX_DTMF_MS: u32 = 10_000;
/// Frames of guard masked around an in-band tone's detected edges.
const INBAND_GUARD: u64 = 2;

/// A call handed to a media thread once it is answered.
pub struct NewCall {
    pub key: u64,
    pub call_id: String,
    pub ports: PortPair,
    pub session: SessionConfig,
    pub recording: Option<PathBuf>,
    /// The flow that runs this call and the prompt set in its language.
    pub flow: Arc<Flow>,
    pub prompts: Arc<PromptCache>,
    /// Caller's number (From / P-Asserted-Identity user part) and the dialled number.
    pub caller: Option<String>,
    pub called: Option<String>,
    pub no_packet_timeout: Option<Duration>,
    pub max_duration: Duration,
    pub inband_dtmf: bool,
    /// Speech settings; `None` = keypad only.
    pub speech: Option<PipelineConfig>,
    /// Caller speech may interrupt interruptible prompts (DTMF always can).
    pub speech_barge_in: bool,
    /// Domain biasing for this call's recognition when the dialog step names none.
    pub asr_prompt: Option<Arc<str>>,
}

/// Utterances of the agent leg are numbered from here, so they never collide with the caller's.
pub const AGENT_UTTERANCE_BASE: u32 = 1 << 24;

/// The agent's leg of a bridged call (B2BUA): its own RTP ports and session.
pub struct BridgeLeg {
    pub ports: PortPair,
    pub session: SessionConfig,
}

/// What the recogniser made of one utterance, as the dialog needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum Recognition {
    Text {
        text: String,
        confidence: f32,
    },
    /// No usable text: nothing recognised, a decode error, or the pool shed the job.
    Failed {
        overloaded: bool,
    },
}

pub enum MediaCommand {
    Add(Box<NewCall>),
    /// A re-INVITE changed the remote address, codec or direction.
    Update {
        key: u64,
        session: Box<SessionConfig>,
    },
    /// A digit that came by SIP INFO.
    InfoDigit {
        key: u64,
        digit: char,
        duration_ms: u32,
    },
    /// The final recognition result of one of the call's utterances.
    Recognized {
        key: u64,
        result: Recognition,
    },
    /// The answer to a [`MediaEvent::Invoke`].
    BackendResult {
        key: u64,
        id: u64,
        result: Result<Vec<(String, Value)>, BackendFailure>,
    },
    /// An agent answered: bridge the caller to this leg (caller audio to the agent, agent audio to the caller,
    /// both recorded and transcribed).
    Bridge {
        key: u64,
        leg: Box<BridgeLeg>,
    },
    /// The outcome of a [`MediaEvent::Transfer`]: a human took the call, or nobody could.
    TransferResult {
        key: u64,
        outcome: TransferOutcome,
    },
    /// The caller waits in the hand-off queue: play `announce` (after anything still playing), then hold
    /// music until the transfer's outcome arrives.
    Queue {
        key: u64,
        announce: Vec<Say>,
    },
    /// The call is over on the signalling side: stop and release.
    Remove {
        key: u64,
    },
    Shutdown,
}

/// What media threads tell the call controller.
#[derive(Debug)]
pub enum MediaEvent {
    Timeline {
        key: u64,
        at: Instant,
        kind: &'static str,
        detail: String,
    },
    /// A digit for the call record, as the dialog engine wants it shown (sensitive ones masked).
    Digit { key: u64, shown: char },
    /// The media side wants the call ended (dialog finished, no RTP, too long).
    Hangup { key: u64, cause: &'static str },
    /// The caller finished an utterance (media time, pre-roll included); its text arrives as [`MediaEvent::Asr`].
    Utterance {
        key: u64,
        utterance: u32,
        start: Instant,
        end: Instant,
        /// Cut at the maximum utterance length.
        cut: bool,
        /// False when the recogniser refused it (overload): no result will come.
        submitted: bool,
        /// Spoken by the agent on a bridged call (else by the caller).
        agent: bool,
        /// Its transcript is for the record only, not for the dialog (the agent's words, or a caller's
        /// words cut short by a key press).
        record_only: bool,
    },
    /// voxgate said something: the prompt fragments played from `start` to `end`.
    BotTurn {
        key: u64,
        start: Instant,
        end: Instant,
        prompts: Vec<Arc<str>>,
        interrupted: bool,
    },
    /// The dialog filled or cleared a variable, or reported an analytics event.
    Dialog {
        key: u64,
        at: Instant,
        note: DialogNote,
    },
    /// The dialog needs a backend operation; answer with [`MediaCommand::BackendResult`].
    Invoke {
        key: u64,
        id: u64,
        op: Op,
        args: Vec<(String, Value)>,
    },
    /// The dialog hands the caller to a human; answer with [`MediaCommand::TransferResult`].
    Transfer {
        key: u64,
        skill: String,
        priority: bool,
        reason: String,
    },
    /// A recognition result from the ASR pool (routed through the controller, which knows the call's thread).
    /// A recognition result; finals come with the utterance's acoustics, measured on the result router.
    Asr(Box<voxgate_asr::AsrResult>, Option<voxgate_qa::Acoustics>),
    /// The voiceprint worker finished something for the call (an enrolment).
    Voiceprint {
        key: u64,
        outcome: &'static str,
        detail: String,
    },
    /// The call left its media thread; its ports (and its agent leg's) can be reused.
    Removed {
        key: u64,
        port: u16,
        agent_port: Option<u16>,
        stats: serde_json::Value,
    },
}

/// What the dialog reports for the call record (display forms only: secrets are already masked).
#[derive(Debug)]
pub enum DialogNote {
    SlotFilled {
        name: String,
        display: String,
        confidence: f32,
    },
    SlotCleared {
        name: String,
    },
    Analytics(Analytics),
}

/// Shared, read-only things every media thread uses.
pub struct MediaShared {
    pub events: UnboundedSender<MediaEvent>,
    pub recordings: RecordingSink,
    pub metrics: Arc<Metrics>,
    /// Caller turns go here too when voiceprints are on.
    pub voiceprints: Option<crate::voiceprint::Voiceprints>,
    /// The site's hold music (`[handoff] hold_music`); else the prompt set's `music/hold`.
    pub hold_music: Option<Clip>,
}

impl MediaShared {
    /// A call this thread cannot serve (it failed to start, or its processing failed): ask for the
    /// hang-up and hand its port back, with no statistics.
    fn abandon(&self, key: u64, port: u16, agent_port: Option<u16>, cause: &'static str) {
        let _ = self.events.send(MediaEvent::Hangup { key, cause });
        let _ = self.events.send(MediaEvent::Removed {
            key,
            port,
            agent_port,
            stats: serde_json::Value::Null,
        });
    }
}

/// The handle the controller keeps per media thread.
pub struct MediaThread {
    pub commands: Sender<MediaCommand>,
    pub handle: std::thread::JoinHandle<()>,
}

pub fn spawn_media_thread(
    index: usize,
    core: Option<usize>,
    shared: Arc<MediaShared>,
    asr: Option<JobSubmitter>,
) -> std::io::Result<MediaThread> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let handle = std::thread::Builder::new()
        .name(format!("media-{index}"))
        .spawn(move || {
            if let Some(core) = core {
                match voxgate_hw::pin_current_thread(core) {
                    Ok(()) => tracing::info!(thread = index, core, "media thread pinned"),
                    Err(e) => {
                        tracing::warn!(thread = index, core, error = %e, "cannot pin media thread")
                    }
                }
            }
            MediaLoop::new(rx, shared, asr).run();
        })?;
    Ok(MediaThread {
        commands: tx,
        handle,
    })
}

struct MediaLoop {
    commands: Receiver<MediaCommand>,
    shared: Arc<MediaShared>,
    calls: Vec<MediaCall>,
    scratch: Scratch,
}

/// Per-thread buffers reused by every call on every tick.
struct Scratch {
    packet: [u8; 2048],
    out: [u8; 1500],
    caller: Frame,
    ours: Frame,
    /// The caller frame after echo cancellation.
    cleaned: Frame,
    /// The agent's frame on a bridged call, and after its echo guard.
    agent: Frame,
    agent_cleaned: Frame,
    stereo: [i16; STEREO_FRAME],
    /// This thread's handle on the ASR queue (`None` when speech is off).
    asr: Option<JobSubmitter>,
}

impl MediaLoop {
    fn new(
        commands: Receiver<MediaCommand>,
        shared: Arc<MediaShared>,
        asr: Option<JobSubmitter>,
    ) -> Self {
        Self {
            commands,
            shared,
            calls: Vec::with_capacity(256),
            scratch: Scratch {
                packet: [0; 2048],
                out: [0; 1500],
                caller: [0; FRAME_SAMPLES],
                ours: [0; FRAME_SAMPLES],
                cleaned: [0; FRAME_SAMPLES],
                agent: [0; FRAME_SAMPLES],
                agent_cleaned: [0; FRAME_SAMPLES],
                stereo: [0; STEREO_FRAME],
                asr,
            },
        }
    }

    fn run(mut self) {
        let mut clock = MediaClock::new(Instant::now(), TICK);
        loop {
            let deadline = clock.next_deadline();
            loop {
                match self.commands.recv_deadline(deadline) {
                    Ok(MediaCommand::Shutdown) => {
                        self.remove_all("shutdown");
                        return;
                    }
                    Ok(cmd) => self.apply(cmd),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        self.remove_all("shutdown");
                        return;
                    }
                }
            }
            let now = Instant::now();
            let ticks = clock.on_wake(now);
            let m = self.shared.metrics.clone();
            if ticks.late_by > Duration::from_millis(5) {
                Metrics::inc(&m.media_late_ticks_total);
            }
            Metrics::add(&m.media_skipped_ticks_total, u64::from(ticks.skipped));
            if ticks.skipped > 0 {
                for call in &mut self.calls {
                    call.skip(now, ticks.skipped, &mut self.scratch, &self.shared);
                }
            }
            for _ in 0..ticks.due {
                Metrics::inc(&m.media_ticks_total);
                self.tick(now);
            }
        }
    }

    fn apply(&mut self, cmd: MediaCommand) {
        match cmd {
            MediaCommand::Add(new) => {
                let now = Instant::now();
                match MediaCall::new(*new, now, &self.shared) {
                    Ok(call) => self.calls.push(call),
                    Err((key, port, e)) => {
                        tracing::error!(key, error = %e, "cannot start media for call");
                        self.shared.abandon(key, port, None, "media_error");
                    }
                }
            }
            MediaCommand::Update { key, session } => {
                if let Some(call) = self.calls.iter_mut().find(|c| c.key == key) {
                    call.update(*session, Instant::now(), &self.shared);
                }
            }
            MediaCommand::InfoDigit {
                key,
                digit,
                duration_ms,
            } => {
                if let Some(call) = self.calls.iter_mut().find(|c| c.key == key) {
                    call.pending_info.push_back((digit, duration_ms));
                }
            }
            MediaCommand::Recognized { key, result } => {
                if let Some(call) = self.calls.iter_mut().find(|c| c.key == key) {
                    call.on_recognized(Instant::now(), result, &self.shared);
                }
            }
            MediaCommand::BackendResult { key, id, result } => {
                if let Some(call) = self.calls.iter_mut().find(|c| c.key == key) {
                    let now = Instant::now();
                    let detail = match &result {
                        Ok(_) => format!("#{id} ok"),
                        Err(BackendFailure::Refused) => format!("#{id} refused"),
                        Err(BackendFailure::Unavailable) => format!("#{id} unavailable"),
                    };
                    call.timeline(now, "backend_result", detail, &self.shared);
                    call.dialog_event(now, DialogEvent::BackendResult { id, result }, &self.shared);
                }
            }
            MediaCommand::Bridge { key, leg } => {
                if let Some(call) = self.calls.iter_mut().find(|c| c.key == key) {
                    call.bridge(*leg, Instant::now(), &self.shared);
                }
                // A call already gone drops the leg here, closing its sockets; the controller releases the
                // ports when it hears the call was removed.
            }
            MediaCommand::TransferResult { key, outcome } => {
                if let Some(call) = self.calls.iter_mut().find(|c| c.key == key) {
                    let now = Instant::now();
                    call.unhold(&self.shared);
                    call.dialog_event(now, DialogEvent::TransferResult(outcome), &self.shared);
                }
            }
            MediaCommand::Queue { key, announce } => {
                if let Some(call) = self.calls.iter_mut().find(|c| c.key == key) {
                    call.hold(Instant::now(), announce, &self.shared);
                }
            }
            MediaCommand::Remove { key } => {
                if let Some(i) = self.calls.iter().position(|c| c.key == key) {
                    let call = self.calls.swap_remove(i);
                    call.finish(&self.shared);
                }
            }
            MediaCommand::Shutdown => {}
        }
    }

    /// One tick for every call, in two passes: every call's packet goes out first, then every call listens
    /// (echo guard, VAD, endpointing, recording). Listening costs 10–50× more than sending; done call by call it
    /// delayed each packet by the listening of the calls before it on the thread, and that delay varied
    /// from tick to tick (packet-interval jitter grew with the call count). Nothing sent depends on this
    /// tick's listening: a barge-in heard now stops the prompt from the next frame either way.
    fn tick(&mut self, now: Instant) {
        self.each_call(|call, scratch, shared| call.tick_send(now, scratch, shared));
        self.each_call(|call, scratch, shared| call.tick_listen(now, scratch, shared));
    }

    /// Runs `f` on every call. A call for which it panics (a bug, never input we expect) is dropped on its
    /// own, with a hang-up, instead of taking the thread and every other call on it down.
    fn each_call(&mut self, mut f: impl FnMut(&mut MediaCall, &mut Scratch, &MediaShared)) {
        let mut i = 0;
        while i < self.calls.len() {
            let (call, scratch, shared) = (&mut self.calls[i], &mut self.scratch, &self.shared);
            let ok =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(call, scratch, shared)));
            if ok.is_ok() {
                i += 1;
                continue;
            }
            let call = self.calls.swap_remove(i);
            tracing::error!(call_id = %call.call_id, "media processing failed for this call; hanging it up");
            let (key, port) = (call.key, call.ports.port);
            let agent_port = call.agent.as_ref().map(|a| a.ports.port);
            // Close its sockets before the port goes back to the pool.
            drop(call);
            self.shared.abandon(key, port, agent_port, "media_fault");
        }
    }

    fn remove_all(&mut self, cause: &'static str) {
        for call in self.calls.drain(..) {
            let _ = self.shared.events.send(MediaEvent::Hangup {
                key: call.key,
                cause,
            });
            call.finish(&self.shared);
        }
    }
}

/// One call's media state, owned by exactly one media thread.
struct MediaCall {
    key: u64,
    call_id: String,
    ports: PortPair,
    session: RtpSession,
    player: PromptPlayer,
    barge_in: bool,
    dialog: Session,
    prompts: Arc<PromptCache>,
    /// A secret (PIN) is being collected: the caller's channel is silenced in the recording and nothing they
    /// say is recognised.
    sensitive: bool,
    goertzel: Option<GoertzelDetector>,
    /// The in-band key press in progress: digit, when it was reported, first frame of its tone.
    inband_active: Option<(char, Instant, u64)>,
    unifier: DtmfUnifier,
    pending_info: VecDeque<(char, u32)>,
    recorder: Option<CallRecorder>,
    rec_chunk: Vec<i16>,
    rec_chunk_first: u64,
    rec_frames: u64,
    started: Instant,
    last_rx: Instant,
    /// RTP + RTCP packets accepted so far, to notice traffic without looking at every packet.
    rx_seen: u64,
    /// Either side has put the call on hold: silence is expected, so the RTP timeout is suspended.
    held: bool,
    no_packet_timeout: Option<Duration>,
    max_duration: Duration,
    may_send: bool,
    hangup_requested: bool,
    frames: u64,
    speech: Option<CallSpeech>,
    /// Frame until which caller audio is not speech: a key press's tone (in-band or alongside RFC 4733).
    speech_muted_until: u64,
    /// What voxgate is saying, for the transcript: start (media time) and prompt fragments.
    bot_turn: Option<(Instant, Vec<Arc<str>>)>,
    /// The human agent's leg once the call is bridged.
    agent: Option<AgentMedia>,
    /// Queued for an agent: hold music loops whenever nothing else plays.
    on_hold: bool,
    /// Speech settings, for the agent leg's recogniser.
    speech_cfg: Option<PipelineConfig>,
    /// The flow's language: what the recogniser decodes and how amounts are read out.
    language: Language,
    /// What every Mandarin decode is prompted with first (whisper follows the prompt's script).
    language_prompt: Option<Arc<str>>,
    /// This tick's frames, from the send pass to the listen pass.
    held_frames: Box<HeldFrames>,
}

/// One tick's frames between its send and listen passes.
struct HeldFrames {
    caller: Frame,
    ours: Frame,
    agent: Frame,
}

/// The agent's side of a bridged call.
struct AgentMedia {
    session: RtpSession,
    ports: PortPair,
    speech: Option<SpeechPipeline>,
}

/// A call's ear: echo guard, VAD, barge-in and endpointing, plus what it has sent to the recogniser.
struct CallSpeech {
    pipeline: SpeechPipeline,
    /// The call's default endpointing (dialog steps may override it).
    endpointing: EndpointerConfig,
    /// Speech barge-in allowed by the site config.
    barge_in: bool,
    /// A tentative barge-in holds the prompt (pause policy).
    paused: bool,
    /// The biasing prompt of the current dialog step.
    prompt: Option<Arc<str>>,
    /// The call's biasing prompt when a step names none.
    default_prompt: Option<Arc<str>>,
}

impl MediaCall {
    fn new(
        new: NewCall,
        now: Instant,
        shared: &MediaShared,
    ) -> Result<Self, (u64, u16, StartError)> {
        let NewCall {
            key,
            call_id,
            ports,
            session,
            recording,
            flow,
            prompts,
            caller,
            called,
            no_packet_timeout,
            max_duration,
            inband_dtmf,
            speech,
            speech_barge_in,
            asr_prompt,
        } = new;
        let may_send = session.direction.may_send();
        let held = session.direction != Direction::SendRecv;
        let speech_cfg = speech;
        let language = match flow.language.as_str() {
            "zh" => Language::Mandarin,
            _ => Language::English,
        };
        let language_prompt: Option<Arc<str>> =
            (language == Language::Mandarin).then(|| Arc::from(crate::speech::MANDARIN_PROMPT));
        let asr_prompt = biasing_prompt(&language_prompt, asr_prompt.as_deref());
        let session = match RtpSession::new(session, now) {
            Ok(s) => s,
            Err(e) => return Err((key, ports.port, StartError::Session(e))),
        };
        let speech = match speech
            .map(|cfg| SpeechPipeline::new(cfg).map(|p| (p, cfg.endpointer)))
            .transpose()
        {
            Ok(p) => p.map(|(pipeline, endpointing)| CallSpeech {
                pipeline,
                endpointing,
                barge_in: speech_barge_in,
                paused: false,
                prompt: asr_prompt.clone(),
                default_prompt: asr_prompt,
            }),
            Err(e) => return Err((key, ports.port, StartError::Speech(e))),
        };
        let recorder = recording.map(|path| {
            shared.recordings.open(key, path);
            CallRecorder::new(RECORDER_DELAY_FRAMES)
        });
        let mut call = Self {
            key,
            call_id,
            ports,
            session,
            player: PromptPlayer::default(),
            barge_in: true,
            dialog: Session::new(flow),
            prompts,
            sensitive: false,
            goertzel: inband_dtmf.then(GoertzelDetector::default),
            inband_active: None,
            unifier: DtmfUnifier::default(),
            pending_info: VecDeque::with_capacity(4),
            recorder,
            rec_chunk: shared.recordings.buffer(),
            rec_chunk_first: 0,
            rec_frames: 0,
            started: now,
            last_rx: now,
            rx_seen: 0,
            held,
            no_packet_timeout,
            max_duration,
            may_send,
            hangup_requested: false,
            frames: 0,
            speech,
            speech_muted_until: 0,
            bot_turn: None,
            on_hold: false,
            agent: None,
            speech_cfg,
            language,
            language_prompt,
            held_frames: Box::new(HeldFrames {
                caller: [0; FRAME_SAMPLES],
                ours: [0; FRAME_SAMPLES],
                agent: [0; FRAME_SAMPLES],
            }),
        };
        // The dialog starts listening when it asks its first question.
        call.dialog_event(now, DialogEvent::Started { caller, called }, shared);
        Ok(call)
    }

    fn update(&mut self, cfg: SessionConfig, now: Instant, shared: &MediaShared) {
        let may_send = cfg.direction.may_send();
        self.held = cfg.direction != Direction::SendRecv;
        self.last_rx = now;
        if let Err(e) = self.session.update(cfg, now) {
            tracing::warn!(call_id = %self.call_id, error = %e, "re-INVITE session update failed");
            return;
        }
        if may_send != self.may_send {
            self.may_send = may_send;
            let kind = if may_send { "resumed" } else { "held" };
            self.timeline(now, kind, String::new(), shared);
        }
    }

    fn timeline(&self, at: Instant, kind: &'static str, detail: String, shared: &MediaShared) {
        let _ = shared.events.send(MediaEvent::Timeline {
            key: self.key,
            at,
            kind,
            detail,
        });
    }

    fn request_hangup(&mut self, cause: &'static str, shared: &MediaShared) {
        if !self.hangup_requested {
            self.hangup_requested = true;
            let _ = shared.events.send(MediaEvent::Hangup {
                key: self.key,
                cause,
            });
        }
    }

    /// First half of a tick: receive, run keys and dialog deadlines, produce and send our frame. The frames
    /// the second half needs are kept in [`MediaCall::held_frames`].
    fn tick_send(&mut self, now: Instant, s: &mut Scratch, shared: &MediaShared) {
        self.frames += 1;
        self.drain_sockets(now, s);

        // Caller audio and digits.
        self.session.poll_audio(now, &mut s.caller);
        while let Some(ev) = self.session.poll_dtmf() {
            self.offer_digit(now, ev, shared);
        }
        while let Some((digit, duration_ms)) = self.pending_info.pop_front() {
            let ev = DtmfEvent {
                digit,
                source: DtmfSource::SipInfo,
                at: now,
                duration_ms,
            };
            self.offer_digit(now, ev, shared);
        }
        self.detect_inband(now, &s.caller, shared);

        // Dialog deadlines.
        if self.dialog.poll_timeout().is_some_and(|t| now >= t) {
            self.dialog_event(now, DialogEvent::Timeout, shared);
        }
        if self.sensitive {
            // Whatever the caller says while a PIN is keyed stays out of the recording.
            let this_frame = self.frames.saturating_sub(1);
            self.mask(this_frame, this_frame + INBAND_GUARD);
        }

        let bridged = self.bridge_tick(now, s);

        // Our audio: prompts advance only while we may send, so a held caller resumes where they left off,
        // and not while a tentative barge-in holds the prompt. On a bridged call the caller hears the agent.
        let paused = self.speech.as_ref().is_some_and(|sp| sp.paused);
        if self.may_send && !paused {
            let tick = self.player.next_frame(&mut s.ours);
            if bridged {
                if tick == PlayerTick::Idle {
                    s.ours = s.agent;
                } else {
                    // An agent who answers while our last prompt plays is heard over it, not lost.
                    for (o, a) in s.ours.iter_mut().zip(&s.agent) {
                        *o = o.saturating_add(*a);
                    }
                }
            }
            match tick {
                PlayerTick::Finished => {
                    self.end_bot_turn(self.media_time() + TICK, false, shared);
                    if let Some(sp) = self.speech.as_mut() {
                        sp.pipeline.prompt_stopped();
                    }
                    self.dialog_event(now, DialogEvent::PromptDone, shared);
                    if self.on_hold {
                        self.start_music(shared);
                    }
                }
                PlayerTick::Playing | PlayerTick::Idle => {}
            }
        } else {
            s.ours.fill(0);
        }
        if let Some((dest, len)) = self.session.send_audio(now, &s.ours, &mut s.out) {
            match self
                .ports
                .rtp
                .send_to(s.out.get(..len).unwrap_or(&[]), dest)
            {
                Ok(_) => Metrics::inc(&shared.metrics.rtp_packets_sent_total),
                Err(_) => Metrics::inc(&shared.metrics.rtp_send_errors_total),
            }
        }
        if let Some((dest, len)) = self.session.poll_rtcp(now, &mut s.out) {
            let _ = self
                .ports
                .rtcp
                .send_to(s.out.get(..len).unwrap_or(&[]), dest);
        }
        let held = &mut self.held_frames;
        held.caller = s.caller;
        held.ours = s.ours;
        held.agent = s.agent;
    }

    /// Second half of a tick: the caller's (and agent's) ear, the recording and the call's time-outs.
    fn tick_listen(&mut self, now: Instant, s: &mut Scratch, shared: &MediaShared) {
        let held = &self.held_frames;
        s.caller = held.caller;
        s.ours = held.ours;
        s.agent = held.agent;
        self.listen(now, s, shared);
        // A no-op without an agent leg: the same test that made the send pass bridge this tick.
        self.listen_agent(now, s, shared);
        self.record(s, shared);

        if let Some(limit) = self.no_packet_timeout {
            // Once a second is plenty for a timeout measured in seconds.
            if self.frames % 50 == 0 {
                let st = self.session.stats();
                let rx = st.packets_received + st.rtcp_received;
                if rx != self.rx_seen || self.held {
                    self.rx_seen = rx;
                    self.last_rx = now;
                }
            }
            if now.duration_since(self.last_rx) > limit {
                self.request_hangup("rtp_timeout", shared);
            }
        }
        if now.duration_since(self.started) > self.max_duration {
            self.request_hangup("max_duration", shared);
        }
    }

    /// Start of the current frame on the call's media clock (frame-exact, unlike the wake-up time).
    fn media_time(&self) -> Instant {
        self.started + TICK * (self.frames.saturating_sub(1).min(u64::from(u32::MAX)) as u32)
    }

    /// Runs the caller's audio through the speech pipeline and acts on what it hears.
    fn listen(&mut self, now: Instant, s: &mut Scratch, shared: &MediaShared) {
        let at = self.media_time();
        let Some(sp) = self.speech.as_mut() else {
            return;
        };
        if let Err(e) = sp
            .pipeline
            .handle_frame(&s.ours, &s.caller, at, &mut s.cleaned)
        {
            tracing::warn!(call_id = %self.call_id, error = %e, "speech pipeline error; speech off for this call");
            self.speech = None;
            return;
        }
        if self.frames < self.speech_muted_until || self.inband_active.is_some() {
            sp.pipeline.discard_utterance(at);
        }
        while let Some(ev) = self.speech.as_mut().and_then(|sp| sp.pipeline.poll_event()) {
            self.on_speech(now, ev, s, shared);
        }
    }

    fn on_speech(&mut self, now: Instant, ev: SpeechEvent, s: &mut Scratch, shared: &MediaShared) {
        match ev {
            SpeechEvent::BargeIn(BargeInEvent::Pause { .. }) => {
                if let Some(sp) = self.speech.as_mut() {
                    sp.paused = true;
                }
            }
            SpeechEvent::BargeIn(BargeInEvent::Resume { at }) => {
                if let Some(sp) = self.speech.as_mut() {
                    sp.paused = false;
                }
                self.timeline(at, "barge_in_resumed", String::new(), shared);
            }
            SpeechEvent::BargeIn(BargeInEvent::BargeIn { at }) => {
                if let Some(sp) = self.speech.as_mut() {
                    sp.paused = false;
                }
                if self.barge_in && self.player.stop_and_flush() {
                    Metrics::inc(&shared.metrics.barge_ins_total);
                    let stop = self.media_time() + TICK;
                    self.end_bot_turn(stop, true, shared);
                    let after = stop.saturating_duration_since(at).as_millis();
                    self.timeline(
                        at,
                        "barge_in",
                        format!("speech; prompt stopped {after} ms after onset"),
                        shared,
                    );
                    self.dialog_event(now, DialogEvent::BargeIn, shared);
                }
            }
            SpeechEvent::SpeechStarted { utterance, at } => {
                self.timeline(at, "speech_started", format!("#{utterance}"), shared);
                self.dialog_event(now, DialogEvent::SpeechStarted, shared);
            }
            SpeechEvent::Partial { utterance, audio } => {
                if !self.submit_asr(s, utterance, audio, true) {
                    Metrics::inc(&shared.metrics.asr_partials_shed_total);
                }
            }
            SpeechEvent::Utterance {
                utterance,
                start,
                end,
                reason,
                audio,
            } => {
                Metrics::inc(&shared.metrics.utterances_total);
                if let Some(v) = shared.voiceprints.as_ref().filter(|_| !self.sensitive) {
                    v.speech(self.key, audio.clone());
                }
                let submitted = self.submit_asr(s, utterance, audio, false);
                // Ended by a key press: the key was the answer; the words are for the record.
                let record_only = reason == UtteranceEnd::KeyPress;
                let _ = shared.events.send(MediaEvent::Utterance {
                    key: self.key,
                    utterance,
                    start,
                    end,
                    cut: reason == UtteranceEnd::MaxLength,
                    submitted,
                    agent: false,
                    record_only,
                });
                if !submitted && !record_only {
                    // The recogniser is saturated: ask for the keypad instead of making the caller wait.
                    Metrics::inc(&shared.metrics.asr_overloaded_total);
                    self.timeline(now, "asr_overloaded", format!("#{utterance}"), shared);
                    self.dialog_event(now, DialogEvent::SpeechFailed { overloaded: true }, shared);
                }
            }
            SpeechEvent::NoInput => {}
        }
        // Bridged: the dialog asks nothing more, but both sides are still transcribed.
        if self.agent.is_some() {
            if let Some(sp) = self
                .speech
                .as_mut()
                .filter(|sp| !sp.pipeline.is_listening())
            {
                let _ = sp.pipeline.listen(sp.endpointing, now);
            }
        }
    }

    /// Attaches the agent's leg: from the next tick the caller hears the agent and the agent the caller.
    /// Queued: the announcement (after whatever still plays), then hold music. Music is not a turn and
    /// cannot be barged in on.
    fn hold(&mut self, now: Instant, announce: Vec<Say>, shared: &MediaShared) {
        if self.on_hold && self.bot_turn.is_none() {
            // Only music is playing: it gives way to the announcement.
            self.player.stop_and_flush();
        }
        self.on_hold = true;
        if announce.is_empty() {
            if !self.player.is_playing() {
                self.start_music(shared);
            }
        } else {
            self.run_actions(
                now,
                vec![Action::Play {
                    items: announce,
                    barge_in: false,
                }],
                shared,
            );
        }
    }

    fn start_music(&mut self, shared: &MediaShared) {
        let music = shared
            .hold_music
            .clone()
            .or_else(|| self.prompts.get("music/hold"));
        match music {
            Some(clip) => {
                self.barge_in = false;
                if self.player.enqueue(Source::Loop(clip)).is_err() {
                    tracing::warn!(call_id = %self.call_id, "cannot queue hold music");
                }
            }
            None => tracing::warn!(call_id = %self.call_id, "no hold music (music/hold)"),
        }
    }

    /// Leaves the queue (bridged, or the transfer failed): announcements and music stop at once.
    fn unhold(&mut self, shared: &MediaShared) {
        if !self.on_hold {
            return;
        }
        self.on_hold = false;
        if self.player.stop_and_flush() {
            self.end_bot_turn(self.media_time(), true, shared);
        }
    }

    fn bridge(&mut self, leg: BridgeLeg, now: Instant, shared: &MediaShared) {
        self.unhold(shared);
        let session = match RtpSession::new(leg.session, now) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(call_id = %self.call_id, error = %e, "cannot start the agent leg's media");
                return;
            }
        };
        let speech = self.speech_cfg.and_then(|cfg| {
            let mut p = SpeechPipeline::new(cfg).ok()?;
            p.listen(cfg.endpointer, now).ok()?;
            Some(p)
        });
        if let Some(sp) = self.speech.as_mut() {
            let _ = sp.pipeline.listen(sp.endpointing, now);
        }
        self.agent = Some(AgentMedia {
            session,
            ports: leg.ports,
            speech,
        });
        self.timeline(now, "bridged", String::new(), shared);
    }

    /// Moves one frame each way on a bridged call; false when there is no agent leg.
    fn bridge_tick(&mut self, now: Instant, s: &mut Scratch) -> bool {
        let Some(agent) = self.agent.as_mut() else {
            return false;
        };
        drain(&agent.ports.rtp, &mut s.packet, |src, data| {
            let _ = agent.session.handle_rtp(now, src, data);
        });
        drain(&agent.ports.rtcp, &mut s.packet, |src, data| {
            let _ = agent.session.handle_rtcp(now, src, data);
        });
        agent.session.poll_audio(now, &mut s.agent);
        while agent.session.poll_dtmf().is_some() {}
        if let Some((dest, len)) = agent.session.send_audio(now, &s.caller, &mut s.out) {
            let _ = agent
                .ports
                .rtp
                .send_to(s.out.get(..len).unwrap_or(&[]), dest);
        }
        if let Some((dest, len)) = agent.session.poll_rtcp(now, &mut s.out) {
            let _ = agent
                .ports
                .rtcp
                .send_to(s.out.get(..len).unwrap_or(&[]), dest);
        }
        true
    }

    /// Transcribes the agent: their frame, with the caller's (what the agent hears) as the echo reference.
    fn listen_agent(&mut self, now: Instant, s: &mut Scratch, shared: &MediaShared) {
        let at = self.media_time();
        let Some(p) = self.agent.as_mut().and_then(|a| a.speech.as_mut()) else {
            return;
        };
        if p.handle_frame(&s.caller, &s.agent, at, &mut s.agent_cleaned)
            .is_err()
        {
            return;
        }
        let mut relisten = false;
        while let Some(ev) = p.poll_event() {
            match ev {
                SpeechEvent::Utterance {
                    utterance,
                    start,
                    end,
                    reason,
                    audio,
                } => {
                    let utterance = utterance + AGENT_UTTERANCE_BASE;
                    let submitted = s.asr.as_mut().is_some_and(|asr| {
                        asr.submit(AsrJob {
                            call: CallKey(self.key),
                            utterance,
                            audio,
                            partial: false,
                            prompt: self.language_prompt.clone(),
                            language: Some(self.language),
                        })
                        .is_ok()
                    });
                    let _ = shared.events.send(MediaEvent::Utterance {
                        key: self.key,
                        utterance,
                        start,
                        end,
                        cut: reason == UtteranceEnd::MaxLength,
                        submitted,
                        agent: true,
                        record_only: true,
                    });
                    relisten = true;
                }
                SpeechEvent::NoInput => relisten = true,
                _ => {}
            }
        }
        if relisten {
            if let (Some(cfg), false) = (self.speech_cfg, p.is_listening()) {
                let _ = p.listen(cfg.endpointer, now);
            }
        }
    }

    /// Hands audio to the ASR pool without waiting; false when the pool refused it (or there is none).
    fn submit_asr(
        &self,
        s: &mut Scratch,
        utterance: u32,
        audio: Arc<[i16]>,
        partial: bool,
    ) -> bool {
        let Some(asr) = s.asr.as_mut().filter(|_| !self.sensitive) else {
            return false;
        };
        asr.submit(AsrJob {
            call: CallKey(self.key),
            utterance,
            audio,
            partial,
            prompt: self.speech.as_ref().and_then(|sp| sp.prompt.clone()),
            language: Some(self.language),
        })
        .is_ok()
    }

    fn on_recognized(&mut self, now: Instant, result: Recognition, shared: &MediaShared) {
        let event = match result {
            Recognition::Text { text, confidence } => DialogEvent::Speech {
                nbest: vec![(text, confidence)],
            },
            Recognition::Failed { overloaded } => DialogEvent::SpeechFailed { overloaded },
        };
        self.dialog_event(now, event, shared);
    }

    fn dialog_event(&mut self, now: Instant, event: DialogEvent, shared: &MediaShared) {
        let actions = self.dialog.step(event, now);
        self.run_actions(now, actions, shared);
    }

    /// Closes voxgate's current turn for the transcript.
    fn end_bot_turn(&mut self, end: Instant, interrupted: bool, shared: &MediaShared) {
        if let Some((start, prompts)) = self.bot_turn.take() {
            let _ = shared.events.send(MediaEvent::BotTurn {
                key: self.key,
                start,
                end,
                prompts,
                interrupted,
            });
        }
    }

    fn drain_sockets(&mut self, now: Instant, s: &mut Scratch) {
        drain(&self.ports.rtp, &mut s.packet, |src, data| {
            if let Err(e) = self.session.handle_rtp(now, src, data) {
                tracing::trace!(error = %e, "bad RTP packet");
            }
        });
        drain(&self.ports.rtcp, &mut s.packet, |src, data| {
            if let Err(e) = self.session.handle_rtcp(now, src, data) {
                tracing::trace!(error = %e, "bad RTCP packet");
            }
        });
    }

    /// Runs the in-band detector on this tick's caller frame (frame index = `self.frames - 1`, the same
    /// index the recorder gives it) and masks the tone's frames in the recording.
    fn detect_inband(&mut self, now: Instant, caller: &Frame, shared: &MediaShared) {
        let Some(g) = self.goertzel.as_mut() else {
            return;
        };
        let this_frame = self.frames.saturating_sub(1);
        let samples = FRAME_SAMPLES as u64;
        match g.process(caller) {
            Some(InbandDtmf::Started {
                digit,
                start_sample,
            }) => {
                let first = (start_sample / samples).saturating_sub(INBAND_GUARD);
                self.mask(first, this_frame + INBAND_GUARD);
                self.inband_active = Some((digit, now, first));
                let ev = DtmfEvent {
                    digit,
                    source: DtmfSource::InBand,
                    at: now,
                    duration_ms: 0,
                };
                self.offer_digit(now, ev, shared);
            }
            Some(InbandDtmf::Ended {
                digit,
                start_sample,
                end_sample,
            }) => {
                let first = (start_sample / samples).saturating_sub(INBAND_GUARD);
                self.mask(first, end_sample / samples + INBAND_GUARD);
                if let Some((_, at, _)) = self.inband_active.take() {
                    let ms = (end_sample.saturating_sub(start_sample) / 8).min(u64::from(u32::MAX))
                        as u32;
                    self.unifier.extend(DtmfSource::InBand, digit, at, ms);
                }
            }
            None => {
                // Keep masking a tone that is still sounding.
                if self.inband_active.is_some() {
                    self.mask(this_frame, this_frame + INBAND_GUARD);
                }
            }
        }
    }

    fn mask(&mut self, from: u64, to: u64) {
        if let Some(rec) = self.recorder.as_mut() {
            if let Err(e) = rec.mask_caller(from, to) {
                tracing::warn!(call_id = %self.call_id, error = %e, "DTMF mask came too late for part of a tone");
            }
        }
    }

    /// Passes a digit from any source through the unifier; a new key press goes to the dialog.
    fn offer_digit(&mut self, now: Instant, mut ev: DtmfEvent, shared: &MediaShared) {
        // Durations come from the network: a real key press is well under this.
        ev.duration_ms = ev.duration_ms.min(MAX_DTMF_MS);
        if ev.source != DtmfSource::InBand {
            // The trunk may send the tone in the audio as well: mask around the report.
            let this_frame = self.frames.saturating_sub(1);
            let dur_frames = u64::from(ev.duration_ms).div_ceil(20);
            self.mask(
                this_frame.saturating_sub(RECORDER_DELAY_FRAMES as u64),
                this_frame + DTMF_MASK_AFTER.max(dur_frames + INBAND_GUARD),
            );
        }
        if let Some(ev) = self.unifier.push(ev) {
            self.on_digit(now, ev, shared);
        }
    }

    fn on_digit(&mut self, now: Instant, ev: DtmfEvent, shared: &MediaShared) {
        Metrics::inc(&shared.metrics.dtmf_digits_total);
        // A key press is not speech: its in-band tone must not become an utterance. What the caller said
        // before it stays on the record (an in-band tone is reported a few frames after it started).
        self.speech_muted_until = self.frames + DTMF_MASK_AFTER;
        if let Some(sp) = self.speech.as_mut() {
            let tone_from = ev.at.checked_sub(KEY_TONE_LEAD).unwrap_or(ev.at);
            sp.pipeline.end_utterance_at_key(tone_from, now);
        }
        let actions = self.dialog.step(DialogEvent::Digit(ev.digit), now);
        // The digit itself goes on the timeline only as the dialog engine chose to show it.
        let source = match ev.source {
            DtmfSource::Rfc4733 => "rfc4733",
            DtmfSource::InBand => "inband",
            DtmfSource::SipInfo => "sip_info",
        };
        let shown = actions.iter().find_map(|a| match a {
            Action::RecordDigit(c) => Some(*c),
            _ => None,
        });
        self.timeline(
            now,
            "dtmf",
            format!("{} via {source}", shown.unwrap_or('*')),
            shared,
        );
        self.run_actions(now, actions, shared);
    }

    fn run_actions(&mut self, now: Instant, actions: Vec<Action>, shared: &MediaShared) {
        for action in actions {
            match action {
                Action::Play { items, barge_in } => {
                    self.barge_in = barge_in;
                    let mut names = String::new();
                    let mut fragments = Vec::new();
                    for item in &items {
                        self.enqueue(item, &mut names, &mut fragments);
                    }
                    if let Some(sp) = self.speech.as_mut() {
                        sp.paused = false;
                        sp.pipeline.prompt_started(barge_in && sp.barge_in);
                    }
                    match self.bot_turn.as_mut() {
                        Some((_, queued)) => queued.extend(fragments),
                        // Playback starts with the next frame.
                        None => self.bot_turn = Some((self.media_time() + TICK, fragments)),
                    }
                    self.timeline(now, "prompt", names, shared);
                }
                // A prompt queued with `barge_in: false` (e.g. a legal disclosure) plays to the end.
                Action::StopPlayback if self.barge_in => {
                    if self.player.stop_and_flush() {
                        self.end_bot_turn(self.media_time(), true, shared);
                        self.timeline(now, "barge_in", String::new(), shared);
                    }
                    if let Some(sp) = self.speech.as_mut() {
                        sp.paused = false;
                        sp.pipeline.prompt_stopped();
                    }
                }
                Action::StopPlayback => {}
                Action::RecordDigit(c) => {
                    let _ = shared.events.send(MediaEvent::Digit {
                        key: self.key,
                        shown: c,
                    });
                }
                Action::Listen(listen) => {
                    if let Some(sp) = self.speech.as_mut() {
                        if listen.speech && !self.sensitive {
                            let cfg = endpointing(listen.endpointing, sp.endpointing);
                            if let Err(e) = sp.pipeline.listen(cfg, now) {
                                tracing::warn!(call_id = %self.call_id, error = %e, "cannot start listening");
                            }
                            sp.prompt = match listen.bias.as_deref() {
                                Some(b) => biasing_prompt(&self.language_prompt, Some(b)),
                                None => sp.default_prompt.clone(),
                            };
                        } else {
                            // Keypad-only step: nothing said is recognised.
                            sp.pipeline.stop_listening();
                        }
                    }
                }
                Action::Sensitive(on) => {
                    self.sensitive = on;
                    if on {
                        if let Some(sp) = self.speech.as_mut() {
                            sp.pipeline.stop_listening();
                        }
                        // Frames still in the recorder's delay line are silenced too.
                        let this_frame = self.frames.saturating_sub(1);
                        self.mask(
                            this_frame.saturating_sub(RECORDER_DELAY_FRAMES as u64),
                            this_frame + INBAND_GUARD,
                        );
                    }
                    self.timeline(
                        now,
                        "sensitive",
                        if on { "on" } else { "off" }.into(),
                        shared,
                    );
                }
                Action::Invoke { id, op, args } => {
                    self.timeline(now, "backend", format!("#{id} {}", op.name()), shared);
                    let _ = shared.events.send(MediaEvent::Invoke {
                        key: self.key,
                        id,
                        op,
                        args,
                    });
                }
                Action::Transfer {
                    skill,
                    priority,
                    reason,
                } => {
                    self.timeline(now, "transfer", format!("{skill} ({reason})"), shared);
                    let _ = shared.events.send(MediaEvent::Transfer {
                        key: self.key,
                        skill,
                        priority,
                        reason,
                    });
                }
                Action::HangUp(cause) => {
                    self.request_hangup(cause.as_str(), shared);
                }
                Action::SlotFilled {
                    name,
                    display,
                    confidence,
                } => self.note(
                    now,
                    DialogNote::SlotFilled {
                        name,
                        display,
                        confidence,
                    },
                    shared,
                ),
                Action::SlotCleared { name } => {
                    self.note(now, DialogNote::SlotCleared { name }, shared)
                }
                Action::Analytics(a) => self.note(now, DialogNote::Analytics(a), shared),
            }
        }
    }

    fn note(&self, at: Instant, note: DialogNote, shared: &MediaShared) {
        let _ = shared.events.send(MediaEvent::Dialog {
            key: self.key,
            at,
            note,
        });
    }

    fn enqueue(&mut self, item: &Say, names: &mut String, played: &mut Vec<Arc<str>>) {
        let zh = self.language == Language::Mandarin;
        let fragments: Vec<Arc<str>> = match item {
            Say::Prompt(p) => vec![p.clone()],
            Say::Money {
                minor_units,
                currency,
            } => keys(if zh {
                readout::zh::currency(*minor_units, currency)
            } else {
                readout::currency(*minor_units, currency)
            }),
            Say::Digits(d) => keys(if zh {
                readout::zh::digits(d)
            } else {
                readout::digits(d)
            }),
            Say::Number(n) => {
                let mut k = if *n < 0 {
                    vec![Arc::from("currency/minus")]
                } else {
                    Vec::new()
                };
                k.extend(keys(if zh {
                    readout::zh::number(n.unsigned_abs())
                } else {
                    readout::number(n.unsigned_abs())
                }));
                k
            }
        };
        for frag in fragments {
            match self.prompts.get(&frag) {
                Some(clip) => {
                    if self.player.enqueue(Source::Clip(clip)).is_err() {
                        tracing::warn!(call_id = %self.call_id, prompt = %frag, "prompt queue full");
                    }
                }
                None => tracing::warn!(call_id = %self.call_id, prompt = %frag, "missing prompt"),
            }
            if !names.is_empty() {
                names.push(' ');
            }
            names.push_str(&frag);
            played.push(frag);
        }
    }

    fn record(&mut self, s: &mut Scratch, shared: &MediaShared) {
        let Some(rec) = self.recorder.as_mut() else {
            return;
        };
        if rec.push(&s.caller, &s.ours, &mut s.stereo) {
            if self.rec_chunk.is_empty() {
                self.rec_chunk_first = self.rec_frames;
            }
            self.rec_chunk.extend_from_slice(&s.stereo);
            self.rec_frames += 1;
            if self.rec_chunk.len() >= CHUNK_FRAMES * STEREO_FRAME {
                let next = shared.recordings.buffer();
                let full = std::mem::replace(&mut self.rec_chunk, next);
                shared
                    .recordings
                    .submit(self.key, self.rec_chunk_first, full);
            }
        }
    }

    /// The thread stalled past the catch-up limit: keep RTP timing and the recording aligned with the wall
    /// clock by accounting for the missed frames as silence.
    fn skip(&mut self, now: Instant, n: u32, s: &mut Scratch, shared: &MediaShared) {
        self.session.skip_frames(now, n);
        s.caller.fill(0);
        s.ours.fill(0);
        for _ in 0..n {
            self.frames += 1;
            // The detector counts samples: feed it the same silence so its positions stay frame-aligned.
            if let Some(g) = self.goertzel.as_mut() {
                let _ = g.process(&s.caller);
            }
            self.record(s, shared);
        }
    }

    fn finish(mut self, shared: &MediaShared) {
        self.end_bot_turn(self.media_time(), true, shared);
        // The dialog's last word on a call that ended under it (caller hung up): its analytics only.
        let now = Instant::now();
        for action in self.dialog.step(DialogEvent::Hangup, now) {
            if let Action::Analytics(a) = action {
                self.note(now, DialogNote::Analytics(a), shared);
            }
        }
        if let Some(mut rec) = self.recorder.take() {
            let mut tail = Vec::new();
            rec.finish(&mut tail);
            if self.rec_chunk.is_empty() {
                self.rec_chunk_first = self.rec_frames;
            }
            self.rec_chunk.extend_from_slice(&tail);
            let chunk = std::mem::take(&mut self.rec_chunk);
            shared
                .recordings
                .submit(self.key, self.rec_chunk_first, chunk);
            shared.recordings.close(self.key);
        }
        let stats = stats_json(&self.session.stats());
        let (key, port) = (self.key, self.ports.port);
        let agent_port = self.agent.as_ref().map(|a| a.ports.port);
        // Close the sockets before the port number goes back to the pool, so it can be bound again at once.
        drop(self);
        let _ = shared.events.send(MediaEvent::Removed {
            key,
            port,
            agent_port,
            stats,
        });
    }
}

/// The recogniser's prompt: the language's own (Mandarin's script instruction) followed by the step's or
/// call's domain words.
fn biasing_prompt(language: &Option<Arc<str>>, bias: Option<&str>) -> Option<Arc<str>> {
    match (language, bias) {
        (Some(l), Some(b)) => Some(Arc::from(format!("{l}{b}"))),
        (Some(l), None) => Some(l.clone()),
        (None, b) => b.map(Arc::from),
    }
}

fn keys(fragments: Vec<&'static str>) -> Vec<Arc<str>> {
    fragments.into_iter().map(Arc::from).collect()
}

/// A dialog step's endpointing preset on top of the site's tuning (VAD threshold, pre-roll, onset).
fn endpointing(step: Endpointing, site: EndpointerConfig) -> EndpointerConfig {
    let preset = match step {
        Endpointing::FreeSpeech => return site,
        Endpointing::YesNo => EndpointerConfig::yes_no(),
        Endpointing::DigitString => EndpointerConfig::digit_string(),
    };
    // No-input timing stays the dialog's (the site config has it off): an endpointer timer would stop
    // listening part-way through a long question and the answer would go unheard.
    EndpointerConfig {
        end_silence_ms: preset.end_silence_ms,
        max_utterance_ms: preset.max_utterance_ms,
        ..site
    }
}

/// Why a call's media could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Session(#[from] voxgate_media::session::SessionError),
    #[error(transparent)]
    Speech(#[from] voxgate_media::speech::PipelineError),
}

/// The figures a telecom engineer looks at first, for the call record.
fn stats_json(s: &SessionStats) -> serde_json::Value {
    serde_json::json!({
        "packets_sent": s.packets_sent,
        "packets_received": s.packets_received,
        "lost": s.lost,
        "late": s.late,
        "duplicate": s.duplicate,
        "concealed": s.concealed,
        "jitter_ms": s.jitter_ms,
        "rtt_ms": s.rtt_ms,
        "latched_remote": s.latched_remote.map(|a| a.to_string()),
        "foreign_source_drops": s.foreign_source_drops,
        "remote_fraction_lost": s.remote_fraction_lost,
        "remote_jitter_ms": s.remote_jitter_ms,
        "rtcp_sent": s.rtcp_sent,
        "rtcp_received": s.rtcp_received,
        "dtmf_received": s.dtmf_received,
        "decode_errors": s.decode_errors,
    })
}

/// Reads every datagram waiting on a non-blocking socket.
fn drain(sock: &UdpSocket, buf: &mut [u8], mut f: impl FnMut(std::net::SocketAddr, &[u8])) {
    // Bounded so a flood on one call cannot starve the others on this thread.
    for _ in 0..64 {
        match sock.recv_from(buf) {
            Ok((n, src)) => f(src, buf.get(..n).unwrap_or(&[])),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => continue,
            Err(_) => break,
        }
    }
}

/// Keeps the call → media-thread assignment; new calls go to the least-loaded thread.
pub struct MediaPool {
    threads: Vec<MediaThread>,
    load: Vec<usize>,
    owner: HashMap<u64, usize>,
}

impl MediaPool {
    pub fn new(threads: Vec<MediaThread>) -> Self {
        let load = vec![0; threads.len()];
        Self {
            threads,
            load,
            owner: HashMap::new(),
        }
    }

    /// Hands the call to the least-loaded live thread. A thread found dead is never chosen again; when none
    /// is left the call comes back so its ports can be released.
    pub fn add(&mut self, call: NewCall) -> Result<(), Box<NewCall>> {
        let mut cmd = MediaCommand::Add(Box::new(call));
        loop {
            let Some((idx, _)) = self
                .load
                .iter()
                .enumerate()
                .filter(|(_, l)| **l != usize::MAX)
                .min_by_key(|(_, l)| **l)
            else {
                return match cmd {
                    MediaCommand::Add(call) => Err(call),
                    _ => Ok(()),
                };
            };
            let Some(t) = self.threads.get(idx) else {
                return Ok(());
            };
            let key = match &cmd {
                MediaCommand::Add(c) => c.key,
                _ => return Ok(()),
            };
            match t.commands.send(cmd) {
                Ok(()) => {
                    self.owner.insert(key, idx);
                    if let Some(l) = self.load.get_mut(idx) {
                        *l += 1;
                    }
                    return Ok(());
                }
                Err(crossbeam_channel::SendError(back)) => {
                    tracing::error!(thread = idx, "media thread is gone; not using it again");
                    if let Some(l) = self.load.get_mut(idx) {
                        *l = usize::MAX;
                    }
                    cmd = back;
                }
            }
        }
    }

    /// The command queue of the call's thread, for answers produced off the signalling task.
    pub fn commands_for(&self, key: u64) -> Option<Sender<MediaCommand>> {
        let i = self.owner.get(&key)?;
        self.threads.get(*i).map(|t| t.commands.clone())
    }

    pub fn send(&self, key: u64, cmd: MediaCommand) -> bool {
        let Some(t) = self.owner.get(&key).and_then(|i| self.threads.get(*i)) else {
            return false;
        };
        t.commands.send(cmd).is_ok()
    }

    /// The call left its thread (reported by [`MediaEvent::Removed`]).
    pub fn forget(&mut self, key: u64) {
        if let Some(idx) = self.owner.remove(&key) {
            if let Some(l) = self.load.get_mut(idx).filter(|l| **l != usize::MAX) {
                *l = l.saturating_sub(1);
            }
        }
    }

    pub fn shutdown(self) {
        for t in &self.threads {
            let _ = t.commands.send(MediaCommand::Shutdown);
        }
        for t in self.threads {
            let _ = t.handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_presets_never_arm_an_endpointer_no_input_timer() {
        // The site config leaves no-input to the dialog; a preset's timer would stop listening while a long
        // question is still playing and the caller's answer would be lost.
        let site = EndpointerConfig {
            no_input_ms: 0,
            ..EndpointerConfig::free_speech()
        };
        for step in [
            Endpointing::FreeSpeech,
            Endpointing::YesNo,
            Endpointing::DigitString,
        ] {
            let cfg = endpointing(step, site);
            assert_eq!(cfg.no_input_ms, 0, "{step:?}");
        }
        assert_eq!(endpointing(Endpointing::YesNo, site).end_silence_ms, 500);
        assert_eq!(
            endpointing(Endpointing::DigitString, site).end_silence_ms,
            1_500
        );
    }
}
