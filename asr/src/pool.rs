//! ASR worker pool: media threads hand utterances over without ever blocking; workers decode them.
//!
//! Whisper on CPU is far slower than the 20 ms media tick, so the hand-over is a bounded queue and `submit` fails
//! fast with [`SubmitError::Overloaded`] when the pool is saturated (the dialog then falls back to DTMF). Under
//! pressure, partial hypotheses are shed before finals: a partial is only a preview, a final is what the caller
//! said.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use thiserror::Error;
use whisper_rs::WhisperContext;

use crate::recognizer::{AsrError, Language, Recognizer, RecognizerConfig, Transcript};

/// Identifies a call to the pool's user; opaque here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey(pub u64);

/// One utterance (or the growing prefix of one, for a partial) to transcribe.
#[derive(Debug, Clone)]
pub struct AsrJob {
    pub call: CallKey,
    pub utterance: u32,
    /// Mono PCM at the pool's input rate (8 kHz in the pipeline); shared, not copied, with the recorder.
    pub audio: Arc<[i16]>,
    /// A partial re-decode of a still-growing utterance: may be replaced or shed.
    pub partial: bool,
    /// Domain biasing for this dialog step; `None` uses the pool's configured prompt.
    pub prompt: Option<Arc<str>>,
    /// The call's language when it differs from the pool's (a Mandarin number on a box set up for English);
    /// needs the multilingual model.
    pub language: Option<Language>,
}

#[derive(Debug)]
pub struct AsrResult {
    pub call: CallKey,
    pub utterance: u32,
    pub partial: bool,
    pub outcome: Result<Transcript, AsrError>,
    /// Wall time the decode took (zero when the job never reached a worker).
    pub decode: Duration,
    /// The utterance's audio, handed back with final results so its acoustics can be measured off the media
    /// threads; `None` for partials and for jobs that never reached a worker.
    pub audio: Option<Arc<[i16]>>,
}

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    #[error("ASR pool saturated")]
    Overloaded,
    #[error("ASR pool shut down")]
    Closed,
}

#[derive(Debug, Error)]
pub enum PoolError {
    #[error("ASR pool needs at least one worker and a queue of at least one job")]
    Empty,
    #[error(transparent)]
    Recognizer(#[from] AsrError),
    #[error("cannot spawn ASR worker thread: {0}")]
    Spawn(#[source] std::io::Error),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    pub workers: usize,
    pub queue_capacity: usize,
    /// Sample rate of [`AsrJob::audio`].
    pub input_rate_hz: u32,
    pub recognizer: RecognizerConfig,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            queue_capacity: 4,
            input_rate_hz: 8_000,
            recognizer: RecognizerConfig::default(),
        }
    }
}

/// Counters for metrics; monotonic except `mean_decode_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PoolStats {
    /// Jobs offered to `submit`.
    pub jobs: u64,
    /// Jobs refused with [`SubmitError::Overloaded`].
    pub overloaded: u64,
    /// Queued partials discarded: replaced by a newer partial or final of the same utterance, or shed for a final.
    pub partial_dropped: u64,
    pub decoded: u64,
    /// Decodes that returned an error.
    pub failed: u64,
    pub mean_decode_ms: f64,
}

#[derive(Debug, Default)]
struct Counters {
    jobs: AtomicU64,
    overloaded: AtomicU64,
    partial_dropped: AtomicU64,
    decoded: AtomicU64,
    failed: AtomicU64,
    decode_us: AtomicU64,
    closed: AtomicBool,
}

impl Counters {
    fn snapshot(&self) -> PoolStats {
        let decoded = self.decoded.load(Ordering::Relaxed);
        let decode_us = self.decode_us.load(Ordering::Relaxed);
        PoolStats {
            jobs: self.jobs.load(Ordering::Relaxed),
            overloaded: self.overloaded.load(Ordering::Relaxed),
            partial_dropped: self.partial_dropped.load(Ordering::Relaxed),
            decoded,
            failed: self.failed.load(Ordering::Relaxed),
            mean_decode_ms: if decoded == 0 {
                0.0
            } else {
                decode_us as f64 / decoded as f64 / 1000.0
            },
        }
    }
}

/// What the overload policy decided for one submitted job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Admission {
    accepted: bool,
    dropped_partials: u64,
}

/// The overload policy, on a snapshot of the queue (oldest first), so it is pure and testable.
///
/// A new job for an utterance supersedes that utterance's queued partials. If the queue is still full, a final
/// evicts the oldest queued partial; a partial is refused rather than evict another caller's queued work.
fn admit(queued: &mut Vec<AsrJob>, job: AsrJob, capacity: usize) -> Admission {
    let before = queued.len();
    queued.retain(|q| !(q.partial && q.call == job.call && q.utterance == job.utterance));
    let mut dropped_partials = (before - queued.len()) as u64;
    if queued.len() < capacity {
        queued.push(job);
        return Admission {
            accepted: true,
            dropped_partials,
        };
    }
    if !job.partial {
        if let Some(pos) = queued.iter().position(|q| q.partial) {
            queued.remove(pos);
            dropped_partials += 1;
            queued.push(job);
            return Admission {
                accepted: true,
                dropped_partials,
            };
        }
    }
    Admission {
        accepted: false,
        dropped_partials,
    }
}

/// The media threads' handle on the pool's queue. Clone one per thread; `submit` never blocks.
#[derive(Debug)]
pub struct JobSubmitter {
    tx: Sender<AsrJob>,
    /// The queue is MPMC: holding the receiving end lets `submit` pull jobs out to replace or shed partials.
    rx: Receiver<AsrJob>,
    results: Sender<AsrResult>,
    counters: Arc<Counters>,
    capacity: usize,
    /// Reused between submits: the compaction buffer.
    scratch: Vec<AsrJob>,
}

impl Clone for JobSubmitter {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            rx: self.rx.clone(),
            results: self.results.clone(),
            counters: Arc::clone(&self.counters),
            capacity: self.capacity,
            scratch: Vec::with_capacity(self.capacity + 1),
        }
    }
}

impl JobSubmitter {
    /// Queues `job` or refuses it at once. Refused jobs produce no [`AsrResult`]; replaced partials neither.
    pub fn submit(&mut self, job: AsrJob) -> Result<(), SubmitError> {
        if self.counters.closed.load(Ordering::Acquire) {
            return Err(SubmitError::Closed);
        }
        self.counters.jobs.fetch_add(1, Ordering::Relaxed);
        // Fast path: nothing queued, so nothing to replace.
        let job = if self.rx.is_empty() {
            match self.tx.try_send(job) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(job)) => job,
                Err(TrySendError::Disconnected(_)) => return Err(SubmitError::Closed),
            }
        } else {
            job
        };

        self.scratch.clear();
        // At most one queue's worth: other submitters may keep pushing while we compact.
        while self.scratch.len() < self.capacity {
            match self.rx.try_recv() {
                Ok(j) => self.scratch.push(j),
                Err(_) => break,
            }
        }
        let admission = admit(&mut self.scratch, job, self.capacity);
        self.counters
            .partial_dropped
            .fetch_add(admission.dropped_partials, Ordering::Relaxed);
        for j in self.scratch.drain(..) {
            // Another submitter may have filled the slots we emptied; then this job is lost and its owner told.
            if let Err(TrySendError::Full(lost) | TrySendError::Disconnected(lost)) =
                self.tx.try_send(j)
            {
                if lost.partial {
                    self.counters
                        .partial_dropped
                        .fetch_add(1, Ordering::Relaxed);
                } else {
                    self.counters.overloaded.fetch_add(1, Ordering::Relaxed);
                    // Best effort: if the result channel is full too, the owner's utterance timeout covers it.
                    let _ = self.results.try_send(AsrResult {
                        call: lost.call,
                        utterance: lost.utterance,
                        partial: false,
                        outcome: Err(AsrError::DroppedUnderLoad),
                        decode: Duration::ZERO,
                        audio: None,
                    });
                }
            }
        }
        if admission.accepted {
            Ok(())
        } else {
            self.counters.overloaded.fetch_add(1, Ordering::Relaxed);
            Err(SubmitError::Overloaded)
        }
    }

    pub fn stats(&self) -> PoolStats {
        self.counters.snapshot()
    }

    /// Jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        self.rx.len()
    }
}

/// A bare queue without workers: the submitting side and the receiving end workers would drain.
/// [`AsrPool::start`] builds on it; it is public so the overload policy can be exercised without a model.
pub fn job_queue(capacity: usize, results: Sender<AsrResult>) -> (JobSubmitter, Receiver<AsrJob>) {
    let capacity = capacity.max(1);
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let submitter = JobSubmitter {
        tx,
        rx: rx.clone(),
        results,
        counters: Arc::new(Counters::default()),
        capacity,
        scratch: Vec::with_capacity(capacity + 1),
    };
    (submitter, rx)
}

/// Worker threads sharing one loaded model, each with its own whisper state.
#[derive(Debug)]
pub struct AsrPool {
    submitter: JobSubmitter,
    workers: Vec<JoinHandle<()>>,
    /// Dropping it wakes and stops every worker, even while submitters keep the job queue alive.
    stop: Option<Sender<()>>,
}

impl AsrPool {
    /// Starts `config.workers` threads; results (including failures) go to `results`. Workers block on a full
    /// `results` channel (never the media threads): use an unbounded one or drain it promptly.
    pub fn start(
        model: Arc<WhisperContext>,
        config: &PoolConfig,
        results: Sender<AsrResult>,
    ) -> Result<Self, PoolError> {
        if config.workers == 0 || config.queue_capacity == 0 {
            return Err(PoolError::Empty);
        }
        let (submitter, jobs) = job_queue(config.queue_capacity, results.clone());
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let mut pool = Self {
            submitter,
            workers: Vec::with_capacity(config.workers),
            stop: Some(stop),
        };
        for i in 0..config.workers {
            // Create states here so a model/state failure is reported to the caller, not lost in a thread.
            let recognizer = Recognizer::with_model(Arc::clone(&model), config.recognizer.clone())?;
            let worker = Worker {
                recognizer,
                jobs: jobs.clone(),
                stopped: stopped.clone(),
                results: results.clone(),
                counters: Arc::clone(&pool.submitter.counters),
                input_rate_hz: config.input_rate_hz,
            };
            let handle = std::thread::Builder::new()
                .name(format!("asr-{i}"))
                .spawn(move || worker.run())
                .map_err(PoolError::Spawn)?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// A handle for one media thread.
    pub fn submitter(&self) -> JobSubmitter {
        self.submitter.clone()
    }

    pub fn submit(&mut self, job: AsrJob) -> Result<(), SubmitError> {
        self.submitter.submit(job)
    }

    pub fn stats(&self) -> PoolStats {
        self.submitter.stats()
    }

    /// Stops the workers after their current decode; queued jobs are abandoned.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.submitter
            .counters
            .closed
            .store(true, Ordering::Release);
        self.stop = None;
        for w in self.workers.drain(..) {
            // A panicked worker has nothing left to clean up.
            let _ = w.join();
        }
    }
}

impl Drop for AsrPool {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

struct Worker {
    recognizer: Recognizer,
    jobs: Receiver<AsrJob>,
    stopped: Receiver<()>,
    results: Sender<AsrResult>,
    counters: Arc<Counters>,
    input_rate_hz: u32,
}

impl Worker {
    fn run(mut self) {
        loop {
            let job = crossbeam_channel::select! {
                recv(self.jobs) -> job => match job {
                    Ok(job) => job,
                    Err(_) => return,
                },
                recv(self.stopped) -> _ => return,
            };
            let started = Instant::now();
            let outcome = self.recognizer.transcribe_pcm_in(
                &job.audio,
                self.input_rate_hz,
                job.prompt.as_deref(),
                job.language,
            );
            let decode = started.elapsed();
            self.counters.decoded.fetch_add(1, Ordering::Relaxed);
            self.counters.decode_us.fetch_add(
                u64::try_from(decode.as_micros()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            if outcome.is_err() {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
            }
            let result = AsrResult {
                call: job.call,
                utterance: job.utterance,
                partial: job.partial,
                outcome,
                decode,
                audio: (!job.partial).then(|| job.audio.clone()),
            };
            if self.results.send(result).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(call: u64, utterance: u32, partial: bool, len: usize) -> AsrJob {
        AsrJob {
            call: CallKey(call),
            utterance,
            audio: vec![0i16; len].into(),
            partial,
            prompt: None,
            language: None,
        }
    }

    #[test]
    fn admit_replaces_same_utterance_partial_even_with_room() {
        let mut q = vec![job(1, 1, true, 10), job(2, 1, true, 10)];
        let a = admit(&mut q, job(1, 1, true, 20), 4);
        assert_eq!(
            a,
            Admission {
                accepted: true,
                dropped_partials: 1
            }
        );
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].call, CallKey(2));
        assert_eq!(q[1].audio.len(), 20);
    }

    #[test]
    fn admit_final_evicts_oldest_partial_when_full() {
        let mut q = vec![job(1, 1, false, 1), job(2, 1, true, 1), job(3, 1, true, 1)];
        let a = admit(&mut q, job(4, 1, false, 1), 3);
        assert!(a.accepted);
        assert_eq!(a.dropped_partials, 1);
        let calls: Vec<u64> = q.iter().map(|j| j.call.0).collect();
        assert_eq!(calls, [1, 3, 4]);
    }

    #[test]
    fn admit_refuses_partial_rather_than_evicting_other_calls() {
        let mut q = vec![job(2, 1, true, 1)];
        let a = admit(&mut q, job(1, 1, true, 1), 1);
        assert!(!a.accepted);
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].call, CallKey(2));
    }

    #[test]
    fn admit_refuses_final_when_queue_holds_only_finals() {
        let mut q = vec![job(1, 1, false, 1)];
        let a = admit(&mut q, job(2, 1, false, 1), 1);
        assert_eq!(
            a,
            Admission {
                accepted: false,
                dropped_partials: 0
            }
        );
    }

    #[test]
    fn submitter_never_blocks_and_counts_overload() {
        let (results_tx, results_rx) = crossbeam_channel::unbounded();
        let (mut sub, jobs) = job_queue(1, results_tx);
        // Partial for call 1, then a newer partial of the same utterance replaces it in the full queue.
        assert_eq!(sub.submit(job(1, 7, true, 100)), Ok(()));
        assert_eq!(sub.submit(job(1, 7, true, 200)), Ok(()));
        // A final of another call evicts that partial.
        assert_eq!(sub.submit(job(2, 1, false, 300)), Ok(()));
        // Nothing left to shed: overloaded, immediately.
        assert_eq!(
            sub.submit(job(3, 1, false, 400)),
            Err(SubmitError::Overloaded)
        );
        assert_eq!(sub.queued(), 1);
        let queued = jobs.try_recv().expect("one job queued");
        assert_eq!((queued.call, queued.partial), (CallKey(2), false));
        let stats = sub.stats();
        assert_eq!(stats.jobs, 4);
        assert_eq!(stats.overloaded, 1);
        assert_eq!(stats.partial_dropped, 2);
        assert!(results_rx.try_recv().is_err(), "no result for refused jobs");
    }

    #[test]
    fn newer_partial_is_what_gets_decoded() {
        let (results_tx, _results_rx) = crossbeam_channel::unbounded();
        let (mut sub, jobs) = job_queue(1, results_tx);
        sub.submit(job(1, 1, true, 100)).expect("queued");
        sub.submit(job(1, 1, true, 250)).expect("replaced");
        let j = jobs.try_recv().expect("queued job");
        assert_eq!(j.audio.len(), 250);
        assert!(jobs.try_recv().is_err());
    }
}
