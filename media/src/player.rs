//! Prompt cache (decoded once at start-up) and the per-call prompt player.
//!
//! Decoding and resampling happen in [`PromptCache::load_dir`]; during a call the player only
//! copies samples out of shared `Arc<[i16]>` clips into the caller's frame buffer.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::wav::{self, WavError};
use crate::{Frame, FRAME_SAMPLES};

/// Queue capacity of [`PromptPlayer::default`]: room for a long number readout plus prompts.
pub const DEFAULT_QUEUE_CAPACITY: usize = 64;
/// Directory nesting followed by [`PromptCache::load_dir`]; stops symlink loops.
pub const MAX_DIR_DEPTH: usize = 16;

/// Why prompts could not be loaded or queued.
#[derive(Debug, thiserror::Error)]
pub enum PlayerError {
    /// Listing a directory failed.
    #[error("cannot read prompt directory {path}: {source}", path = path.display())]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A prompt file could not be decoded.
    #[error("bad prompt file: {0}")]
    Wav(#[from] WavError),
    /// A file or directory name is not valid UTF-8, so it cannot be a prompt key.
    #[error("prompt path is not UTF-8: {path}", path = path.display())]
    NonUtf8Path { path: PathBuf },
    /// Two files map to the same key (e.g. `a.wav` and `a.WAV`).
    #[error("two prompt files map to key {key:?}: {path}", path = path.display())]
    DuplicateKey { key: String, path: PathBuf },
    /// Directories nested deeper than [`MAX_DIR_DEPTH`] (probably a symlink loop).
    #[error("prompt directory nesting exceeds {MAX_DIR_DEPTH}: {path}", path = path.display())]
    TooDeep { path: PathBuf },
    /// The player's fixed-capacity queue has no room; nothing was enqueued.
    #[error("prompt queue full (capacity {capacity})")]
    QueueFull { capacity: usize },
}

/// A decoded prompt: 8 kHz mono PCM shared between all calls. Cloning is two refcount bumps.
#[derive(Clone, PartialEq, Eq)]
pub struct Clip {
    name: Arc<str>,
    samples: Arc<[i16]>,
}

impl std::fmt::Debug for Clip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clip")
            .field("name", &self.name)
            .field("samples", &self.samples.len())
            .finish()
    }
}

impl Clip {
    /// Wraps already-decoded 8 kHz PCM (synthesised beeps, tests).
    pub fn new(name: impl Into<Arc<str>>, samples: impl Into<Arc<[i16]>>) -> Self {
        Self {
            name: name.into(),
            samples: samples.into(),
        }
    }

    /// Cache key, e.g. `num/7`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The PCM at 8 kHz.
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// Length in 20 ms frames, rounded up (the last one is padded with silence).
    pub fn frames(&self) -> u64 {
        (self.samples.len() as u64).div_ceil(FRAME_SAMPLES as u64)
    }
}

/// All prompts of the appliance, keyed by relative path without extension (`music/hold`).
#[derive(Debug, Clone, Default)]
pub struct PromptCache {
    clips: BTreeMap<Arc<str>, Clip>,
}

impl PromptCache {
    /// Decodes every `*.wav` (any case) below `dir`, recursively, to 8 kHz mono.
    ///
    /// Fails on the first unreadable file: a broken prompt set should stop start-up rather
    /// than surface as silence in the middle of a call.
    pub fn load_dir(dir: &Path) -> Result<PromptCache, PlayerError> {
        let mut cache = PromptCache::default();
        cache.load_recursive(dir, "", 0)?;
        Ok(cache)
    }

    fn load_recursive(
        &mut self,
        dir: &Path,
        prefix: &str,
        depth: usize,
    ) -> Result<(), PlayerError> {
        if depth > MAX_DIR_DEPTH {
            return Err(PlayerError::TooDeep {
                path: dir.to_path_buf(),
            });
        }
        let read_err = |source| PlayerError::ReadDir {
            path: dir.to_path_buf(),
            source,
        };
        let mut entries = std::fs::read_dir(dir)
            .map_err(read_err)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_err)?;
        // Deterministic order makes duplicate-key errors reproducible.
        entries.sort();
        for path in entries {
            let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
                return Err(PlayerError::NonUtf8Path { path });
            };
            // Follows symlinks on purpose (operators link shared prompt sets); depth stops loops.
            let meta = std::fs::metadata(&path).map_err(|source| PlayerError::ReadDir {
                path: path.clone(),
                source,
            })?;
            if meta.is_dir() {
                let sub = format!("{prefix}{file_name}/");
                self.load_recursive(&path, &sub, depth + 1)?;
                continue;
            }
            let Some(stem) = wav_stem(file_name) else {
                continue;
            };
            let key: Arc<str> = Arc::from(format!("{prefix}{stem}"));
            if self.clips.contains_key(&key) {
                return Err(PlayerError::DuplicateKey {
                    key: key.to_string(),
                    path,
                });
            }
            let samples = wav::load_wav_8k_mono(&path)?;
            self.clips
                .insert(key.clone(), Clip::new(key, Arc::<[i16]>::from(samples)));
        }
        Ok(())
    }

    /// Adds or replaces a clip (synthesised tones, tests).
    pub fn insert(&mut self, clip: Clip) {
        self.clips.insert(clip.name.clone(), clip);
    }

    /// Looks a prompt up by key; a cheap clone.
    pub fn get(&self, name: &str) -> Option<Clip> {
        self.clips.get(name).cloned()
    }

    /// Whether a key exists (for validating dialog scripts at start-up).
    pub fn contains(&self, name: &str) -> bool {
        self.clips.contains_key(name)
    }

    /// All keys, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.clips.keys().map(|k| &**k)
    }

    /// Number of prompts.
    pub fn len(&self) -> usize {
        self.clips.len()
    }

    /// True when no prompt was loaded.
    pub fn is_empty(&self) -> bool {
        self.clips.is_empty()
    }
}

/// `greeting.wav` → `greeting`; anything else → `None`.
fn wav_stem(file_name: &str) -> Option<&str> {
    let dot = file_name.rfind('.')?;
    let (stem, ext) = file_name.split_at(dot);
    (!stem.is_empty() && ext.eq_ignore_ascii_case(".wav")).then_some(stem)
}

/// Something the player can play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A prompt, played once.
    Clip(Clip),
    /// A pause of whole 20 ms frames.
    Silence { frames: u32 },
    /// Hold music: repeats until [`PromptPlayer::stop_and_flush`]. Anything queued behind it
    /// never plays.
    Loop(Clip),
}

/// What [`PromptPlayer::next_frame`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayerTick {
    /// The frame holds audio and more is queued.
    Playing,
    /// The frame holds the last audio of the queue; emitted once per run of playback.
    Finished,
    /// Nothing to play; the frame is silence.
    Idle,
}

/// Position inside the source currently playing.
#[derive(Debug)]
struct Current {
    source: Source,
    /// Samples already produced from `source` (for `Loop`: within the current repetition).
    pos: u64,
}

impl Current {
    /// Copies up to `out.len()` samples; returns how many were written. 0 means exhausted.
    fn fill(&mut self, out: &mut [i16]) -> usize {
        match &self.source {
            Source::Clip(clip) => {
                let n = copy_from(clip.samples(), self.pos, out);
                self.pos += n as u64;
                n
            }
            Source::Silence { frames } => {
                let total = u64::from(*frames) * FRAME_SAMPLES as u64;
                let n = total.saturating_sub(self.pos).min(out.len() as u64) as usize;
                out.iter_mut().take(n).for_each(|s| *s = 0);
                self.pos += n as u64;
                n
            }
            Source::Loop(clip) => {
                let samples = clip.samples();
                if samples.is_empty() {
                    return 0;
                }
                let mut written = 0;
                while written < out.len() {
                    if self.pos >= samples.len() as u64 {
                        self.pos = 0;
                    }
                    let n = copy_from(samples, self.pos, out.get_mut(written..).unwrap_or(&mut []));
                    self.pos += n as u64;
                    written += n;
                }
                written
            }
        }
    }

    fn exhausted(&self) -> bool {
        match &self.source {
            Source::Clip(clip) => self.pos >= clip.samples().len() as u64,
            Source::Silence { frames } => self.pos >= u64::from(*frames) * FRAME_SAMPLES as u64,
            Source::Loop(clip) => clip.samples().is_empty(),
        }
    }
}

fn copy_from(src: &[i16], pos: u64, out: &mut [i16]) -> usize {
    let start = usize::try_from(pos).unwrap_or(usize::MAX).min(src.len());
    let rest = src.get(start..).unwrap_or(&[]);
    let n = rest.len().min(out.len());
    if let (Some(dst), Some(src)) = (out.get_mut(..n), rest.get(..n)) {
        dst.copy_from_slice(src);
    }
    n
}

/// Per-call prompt queue, driven by the media thread once per 20 ms frame.
///
/// The queue is allocated once with a fixed capacity, so enqueueing and playing never
/// allocate; a full queue is reported rather than grown.
#[derive(Debug)]
pub struct PromptPlayer {
    current: Option<Current>,
    queue: VecDeque<Source>,
    capacity: usize,
    played_frames: u64,
}

impl Default for PromptPlayer {
    fn default() -> Self {
        Self::new(DEFAULT_QUEUE_CAPACITY)
    }
}

impl PromptPlayer {
    /// A player whose queue holds at most `capacity` sources (excluding the one playing).
    pub fn new(capacity: usize) -> Self {
        Self {
            current: None,
            queue: VecDeque::with_capacity(capacity),
            capacity,
            played_frames: 0,
        }
    }

    /// Appends a source to play after everything already queued.
    pub fn enqueue(&mut self, source: Source) -> Result<(), PlayerError> {
        if self.queue.len() >= self.capacity {
            return Err(PlayerError::QueueFull {
                capacity: self.capacity,
            });
        }
        self.queue.push_back(source);
        Ok(())
    }

    /// Appends all sources, or none of them if they do not all fit.
    pub fn enqueue_all(
        &mut self,
        sources: impl IntoIterator<Item = Source>,
    ) -> Result<(), PlayerError> {
        let before = self.queue.len();
        for source in sources {
            if let Err(e) = self.enqueue(source) {
                self.queue.truncate(before);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Fills `out` with the next 20 ms of audio (silence where nothing plays).
    ///
    /// Sources are spliced sample-exactly: a clip ending mid-frame is followed by the next
    /// source within the same frame.
    pub fn next_frame(&mut self, out: &mut Frame) -> PlayerTick {
        let was_playing = self.is_playing();
        let mut written = 0;
        while written < FRAME_SAMPLES {
            let Some(cur) = self.current_or_next() else {
                break;
            };
            let n = cur.fill(out.get_mut(written..).unwrap_or(&mut []));
            written += n;
            if n == 0 || cur.exhausted() {
                self.current = None;
            }
        }
        out.iter_mut().skip(written).for_each(|s| *s = 0);
        // Drop sources with nothing left so a clip ending exactly on the frame boundary
        // reports Finished now, not one silent frame later.
        while self.current_or_next().is_some_and(|c| c.exhausted()) {
            self.current = None;
        }
        if !was_playing {
            return PlayerTick::Idle;
        }
        self.played_frames += 1;
        if self.is_playing() {
            PlayerTick::Playing
        } else {
            PlayerTick::Finished
        }
    }

    fn current_or_next(&mut self) -> Option<&mut Current> {
        if self.current.is_none() {
            let source = self.queue.pop_front()?;
            self.current = Some(Current { source, pos: 0 });
        }
        self.current.as_mut()
    }

    /// Stops at once and drops everything queued (barge-in). Returns whether anything was
    /// playing; no [`PlayerTick::Finished`] follows, the caller already knows.
    pub fn stop_and_flush(&mut self) -> bool {
        let was_playing = self.is_playing();
        self.current = None;
        self.queue.clear();
        was_playing
    }

    /// Whether the next frame will carry audio from a source.
    pub fn is_playing(&self) -> bool {
        self.current.is_some() || !self.queue.is_empty()
    }

    /// Frames that carried queued audio since this player was created.
    pub fn played_frames(&self) -> u64 {
        self.played_frames
    }

    /// Sources waiting behind the one playing.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Fixed queue capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(name: &str, start: i16, len: usize) -> Clip {
        let v: Vec<i16> = (0..len).map(|i| start + i as i16).collect();
        Clip::new(name, v)
    }

    fn run(player: &mut PromptPlayer, frames: usize) -> (Vec<i16>, Vec<PlayerTick>) {
        let mut all = Vec::new();
        let mut ticks = Vec::new();
        let mut f = [0i16; FRAME_SAMPLES];
        for _ in 0..frames {
            ticks.push(player.next_frame(&mut f));
            all.extend_from_slice(&f);
        }
        (all, ticks)
    }

    #[test]
    fn clips_are_spliced_sample_exactly() {
        let mut p = PromptPlayer::new(8);
        let a = ramp("a", 1, 250); // 1..=250
        let b = ramp("b", 1000, 100); // 1000..=1099
        p.enqueue_all([Source::Clip(a), Source::Clip(b)]).unwrap();
        let (pcm, ticks) = run(&mut p, 4);
        let expected: Vec<i16> = (1..=250).chain(1000..1100).collect();
        assert_eq!(&pcm[..350], &expected[..]);
        assert!(
            pcm[350..].iter().all(|&s| s == 0),
            "tail padded with silence"
        );
        assert_eq!(
            ticks,
            [
                PlayerTick::Playing,
                PlayerTick::Playing,
                PlayerTick::Finished,
                PlayerTick::Idle
            ]
        );
        assert_eq!(p.played_frames(), 3);
    }

    #[test]
    fn silence_source_and_frame_aligned_end() {
        let mut p = PromptPlayer::new(8);
        p.enqueue(Source::Clip(ramp("a", 5, 160))).unwrap();
        p.enqueue(Source::Silence { frames: 2 }).unwrap();
        p.enqueue(Source::Silence { frames: 0 }).unwrap();
        p.enqueue(Source::Clip(ramp("b", 7, 160))).unwrap();
        let (pcm, ticks) = run(&mut p, 5);
        assert_eq!(pcm[0], 5);
        assert!(pcm[160..480].iter().all(|&s| s == 0));
        assert_eq!(pcm[480], 7);
        assert_eq!(pcm[639], 7 + 159);
        // Clip ends exactly on a frame boundary: Finished on its last frame, not after.
        assert_eq!(
            ticks,
            [
                PlayerTick::Playing,
                PlayerTick::Playing,
                PlayerTick::Playing,
                PlayerTick::Finished,
                PlayerTick::Idle
            ]
        );
    }

    #[test]
    fn finished_once_then_idle_and_restartable() {
        let mut p = PromptPlayer::new(4);
        let mut f = [1i16; FRAME_SAMPLES];
        assert_eq!(p.next_frame(&mut f), PlayerTick::Idle);
        assert!(f.iter().all(|&s| s == 0));
        p.enqueue(Source::Clip(ramp("a", 1, 10))).unwrap();
        assert!(p.is_playing());
        let (_, ticks) = run(&mut p, 4);
        assert_eq!(
            ticks.iter().filter(|t| **t == PlayerTick::Finished).count(),
            1
        );
        assert_eq!(ticks[0], PlayerTick::Finished);
        p.enqueue(Source::Clip(ramp("b", 1, 10))).unwrap();
        assert_eq!(p.next_frame(&mut f), PlayerTick::Finished);
        assert_eq!(f[9], 10);
    }

    #[test]
    fn flush_mid_clip_silences_next_frame() {
        let mut p = PromptPlayer::new(4);
        p.enqueue(Source::Clip(Clip::new("x", vec![1000i16; 1600])))
            .unwrap();
        p.enqueue(Source::Clip(Clip::new("y", vec![2000i16; 1600])))
            .unwrap();
        let mut f = [0i16; FRAME_SAMPLES];
        assert_eq!(p.next_frame(&mut f), PlayerTick::Playing);
        assert!(f.iter().all(|&s| s == 1000));
        assert!(p.stop_and_flush());
        assert!(!p.is_playing());
        assert_eq!(p.next_frame(&mut f), PlayerTick::Idle);
        assert!(f.iter().all(|&s| s == 0));
        assert!(!p.stop_and_flush(), "nothing left to stop");
    }

    #[test]
    fn loop_repeats_until_stopped() {
        let mut p = PromptPlayer::new(4);
        p.enqueue(Source::Loop(ramp("hold", 1, 100))).unwrap();
        p.enqueue(Source::Clip(ramp("never", 500, 10))).unwrap();
        let (pcm, ticks) = run(&mut p, 50);
        assert!(ticks.iter().all(|t| *t == PlayerTick::Playing));
        for (i, &s) in pcm.iter().enumerate() {
            assert_eq!(s, 1 + (i % 100) as i16, "sample {i}");
        }
        assert!(p.stop_and_flush());
        let (pcm, ticks) = run(&mut p, 1);
        assert_eq!(ticks, [PlayerTick::Idle]);
        assert!(pcm.iter().all(|&s| s == 0));
    }

    #[test]
    fn empty_sources_do_not_hang() {
        let mut p = PromptPlayer::new(4);
        p.enqueue(Source::Loop(Clip::new("empty", Vec::<i16>::new())))
            .unwrap();
        p.enqueue(Source::Clip(Clip::new("empty", Vec::<i16>::new())))
            .unwrap();
        let mut f = [0i16; FRAME_SAMPLES];
        assert_eq!(p.next_frame(&mut f), PlayerTick::Finished);
        assert_eq!(p.next_frame(&mut f), PlayerTick::Idle);
    }

    #[test]
    fn queue_full_is_an_error_and_enqueue_all_is_atomic() {
        let mut p = PromptPlayer::new(3);
        let c = ramp("a", 1, 10);
        p.enqueue(Source::Clip(c.clone())).unwrap();
        let err = p.enqueue_all(vec![Source::Clip(c.clone()); 3]).unwrap_err();
        assert!(matches!(err, PlayerError::QueueFull { capacity: 3 }));
        assert_eq!(p.queued(), 1, "partial enqueue_all rolled back");
        p.enqueue_all(vec![Source::Clip(c.clone()); 2]).unwrap();
        assert!(matches!(
            p.enqueue(Source::Silence { frames: 1 }),
            Err(PlayerError::QueueFull { .. })
        ));
        // Once one starts playing, its slot is free again.
        let mut f = [0i16; FRAME_SAMPLES];
        p.next_frame(&mut f);
        assert_eq!(p.queued(), 0, "all 10-sample clips fit in one frame");
        assert_eq!(f[29], 10);
    }

    #[test]
    fn enqueue_and_play_do_not_allocate() {
        let mut p = PromptPlayer::new(8);
        let clip = ramp("a", 1, 333);
        let hold = ramp("hold", 1, 70);
        let mut f = [0i16; FRAME_SAMPLES];
        let n = crate::resample::alloc_probe::allocations_in(|| {
            for _ in 0..3 {
                p.enqueue(Source::Clip(clip.clone())).unwrap();
                p.enqueue(Source::Silence { frames: 1 }).unwrap();
            }
            p.enqueue(Source::Loop(hold.clone())).unwrap();
            for _ in 0..100 {
                p.next_frame(&mut f);
            }
            p.stop_and_flush();
            p.next_frame(&mut f);
        });
        assert_eq!(n, 0);
    }

    #[test]
    fn cache_loads_tree_with_relative_keys() {
        let dir = std::env::temp_dir().join(format!("voxgate-player-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("num")).unwrap();
        std::fs::create_dir_all(dir.join("music/deep")).unwrap();
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        for (name, len) in [
            ("greeting.wav", 3200u32),
            ("num/7.WAV", 1600),
            ("music/deep/hold.wav", 800),
        ] {
            let mut w = hound::WavWriter::create(dir.join(name), spec).unwrap();
            for _ in 0..len {
                w.write_sample(0i16).unwrap();
            }
            w.finalize().unwrap();
        }
        std::fs::write(dir.join("README.txt"), "not audio").unwrap();
        let cache = PromptCache::load_dir(&dir).unwrap();
        assert_eq!(
            cache.names().collect::<Vec<_>>(),
            ["greeting", "music/deep/hold", "num/7"]
        );
        assert_eq!(cache.get("greeting").unwrap().samples().len(), 1600);
        assert_eq!(cache.get("num/7").unwrap().frames(), 5);
        assert_eq!(
            cache.get("music/deep/hold").unwrap().name(),
            "music/deep/hold"
        );
        assert!(cache.get("num/8").is_none());

        std::fs::write(dir.join("num/7.wav"), b"dup").unwrap();
        assert!(matches!(
            PromptCache::load_dir(&dir),
            Err(PlayerError::DuplicateKey { .. })
        ));
        std::fs::remove_file(dir.join("num/7.wav")).unwrap();
        std::fs::write(dir.join("broken.wav"), b"RIFF").unwrap();
        assert!(matches!(
            PromptCache::load_dir(&dir),
            Err(PlayerError::Wav(_))
        ));
        assert!(matches!(
            PromptCache::load_dir(&dir.join("nope")),
            Err(PlayerError::ReadDir { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn wav_stem_rules() {
        assert_eq!(wav_stem("a.wav"), Some("a"));
        assert_eq!(wav_stem("a.b.WaV"), Some("a.b"));
        assert_eq!(wav_stem(".wav"), None);
        assert_eq!(wav_stem("a.wave"), None);
        assert_eq!(wav_stem("wav"), None);
    }
}
