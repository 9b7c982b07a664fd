//! Packet-loss concealment for G.711, after ITU-T G.711 Appendix I (the `LowcFE`
//! reference): on loss, estimate the pitch from the last 35 ms, repeat the last pitch
//! period(s) with overlap-add at the seams, widen the repeated region to 2 and 3 periods
//! over the first 30 ms (avoids the buzzy sound of a single repeated period), attenuate
//! 20 % per 10 ms after the first 10 ms, and go silent after 60 ms. The first good frame
//! after a loss is cross-faded with the synthetic signal.
//!
//! Like the reference, the output is delayed by 3.75 ms (30 samples): that look-back is
//! what lets the start of an erasure be overlap-added with audio not yet played out.
//! All state lives in fixed arrays; nothing is allocated per frame.

use crate::{Frame, FRAME_SAMPLES};

const PITCH_MIN: usize = 40; // 200 Hz
const PITCH_MAX: usize = 120; // 66.6 Hz
const PITCH_DIFF: usize = PITCH_MAX - PITCH_MIN;
const POVERLAP_MAX: usize = PITCH_MAX >> 2;
const HISTORY_LEN: usize = PITCH_MAX * 3 + POVERLAP_MAX;
const NDEC: usize = 2;
const CORR_LEN: usize = 160;
const CORR_BUF_LEN: usize = CORR_LEN + PITCH_MAX;
const CORR_MIN_POWER: f32 = 250.0;
const EOVERLAP_INCR: usize = 32;
/// The reference works on 10 ms sub-frames; a 20 ms frame is two of them.
const SUBFRAME: usize = 80;
const ATTEN_FAC: f32 = 0.2;
const ATTEN_INCR: f32 = ATTEN_FAC / SUBFRAME as f32;

/// Output delay introduced by the concealer, in samples.
pub const PLC_DELAY_SAMPLES: usize = POVERLAP_MAX;

/// G.711 Appendix I concealer for one 8 kHz stream.
#[derive(Clone)]
pub struct G711Plc {
    /// Consecutive erased 10 ms sub-frames.
    erase_cnt: usize,
    poverlap: usize,
    poffset: usize,
    pitch: usize,
    pitch_blen: usize,
    atten_fac: f32,
    history: [i16; HISTORY_LEN],
    pitch_buf: [f32; HISTORY_LEN],
    last_q: [f32; POVERLAP_MAX],
}

impl Default for G711Plc {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for G711Plc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("G711Plc")
            .field("erase_cnt", &self.erase_cnt)
            .field("pitch", &self.pitch)
            .finish_non_exhaustive()
    }
}

impl G711Plc {
    /// A concealer with silent history.
    pub fn new() -> Self {
        Self {
            erase_cnt: 0,
            poverlap: 0,
            poffset: 0,
            pitch: PITCH_MIN,
            pitch_blen: 0,
            atten_fac: 1.0,
            history: [0; HISTORY_LEN],
            pitch_buf: [0.0; HISTORY_LEN],
            last_q: [0.0; POVERLAP_MAX],
        }
    }

    /// Forget all history (e.g. new stream).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// True while in an erasure (at least one concealed sub-frame since the last good one).
    pub fn in_erasure(&self) -> bool {
        self.erase_cnt > 0
    }

    /// Feed a correctly received frame. On return `frame` holds the (delayed) output.
    pub fn good_frame(&mut self, frame: &mut Frame) {
        let (a, b) = frame.split_at_mut(SUBFRAME);
        self.add_to_history(a);
        self.add_to_history(b);
    }

    /// Produce a concealment frame for a lost packet.
    pub fn conceal(&mut self, out: &mut Frame) {
        let (a, b) = out.split_at_mut(SUBFRAME);
        self.dofe(a);
        self.dofe(b);
    }

    fn add_to_history(&mut self, s: &mut [i16]) {
        if self.erase_cnt > 0 {
            let mut overlap = [0i16; SUBFRAME];
            // Longer cross-fade the longer the erasure lasted.
            let olen = (self.poverlap + (self.erase_cnt - 1) * EOVERLAP_INCR).min(SUBFRAME);
            self.get_fe_speech(&mut overlap[..olen]);
            self.overlap_add_at_end(s, &overlap[..olen]);
            self.erase_cnt = 0;
        }
        self.save_speech(s);
    }

    fn dofe(&mut self, out: &mut [i16]) {
        if self.erase_cnt == 0 {
            for (f, &h) in self.pitch_buf.iter_mut().zip(self.history.iter()) {
                *f = f32::from(h);
            }
            self.pitch = self.find_pitch();
            self.poverlap = self.pitch >> 2;
            let po = self.poverlap;
            self.last_q[..po].copy_from_slice(&self.pitch_buf[HISTORY_LEN - po..]);
            self.poffset = 0;
            self.pitch_blen = self.pitch;
            // Smooth the seam between the end of history and the start of the repeated period.
            let start = HISTORY_LEN - self.pitch_blen;
            self.overlap_add_seam(start - po);
            for i in HISTORY_LEN - po..HISTORY_LEN {
                self.history[i] = to_i16(self.pitch_buf[i]);
            }
            self.get_fe_speech(out);
            self.atten_fac = 1.0;
        } else if self.erase_cnt == 1 || self.erase_cnt == 2 {
            // Tail of the previous pitch estimate, cross-faded into a longer (one more
            // period) repetition buffer.
            let mut tmp = [0i16; POVERLAP_MAX];
            let po = self.poverlap;
            let save = self.poffset;
            self.get_fe_speech(&mut tmp[..po]);
            self.poffset = save;
            while self.poffset > self.pitch {
                self.poffset -= self.pitch;
            }
            self.pitch_blen += self.pitch;
            let start = HISTORY_LEN - self.pitch_blen;
            self.overlap_add_seam(start - po);
            self.get_fe_speech(out);
            overlap_add_i16(&tmp[..po], out);
            self.scale_speech(out);
        } else if self.erase_cnt > 5 {
            out.fill(0);
        } else {
            self.get_fe_speech(out);
            self.scale_speech(out);
        }
        self.erase_cnt += 1;
        self.save_speech(out);
    }

    /// Cross-fade `last_q` (end of history) with the samples just before the repeated
    /// region (`pitch_buf[from..]`), writing the result over the end of `pitch_buf`.
    fn overlap_add_seam(&mut self, from: usize) {
        let po = self.poverlap;
        if po == 0 {
            return;
        }
        let incr = 1.0 / po as f32;
        let mut lw = 1.0 - incr;
        let mut rw = incr;
        for i in 0..po {
            let t = lw * self.last_q[i] + rw * self.pitch_buf[from + i];
            self.pitch_buf[HISTORY_LEN - po + i] = t.clamp(-32768.0, 32767.0);
            lw -= incr;
            rw += incr;
        }
    }

    fn get_fe_speech(&mut self, out: &mut [i16]) {
        let start = HISTORY_LEN - self.pitch_blen;
        let mut done = 0;
        while done < out.len() {
            let cnt = (self.pitch_blen - self.poffset).min(out.len() - done);
            let src = &self.pitch_buf[start + self.poffset..start + self.poffset + cnt];
            for (o, &f) in out[done..done + cnt].iter_mut().zip(src) {
                *o = to_i16(f);
            }
            self.poffset += cnt;
            if self.poffset == self.pitch_blen {
                self.poffset = 0;
            }
            done += cnt;
        }
    }

    fn scale_speech(&mut self, out: &mut [i16]) {
        for o in out.iter_mut() {
            *o = (f32::from(*o) * self.atten_fac) as i16;
            self.atten_fac = (self.atten_fac - ATTEN_INCR).max(0.0);
        }
    }

    fn overlap_add_at_end(&self, s: &mut [i16], f: &[i16]) {
        let cnt = f.len();
        if cnt == 0 {
            return;
        }
        let incr = 1.0 / cnt as f32;
        let gain = (1.0 - (self.erase_cnt as f32 - 1.0) * ATTEN_FAC).max(0.0);
        let incrg = incr * gain;
        let mut lw = (1.0 - incr) * gain;
        let mut rw = incr;
        for (si, &fi) in s.iter_mut().zip(f) {
            let t = lw * f32::from(fi) + rw * f32::from(*si);
            *si = to_i16(t);
            lw -= incrg;
            rw += incr;
        }
    }

    /// Shift history by one sub-frame, append `s`, and hand back the delayed sub-frame.
    fn save_speech(&mut self, s: &mut [i16]) {
        self.history.copy_within(SUBFRAME.., 0);
        self.history[HISTORY_LEN - SUBFRAME..].copy_from_slice(s);
        let d = HISTORY_LEN - SUBFRAME - POVERLAP_MAX;
        s.copy_from_slice(&self.history[d..d + SUBFRAME]);
    }

    /// Normalised cross-correlation pitch search: coarse on every 2nd sample, then fine.
    fn find_pitch(&self) -> usize {
        let l = &self.pitch_buf[HISTORY_LEN - CORR_BUF_LEN..];
        let r = &self.pitch_buf[HISTORY_LEN - CORR_LEN..];
        let score = |off: usize, step: usize| -> f32 {
            let mut energy = 0.0f32;
            let mut corr = 0.0f32;
            let mut i = 0;
            while i < CORR_LEN {
                energy += l[off + i] * l[off + i];
                corr += l[off + i] * r[i];
                i += step;
            }
            corr / energy.max(CORR_MIN_POWER).sqrt()
        };
        let mut best = 0;
        let mut best_corr = score(0, NDEC);
        let mut j = NDEC;
        while j <= PITCH_DIFF {
            let c = score(j, NDEC);
            if c >= best_corr {
                best_corr = c;
                best = j;
            }
            j += NDEC;
        }
        let lo = best.saturating_sub(NDEC - 1);
        let hi = (best + NDEC - 1).min(PITCH_DIFF);
        let mut fine_best = lo;
        let mut fine_corr = score(lo, 1);
        for j in lo + 1..=hi {
            let c = score(j, 1);
            if c > fine_corr {
                fine_corr = c;
                fine_best = j;
            }
        }
        PITCH_MAX - fine_best
    }
}

/// Cross-fade from `l` (fading out) into the first `l.len()` samples of `out`.
fn overlap_add_i16(l: &[i16], out: &mut [i16]) {
    let cnt = l.len();
    if cnt == 0 {
        return;
    }
    let incr = 1.0 / cnt as f32;
    let mut lw = 1.0 - incr;
    let mut rw = incr;
    for (o, &li) in out.iter_mut().zip(l) {
        let t = lw * f32::from(li) + rw * f32::from(*o);
        *o = to_i16(t);
        lw -= incr;
        rw += incr;
    }
}

fn to_i16(f: f32) -> i16 {
    f.clamp(-32768.0, 32767.0) as i16
}

const _: () = assert!(FRAME_SAMPLES == 2 * SUBFRAME);

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n0: usize, freq: f32, amp: f32) -> Frame {
        let mut f = [0i16; FRAME_SAMPLES];
        for (i, s) in f.iter_mut().enumerate() {
            let t = (n0 + i) as f32 / 8000.0;
            *s = (amp * (2.0 * std::f32::consts::PI * freq * t).sin()) as i16;
        }
        f
    }

    fn rms(x: &[i16]) -> f32 {
        (x.iter().map(|&s| f32::from(s) * f32::from(s)).sum::<f32>() / x.len() as f32).sqrt()
    }

    #[test]
    fn good_frames_are_passed_through_with_fixed_delay() {
        let mut plc = G711Plc::new();
        let mut input = Vec::new();
        let mut output = Vec::new();
        for k in 0..10 {
            let f = tone(k * FRAME_SAMPLES, 440.0, 8000.0);
            input.extend_from_slice(&f);
            let mut g = f;
            plc.good_frame(&mut g);
            output.extend_from_slice(&g);
        }
        assert!(output[..PLC_DELAY_SAMPLES].iter().all(|&s| s == 0));
        assert_eq!(
            &output[PLC_DELAY_SAMPLES..],
            &input[..input.len() - PLC_DELAY_SAMPLES]
        );
    }

    #[test]
    fn concealment_continues_periodic_signal_then_fades_to_silence() {
        // 200 Hz = 40-sample period, inside the pitch search range.
        let mut plc = G711Plc::new();
        for k in 0..10 {
            let mut f = tone(k * FRAME_SAMPLES, 200.0, 8000.0);
            plc.good_frame(&mut f);
        }
        let mut c1 = [0i16; FRAME_SAMPLES];
        plc.conceal(&mut c1);
        // The first 10 ms of concealment (after the 30 delayed real samples) should be
        // close to the true continuation of the tone.
        let truth = tone(10 * FRAME_SAMPLES - PLC_DELAY_SAMPLES, 200.0, 8000.0);
        let err: Vec<i16> = c1[..SUBFRAME]
            .iter()
            .zip(&truth[..SUBFRAME])
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        assert!(
            rms(&err) < 0.1 * rms(&truth[..SUBFRAME]),
            "err rms {}",
            rms(&err)
        );
        assert!(rms(&c1) > 4000.0);
        let mut c2 = [0i16; FRAME_SAMPLES];
        plc.conceal(&mut c2);
        assert!(rms(&c2) < rms(&c1), "attenuates");
        let mut c3 = [0i16; FRAME_SAMPLES];
        plc.conceal(&mut c3);
        // After 60 ms of loss the output is silence.
        let mut c4 = [0i16; FRAME_SAMPLES];
        plc.conceal(&mut c4);
        assert!(c4[PLC_DELAY_SAMPLES..].iter().all(|&s| s == 0));
        assert!(plc.in_erasure());
    }

    #[test]
    fn recovery_cross_fades_without_a_click() {
        let mut plc = G711Plc::new();
        let mut out = Vec::new();
        for k in 0..10 {
            let mut f = tone(k * FRAME_SAMPLES, 250.0, 8000.0);
            plc.good_frame(&mut f);
            out.extend_from_slice(&f);
        }
        let mut c = [0i16; FRAME_SAMPLES];
        plc.conceal(&mut c);
        out.extend_from_slice(&c);
        for k in 11..14 {
            let mut f = tone(k * FRAME_SAMPLES, 250.0, 8000.0);
            plc.good_frame(&mut f);
            out.extend_from_slice(&f);
        }
        assert!(!plc.in_erasure());
        // Largest sample-to-sample step stays in the range of the tone's own slope
        // (2*pi*250/8000*8000 ≈ 1571), i.e. no discontinuity at the seams.
        let max_step = out
            .windows(2)
            .map(|w| (w[1] as i32 - w[0] as i32).abs())
            .max();
        assert!(max_step.unwrap_or(0) < 2200, "max step {max_step:?}");
    }

    #[test]
    fn silence_history_conceals_to_silence() {
        let mut plc = G711Plc::new();
        let mut c = [1i16; FRAME_SAMPLES];
        plc.conceal(&mut c);
        assert!(c.iter().all(|&s| s == 0));
    }
}
