//! Time-aligned stereo call recording with retroactive DTMF masking.
//!
//! DTMF digits are usually recognised only after the tone has played for a while (in-band
//! detection needs ~40 ms, RFC 4733 events may arrive late), yet card numbers and PINs must
//! never reach the recording. Frames therefore pass through a short delay line before they
//! are emitted, so a mask can still be applied to audio that was already pushed.

use crate::{Frame, FRAME_SAMPLES};

/// Default delay line: 200 ms, well above DTMF detection latency.
pub const DEFAULT_DELAY_FRAMES: usize = 10;
/// Upper bound on the delay line (10 s); larger requests are clamped.
pub const MAX_DELAY_FRAMES: usize = 500;
/// Disjoint mask ranges remembered per channel; beyond that the closest ranges are merged
/// (masking a little too much is safer than leaking a digit).
pub const MAX_PENDING_MASKS: usize = 16;
/// Samples in one interleaved output frame.
pub const STEREO_FRAME_SAMPLES: usize = FRAME_SAMPLES * 2;

/// Which side of the call a mask applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Left: what the caller sends us.
    Caller,
    /// Right: what voxgate (prompts, agent) sends the caller.
    Ours,
}

/// A mask request that could not be honoured in full. Every such request is counted in
/// [`CallRecorder::late_masks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    /// `from_frame > to_frame`.
    #[error("mask range {from}..={to} is inverted")]
    InvalidRange { from: u64, to: u64 },
    /// Every frame of the range was already written out unmasked.
    #[error("mask range {from}..={to} already written (oldest buffered frame {oldest_buffered})")]
    TooLate {
        from: u64,
        to: u64,
        oldest_buffered: u64,
    },
    /// Frames `from..oldest_buffered` were already written unmasked; the rest is masked.
    #[error("mask range {from}..={to} partly written (frames before {oldest_buffered} leaked)")]
    PartlyTooLate {
        from: u64,
        to: u64,
        oldest_buffered: u64,
    },
}

/// Inclusive frame ranges, sorted, disjoint and non-adjacent; fixed storage.
#[derive(Debug, Clone)]
struct MaskSet {
    ranges: [(u64, u64); MAX_PENDING_MASKS + 1],
    len: usize,
}

impl MaskSet {
    fn new() -> Self {
        Self {
            ranges: [(0, 0); MAX_PENDING_MASKS + 1],
            len: 0,
        }
    }

    fn active(&self) -> &[(u64, u64)] {
        self.ranges.get(..self.len).unwrap_or(&[])
    }

    fn add(&mut self, from: u64, to: u64) {
        if let Some(slot) = self.ranges.get_mut(self.len) {
            *slot = (from, to);
            self.len += 1;
        }
        let len = self.len;
        let Some(ranges) = self.ranges.get_mut(..len) else {
            return;
        };
        ranges.sort_unstable();
        // Coalesce overlapping or touching ranges in place.
        let mut w = 0;
        for r in 1..len {
            let (Some(&cur), Some(&last)) = (ranges.get(r), ranges.get(w)) else {
                break;
            };
            if cur.0 <= last.1.saturating_add(1) {
                if let Some(last) = ranges.get_mut(w) {
                    last.1 = last.1.max(cur.1);
                }
            } else {
                w += 1;
                if let Some(slot) = ranges.get_mut(w) {
                    *slot = cur;
                }
            }
        }
        self.len = w + 1;
        if self.len > MAX_PENDING_MASKS {
            self.merge_closest_pair();
        }
    }

    /// Frees one slot by bridging the smallest gap between neighbours.
    fn merge_closest_pair(&mut self) {
        let active = self.active();
        let Some(i) = (0..active.len().saturating_sub(1)).min_by_key(|&i| {
            match (active.get(i), active.get(i + 1)) {
                (Some(a), Some(b)) => b.0.saturating_sub(a.1),
                _ => u64::MAX,
            }
        }) else {
            return;
        };
        let Some(&(_, next_to)) = self.ranges.get(i + 1) else {
            return;
        };
        if let Some(r) = self.ranges.get_mut(i) {
            r.1 = next_to;
        }
        self.ranges.copy_within(i + 2..self.len, i + 1);
        self.len -= 1;
    }

    fn contains(&self, frame: u64) -> bool {
        self.active()
            .iter()
            .any(|&(from, to)| (from..=to).contains(&frame))
    }

    /// Forgets ranges that end before `frame`; they can never match again.
    fn prune_before(&mut self, frame: u64) {
        let keep = self.active().iter().position(|&(_, to)| to >= frame);
        let first = keep.unwrap_or(self.len);
        if first > 0 {
            self.ranges.copy_within(first..self.len, 0);
            self.len -= first;
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    caller: Frame,
    ours: Frame,
}

/// Builds the stereo recording of one call (left = caller, right = voxgate), frame by frame.
///
/// Sans-IO: it never writes files; the media thread forwards emitted frames to the
/// recording thread (e.g. into [`crate::wav::StereoWavWriter`]). Frame indices count pushes
/// from 0, so they line up with whatever frame counter the media thread keeps.
#[derive(Debug, Clone)]
pub struct CallRecorder {
    slots: Box<[Slot]>,
    delay: usize,
    pushed: u64,
    emitted: u64,
    caller_masks: MaskSet,
    ours_masks: MaskSet,
    late_masks: u64,
}

impl Default for CallRecorder {
    fn default() -> Self {
        Self::new(DEFAULT_DELAY_FRAMES)
    }
}

impl CallRecorder {
    /// A recorder that keeps `delay_frames` (clamped to [`MAX_DELAY_FRAMES`]) frames of
    /// history besides the current one: a mask issued after pushing frame `k` still covers
    /// frames from `k - delay_frames` on, so the output lags by `delay_frames + 1` frames.
    pub fn new(delay_frames: usize) -> Self {
        let delay = delay_frames.min(MAX_DELAY_FRAMES);
        let silent = Slot {
            caller: [0; FRAME_SAMPLES],
            ours: [0; FRAME_SAMPLES],
        };
        Self {
            slots: vec![silent; delay + 1].into_boxed_slice(),
            delay,
            pushed: 0,
            emitted: 0,
            caller_masks: MaskSet::new(),
            ours_masks: MaskSet::new(),
            late_masks: 0,
        }
    }

    /// Adds the next 20 ms of both directions. Returns true when `out` holds the interleaved
    /// L/R frame that left the delay line (frame `current_frame() - delay_frames() - 1`),
    /// false while the line is still filling.
    pub fn push(
        &mut self,
        caller: &Frame,
        ours: &Frame,
        out: &mut [i16; STEREO_FRAME_SAMPLES],
    ) -> bool {
        // The oldest frame occupies the slot the new one goes to, so emit it first.
        let ready = self.pushed - self.emitted > self.delay as u64;
        if ready {
            self.emit(out);
        }
        let index = self.slot_index(self.pushed);
        if let Some(slot) = self.slots.get_mut(index) {
            slot.caller = *caller;
            slot.ours = *ours;
        }
        self.pushed += 1;
        ready
    }

    /// Index of the frame most recently pushed (0 before the first push).
    pub fn current_frame(&self) -> u64 {
        self.pushed.saturating_sub(1)
    }

    /// Replaces the caller channel of frames `from_frame..=to_frame` with silence.
    ///
    /// Frames still in the delay line are masked retroactively, future frames when they
    /// arrive. On `Err`, whatever part of the range was still reachable is masked anyway.
    pub fn mask_caller(&mut self, from_frame: u64, to_frame: u64) -> Result<(), MaskError> {
        self.mask(Channel::Caller, from_frame, to_frame)
    }

    /// Same as [`CallRecorder::mask_caller`] for our own channel (e.g. a read-back PIN).
    pub fn mask_ours(&mut self, from_frame: u64, to_frame: u64) -> Result<(), MaskError> {
        self.mask(Channel::Ours, from_frame, to_frame)
    }

    /// Masks `from..=to` on `channel`; see [`CallRecorder::mask_caller`].
    pub fn mask(&mut self, channel: Channel, from: u64, to: u64) -> Result<(), MaskError> {
        if from > to {
            return Err(MaskError::InvalidRange { from, to });
        }
        let oldest_buffered = self.emitted;
        if to < oldest_buffered {
            self.late_masks += 1;
            return Err(MaskError::TooLate {
                from,
                to,
                oldest_buffered,
            });
        }
        let masks = match channel {
            Channel::Caller => &mut self.caller_masks,
            Channel::Ours => &mut self.ours_masks,
        };
        masks.add(from.max(oldest_buffered), to);
        if from < oldest_buffered {
            self.late_masks += 1;
            return Err(MaskError::PartlyTooLate {
                from,
                to,
                oldest_buffered,
            });
        }
        Ok(())
    }

    /// Drains the delay line at call end, appending interleaved frames to `out`.
    pub fn finish(&mut self, out: &mut Vec<i16>) {
        let mut frame = [0i16; STEREO_FRAME_SAMPLES];
        out.reserve((self.pushed - self.emitted) as usize * STEREO_FRAME_SAMPLES);
        while self.emitted < self.pushed {
            self.emit(&mut frame);
            out.extend_from_slice(&frame);
        }
    }

    /// Frames of history kept besides the current one (how late a mask may arrive).
    pub fn delay_frames(&self) -> usize {
        self.delay
    }

    /// Frames emitted so far (via `push` or `finish`).
    pub fn frames_emitted(&self) -> u64 {
        self.emitted
    }

    /// Mask requests that arrived (partly) too late to protect the recording.
    pub fn late_masks(&self) -> u64 {
        self.late_masks
    }

    fn slot_index(&self, frame: u64) -> usize {
        (frame % self.slots.len() as u64) as usize
    }

    fn emit(&mut self, out: &mut [i16; STEREO_FRAME_SAMPLES]) {
        let frame = self.emitted;
        let mask_caller = self.caller_masks.contains(frame);
        let mask_ours = self.ours_masks.contains(frame);
        if let Some(slot) = self.slots.get(self.slot_index(frame)) {
            for ((pair, &c), &o) in out
                .chunks_exact_mut(2)
                .zip(slot.caller.iter())
                .zip(slot.ours.iter())
            {
                if let [l, r] = pair {
                    *l = if mask_caller { 0 } else { c };
                    *r = if mask_ours { 0 } else { o };
                }
            }
        }
        self.emitted += 1;
        self.caller_masks.prune_before(self.emitted);
        self.ours_masks.prune_before(self.emitted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `frames` pushes, calling `hook(recorder, frame_index)` after each push; returns
    /// the full recording (including the drained tail) split into (left, right).
    fn record(
        rec: &mut CallRecorder,
        caller: impl Fn(u64) -> Frame,
        ours: impl Fn(u64) -> Frame,
        frames: u64,
        mut hook: impl FnMut(&mut CallRecorder, u64),
    ) -> (Vec<i16>, Vec<i16>) {
        let mut interleaved = Vec::new();
        let mut out = [0i16; STEREO_FRAME_SAMPLES];
        for k in 0..frames {
            if rec.push(&caller(k), &ours(k), &mut out) {
                interleaved.extend_from_slice(&out);
            }
            assert_eq!(rec.current_frame(), k);
            hook(rec, k);
        }
        rec.finish(&mut interleaved);
        let left = interleaved.iter().step_by(2).copied().collect();
        let right = interleaved.iter().skip(1).step_by(2).copied().collect();
        (left, right)
    }

    /// Caller sends a 697+1209 Hz tone ("1") in frames 20..=24 over low noise-like content.
    fn caller_with_dtmf(k: u64) -> Frame {
        let mut f = [0i16; FRAME_SAMPLES];
        for (i, s) in f.iter_mut().enumerate() {
            let t = (k as f32 * FRAME_SAMPLES as f32 + i as f32) / 8000.0;
            *s = if (20..=24).contains(&k) {
                let tone = (2.0 * std::f32::consts::PI * 697.0 * t).sin()
                    + (2.0 * std::f32::consts::PI * 1209.0 * t).sin();
                (tone * 8000.0) as i16
            } else {
                (k as i16 % 7) + 1
            };
        }
        f
    }

    fn frame_of(v: i16) -> Frame {
        [v; FRAME_SAMPLES]
    }

    #[test]
    fn dtmf_masked_when_reported_up_to_delay_frames_late() {
        for report_lag in 0..=DEFAULT_DELAY_FRAMES as u64 {
            let mut rec = CallRecorder::default();
            let (left, right) = record(
                &mut rec,
                caller_with_dtmf,
                |k| frame_of(k as i16),
                60,
                |r, k| {
                    // The detector recognises the digit `report_lag` frames after it began and
                    // masks the whole digit, partly in the future when reported early.
                    if k == 20 + report_lag {
                        r.mask_caller(20, 24).unwrap();
                    }
                },
            );
            assert_eq!(left.len(), 60 * FRAME_SAMPLES);
            for k in 0..60usize {
                let frame = &left[k * FRAME_SAMPLES..(k + 1) * FRAME_SAMPLES];
                if (20..=24).contains(&k) {
                    assert!(
                        frame.iter().all(|&s| s == 0),
                        "lag {report_lag}: frame {k} leaked"
                    );
                } else {
                    assert_eq!(frame[0], caller_with_dtmf(k as u64)[0], "frame {k} damaged");
                }
                // Our channel is never touched by a caller mask.
                assert_eq!(right[k * FRAME_SAMPLES], k as i16);
            }
            assert_eq!(rec.late_masks(), 0);
        }
    }

    #[test]
    fn mask_after_delay_is_too_late_and_counted() {
        let mut rec = CallRecorder::new(10);
        let mut errors = Vec::new();
        let (left, _) = record(
            &mut rec,
            caller_with_dtmf,
            |_| frame_of(0),
            60,
            |r, k| {
                if k == 31 {
                    // Frame 20 left the delay line at push 31; 21..=24 are still buffered.
                    errors.push(r.mask_caller(20, 24));
                }
                if k == 40 {
                    errors.push(r.mask_caller(20, 24));
                }
            },
        );
        assert_eq!(
            errors,
            [
                Err(MaskError::PartlyTooLate {
                    from: 20,
                    to: 24,
                    oldest_buffered: 21
                }),
                Err(MaskError::TooLate {
                    from: 20,
                    to: 24,
                    oldest_buffered: 30
                }),
            ]
        );
        assert_eq!(rec.late_masks(), 2);
        assert!(left[20 * FRAME_SAMPLES..21 * FRAME_SAMPLES]
            .iter()
            .any(|&s| s != 0));
        assert!(left[21 * FRAME_SAMPLES..25 * FRAME_SAMPLES]
            .iter()
            .all(|&s| s == 0));
    }

    #[test]
    fn future_ranges_and_ours_channel() {
        let mut rec = CallRecorder::new(2);
        let (left, right) = record(
            &mut rec,
            |_| frame_of(5),
            |_| frame_of(-5),
            12,
            |r, k| {
                if k == 0 {
                    r.mask_caller(8, 9).unwrap();
                    r.mask_ours(3, 3).unwrap();
                }
            },
        );
        let masked = |v: &[i16], k: usize| {
            v[k * FRAME_SAMPLES..(k + 1) * FRAME_SAMPLES]
                .iter()
                .all(|&s| s == 0)
        };
        let masked_left: Vec<usize> = (0..12).filter(|&k| masked(&left, k)).collect();
        let masked_right: Vec<usize> = (0..12).filter(|&k| masked(&right, k)).collect();
        assert_eq!(masked_left, [8, 9]);
        assert_eq!(masked_right, [3]);
        assert_eq!(
            rec.mask_caller(5, 4),
            Err(MaskError::InvalidRange { from: 5, to: 4 })
        );
    }

    #[test]
    fn click_stays_aligned_between_channels() {
        for delay in [0, 1, 10, 37] {
            let mut rec = CallRecorder::new(delay);
            let click = |k: u64| {
                let mut f = [0i16; FRAME_SAMPLES];
                if k == 13 {
                    f[77] = 30_000;
                }
                f
            };
            let mut out = [0i16; STEREO_FRAME_SAMPLES];
            let mut emitted = 0u64;
            let mut click_at = None;
            for k in 0..100 {
                let ready = rec.push(&click(k), &click(k), &mut out);
                assert_eq!(ready, k > delay as u64, "delay {delay} frame {k}");
                if ready {
                    if let Some(i) = out.iter().position(|&s| s != 0) {
                        assert_eq!(out[i + 1], 30_000, "right channel same sample");
                        click_at = Some(emitted * FRAME_SAMPLES as u64 + i as u64 / 2);
                    }
                    emitted += 1;
                }
            }
            assert_eq!(click_at, Some(13 * 160 + 77), "delay {delay}");
        }
    }

    #[test]
    fn push_and_mask_do_not_allocate() {
        let mut rec = CallRecorder::default();
        let mut out = [0i16; STEREO_FRAME_SAMPLES];
        let n = crate::resample::alloc_probe::allocations_in(|| {
            for k in 0..200u64 {
                rec.push(&frame_of(1), &frame_of(2), &mut out);
                if k % 3 == 0 {
                    let _ = rec.mask_caller(k.saturating_sub(5), k + 2);
                    let _ = rec.mask_ours(k + 1, k + 1);
                }
            }
        });
        assert_eq!(n, 0);
    }

    #[test]
    fn finish_drains_everything_once() {
        let mut rec = CallRecorder::new(10);
        let mut out = [0i16; STEREO_FRAME_SAMPLES];
        for k in 0..4 {
            assert!(!rec.push(&frame_of(k + 1), &frame_of(-(k + 1)), &mut out));
        }
        let mut tail = Vec::new();
        rec.finish(&mut tail);
        assert_eq!(tail.len(), 4 * STEREO_FRAME_SAMPLES);
        for k in 0..4usize {
            assert_eq!(tail[k * STEREO_FRAME_SAMPLES], k as i16 + 1);
            assert_eq!(tail[k * STEREO_FRAME_SAMPLES + 1], -(k as i16 + 1));
        }
        assert_eq!(rec.frames_emitted(), 4);
        let mut again = Vec::new();
        rec.finish(&mut again);
        assert!(again.is_empty());
    }

    #[test]
    fn mask_table_overflow_over_masks_instead_of_leaking() {
        let mut rec = CallRecorder::new(0);
        // 40 disjoint future single-frame masks at even frames 10, 12, …, 88.
        for i in 0..40u64 {
            rec.mask_caller(10 + 2 * i, 10 + 2 * i).unwrap();
        }
        let (left, _) = record(&mut rec, |_| frame_of(9), |_| frame_of(0), 100, |_, _| {});
        for i in 0..40usize {
            let k = 10 + 2 * i;
            assert!(
                left[k * FRAME_SAMPLES..(k + 1) * FRAME_SAMPLES]
                    .iter()
                    .all(|&s| s == 0),
                "frame {k}"
            );
        }
        // Outside the masked span nothing is touched.
        assert!(left[..10 * FRAME_SAMPLES].iter().all(|&s| s == 9));
        assert!(left[89 * FRAME_SAMPLES..].iter().all(|&s| s == 9));
    }

    #[test]
    fn mask_set_coalesces() {
        let mut m = MaskSet::new();
        m.add(5, 7);
        m.add(8, 9);
        m.add(1, 2);
        m.add(6, 6);
        assert_eq!(m.active(), [(1, 2), (5, 9)]);
        m.prune_before(3);
        assert_eq!(m.active(), [(5, 9)]);
        m.add(0, u64::MAX);
        assert_eq!(m.active(), [(0, u64::MAX)]);
    }
}
