//! Caller voiceprints on the appliance. One worker thread embeds callers' speech with the GE2E speaker encoder
//! to verify enrolled customers in the background and to enrol consenting ones.
//!
//! - Media threads hand it each finished caller turn without waiting. The queue is bounded: when it is full the
//!   turn is dropped and counted, and the call only has less speech to decide on.
//! - The controller asks it the flow's `voiceprint_verify` and `voiceprint_enroll` operations. Jobs are handled
//!   in arrival order, so a verification asked after a turn always includes that turn.
//! - Templates (and the account the customer verified with when enrolling) live in their own SQLite file. Raw
//!   speech stays in memory only while the call lasts.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::mpsc::UnboundedSender;
use voxgate_asr::voiceprint::{self, SpeakerEncoder, Template, Verdict, INPUT_RATE_HZ};

use crate::media_engine::MediaEvent;
use crate::metrics::Metrics;

/// Turns waiting for the worker, all calls together.
const QUEUE: usize = 256;
/// Speech kept per call (the most recent); enough for any enrolment or verification.
const MAX_CALL_SPEECH: Duration = Duration::from_secs(60);
/// How long an operation waits for the worker before the flow is told it failed.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum VoiceprintServiceError {
    #[error("voiceprint model: {0}")]
    Model(#[from] voiceprint::VoiceprintError),
    #[error("voiceprint store {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot start the voiceprint worker: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Tuning from `[dialog]`.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub threshold: f32,
    /// Speech an enrolment needs.
    pub enroll: Duration,
    /// Speech a verification needs before it decides.
    pub min: Duration,
}

/// The answer to `voiceprint_verify`.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Accept { score: f32, account: String },
    Reject { score: f32 },
    NotEnoughSpeech { got: Duration },
    NoTemplate,
}

impl Check {
    pub fn outcome(&self) -> &'static str {
        match self {
            Check::Accept { .. } => "accept",
            Check::Reject { .. } => "reject",
            Check::NotEnoughSpeech { .. } => "not_enough_speech",
            Check::NoTemplate => "no_template",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("the voiceprint worker is busy or stopped")]
    Unavailable,
    #[error("the voiceprint worker failed on this request")]
    Failed,
}

enum Job {
    Speech {
        key: u64,
        audio: Arc<[i16]>,
    },
    Verify {
        key: u64,
        customer: String,
        reply: Sender<Result<Check, JobError>>,
    },
    Enroll {
        key: u64,
        customer: String,
        account: String,
        reply: Sender<Result<bool, JobError>>,
    },
    HasTemplate {
        customer: String,
        reply: Sender<Result<bool, JobError>>,
    },
    End {
        key: u64,
    },
}

/// What media threads and the controller hold: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Voiceprints {
    tx: Sender<Job>,
    metrics: Arc<Metrics>,
}

impl Voiceprints {
    /// Loads the encoder (installing it into `models_dir` first if it is missing), opens the template store and
    /// starts the worker.
    pub fn start(
        models_dir: &Path,
        store: &Path,
        settings: Settings,
        events: UnboundedSender<MediaEvent>,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, std::thread::JoinHandle<()>), VoiceprintServiceError> {
        let model = match voiceprint::installed(models_dir) {
            Some(p) => p,
            None => {
                tracing::info!(dir = %models_dir.display(), "voiceprint model missing; installing it");
                voiceprint::install(models_dir, &models_dir.join("cache"), &mut |_| {})?
            }
        };
        let encoder = SpeakerEncoder::load(&model)?;
        let store = TemplateStore::open(store)?;
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let worker = Worker {
            encoder,
            store,
            settings,
            calls: HashMap::new(),
            events,
            metrics: metrics.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("voiceprint".into())
            .spawn(move || worker.run(rx))
            .map_err(VoiceprintServiceError::Spawn)?;
        tracing::info!(model = %model.display(), threshold = settings.threshold, "caller voiceprints on");
        Ok((Self { tx, metrics }, handle))
    }

    /// A caller turn (8 kHz, as endpointed). Dropped, and counted, when the worker is behind.
    pub fn speech(&self, key: u64, audio: Arc<[i16]>) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(Job::Speech { key, audio }) {
            Metrics::inc(&self.metrics.voiceprint_turns_dropped_total);
        }
    }

    /// The call is over: its speech is forgotten.
    pub fn end(&self, key: u64) {
        // Blocking would stall the controller; a full queue delays the clean-up to the worker's next call
        // end, and the per-call speech is bounded anyway.
        let _ = self.tx.try_send(Job::End { key });
    }

    /// Compares the call's speech so far with `customer`'s template. Blocks (run it off the signalling task).
    pub fn verify(&self, key: u64, customer: String) -> Result<Check, JobError> {
        self.ask(|reply| Job::Verify {
            key,
            customer,
            reply,
        })
    }

    /// Starts enrolment with this call's speech (what was said already counts); true when that was already
    /// enough and the template is stored. Blocks.
    pub fn enroll(&self, key: u64, customer: String, account: String) -> Result<bool, JobError> {
        self.ask(|reply| Job::Enroll {
            key,
            customer,
            account,
            reply,
        })
    }

    /// Whether `customer` is enrolled. Blocks.
    pub fn has_template(&self, customer: String) -> Result<bool, JobError> {
        self.ask(|reply| Job::HasTemplate { customer, reply })
    }

    /// Queues the job `make` builds around a reply channel and waits for the answer.
    fn ask<T>(&self, make: impl FnOnce(Sender<Result<T, JobError>>) -> Job) -> Result<T, JobError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.tx
            .send_timeout(make(reply), ANSWER_WITHIN)
            .map_err(|_| JobError::Unavailable)?;
        rx.recv_timeout(ANSWER_WITHIN)
            .map_err(|_| JobError::Unavailable)?
    }
}

/// One call's speech, trimmed to voiced frames, most recent last.
#[derive(Default)]
struct CallVoice {
    turns: VecDeque<Vec<i16>>,
    samples: usize,
    /// Consented enrolment in progress: customer and the account they verified with.
    enrolling: Option<(String, String)>,
}

impl CallVoice {
    fn push(&mut self, turn: Vec<i16>) {
        let max = MAX_CALL_SPEECH.as_secs() as usize * INPUT_RATE_HZ as usize;
        self.samples += turn.len();
        self.turns.push_back(turn);
        while self.samples > max {
            match self.turns.pop_front() {
                Some(t) => self.samples -= t.len(),
                None => break,
            }
        }
    }

    fn speech(&self) -> Duration {
        voiceprint::duration_of(self.samples)
    }

    fn joined(&self) -> Vec<i16> {
        self.turns.iter().flatten().copied().collect()
    }
}

struct Worker {
    encoder: SpeakerEncoder,
    store: TemplateStore,
    settings: Settings,
    calls: HashMap<u64, CallVoice>,
    events: UnboundedSender<MediaEvent>,
    metrics: Arc<Metrics>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Job>) {
        for job in rx {
            match job {
                Job::Speech { key, audio } => {
                    let turn = voiceprint::speech_only(&audio);
                    if turn.is_empty() {
                        continue;
                    }
                    self.calls.entry(key).or_default().push(turn);
                    self.try_enroll(key);
                }
                Job::Verify {
                    key,
                    customer,
                    reply,
                } => {
                    let r = self.verify(key, &customer);
                    let _ = reply.send(r);
                }
                Job::Enroll {
                    key,
                    customer,
                    account,
                    reply,
                } => {
                    self.calls.entry(key).or_default().enrolling = Some((customer, account));
                    let done = self.try_enroll(key);
                    let _ = reply.send(Ok(done));
                }
                Job::HasTemplate { customer, reply } => {
                    let r = self.store.get(&customer).map(|t| t.is_some()).map_err(|e| {
                        tracing::error!(error = %e, "voiceprint store read failed");
                        JobError::Failed
                    });
                    let _ = reply.send(r);
                }
                Job::End { key } => {
                    if let Some(c) = self.calls.remove(&key) {
                        if c.enrolling.is_some() {
                            tracing::info!(
                                key,
                                speech_ms = c.speech().as_millis() as u64,
                                "voiceprint enrolment incomplete: the call ended before enough speech"
                            );
                        }
                    }
                }
            }
        }
    }

    fn verify(&mut self, key: u64, customer: &str) -> Result<Check, JobError> {
        let stored = self.store.get(customer).map_err(|e| {
            tracing::error!(error = %e, "voiceprint store read failed");
            JobError::Failed
        })?;
        let Some((template, account)) = stored else {
            return Ok(Check::NoTemplate);
        };
        let call = self.calls.entry(key).or_default();
        let got = call.speech();
        if got < self.settings.min.max(voiceprint::MIN_SPEECH) {
            return Ok(Check::NotEnoughSpeech { got });
        }
        let check =
            match self
                .encoder
                .verify_pcm(&template, &call.joined(), self.settings.threshold)
            {
                Ok(Verdict::Accept { score }) => Check::Accept { score, account },
                Ok(Verdict::Reject { score }) => Check::Reject { score },
                Ok(Verdict::NotEnoughSpeech { got, .. }) => Check::NotEnoughSpeech { got },
                Err(e) => {
                    tracing::error!(error = %e, "voiceprint embedding failed");
                    return Err(JobError::Failed);
                }
            };
        Metrics::inc(&self.metrics.voiceprint_verifications_total);
        Ok(check)
    }

    /// Completes an enrolment once the call has enough speech: the template is stored and the call's record
    /// told. True when stored.
    fn try_enroll(&mut self, key: u64) -> bool {
        let Some(call) = self.calls.get_mut(&key) else {
            return false;
        };
        let Some((customer, account)) = call.enrolling.clone() else {
            return false;
        };
        let speech = call.speech();
        if speech < self.settings.enroll.max(voiceprint::MIN_SPEECH) {
            return false;
        }
        call.enrolling = None;
        let template = match self.encoder.embed(&call.joined()) {
            Ok(embedding) => Template {
                embedding,
                speech,
                segments: u32::try_from(call.turns.len()).unwrap_or(u32::MAX),
            },
            Err(e) => {
                tracing::error!(error = %e, "voiceprint enrolment failed");
                return false;
            }
        };
        if let Err(e) = self.store.put(&customer, &account, &template) {
            tracing::error!(error = %e, "voiceprint store write failed");
            return false;
        }
        Metrics::inc(&self.metrics.voiceprint_enrolments_total);
        let _ = self.events.send(MediaEvent::Voiceprint {
            key,
            outcome: "enrolled",
            detail: format!(
                "{:.1} s of speech in {} turns",
                speech.as_secs_f32(),
                template.segments
            ),
        });
        true
    }
}

/// Templates per customer, with the account they verified with at enrolment.
struct TemplateStore {
    conn: Connection,
    path: PathBuf,
}

impl TemplateStore {
    fn open(path: &Path) -> Result<Self, VoiceprintServiceError> {
        let err = |source| VoiceprintServiceError::Store {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS voiceprints (
                customer_id TEXT PRIMARY KEY,
                account TEXT NOT NULL,
                template BLOB NOT NULL,
                speech_ms INTEGER NOT NULL,
                enrolled_at INTEGER NOT NULL
            );",
        )
        .map_err(err)?;
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    fn get(&self, customer: &str) -> Result<Option<(Template, String)>, VoiceprintServiceError> {
        let row: Option<(Vec<u8>, String)> = self
            .conn
            .query_row(
                "SELECT template, account FROM voiceprints WHERE customer_id = ?1",
                params![customer],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|source| self.error(source))?;
        Ok(
            row.and_then(|(bytes, account)| match Template::from_bytes(&bytes) {
                Ok(t) => Some((t, account)),
                Err(e) => {
                    // A template of another model version: as if not enrolled (the caller is offered enrolment).
                    tracing::warn!(error = %e, "unusable voiceprint template ignored");
                    None
                }
            }),
        )
    }

    fn put(
        &self,
        customer: &str,
        account: &str,
        t: &Template,
    ) -> Result<(), VoiceprintServiceError> {
        self.conn
            .execute(
                "INSERT INTO voiceprints (customer_id, account, template, speech_ms, enrolled_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(customer_id) DO UPDATE SET account = ?2, template = ?3, speech_ms = ?4,
                 enrolled_at = ?5",
                params![
                    customer,
                    account,
                    t.to_bytes(),
                    t.speech.as_millis() as i64,
                    crate::calls::wall_ms()
                ],
            )
            .map(drop)
            .map_err(|source| self.error(source))
    }

    fn error(&self, source: rusqlite::Error) -> VoiceprintServiceError {
        VoiceprintServiceError::Store {
            path: self.path.clone(),
            source,
        }
    }
}
