//! ITU-T G.711 μ-law and A-law, bit-exact with the classic Sun reference code that
//! libsox and libsndfile ship (`sox_14linear2ulaw`, `sox_13linear2alaw`, ...).
//!
//! 16-bit input is rounded to 14 bits (μ-law) or 13 bits (A-law), saturating at the top,
//! before companding, exactly as sox's `SOX_SAMPLE_TO_SIGNED` does. All four tables are
//! built at compile time, so there is no runtime initialisation and no branch-heavy code
//! in the per-sample path.

/// μ-law silence (encoded 0).
pub const ULAW_SILENCE: u8 = 0xFF;
/// A-law silence (encoded 0).
pub const ALAW_SILENCE: u8 = 0xD5;

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 8159;
const SEG_UEND: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const SEG_AEND: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

/// First segment whose end is >= `val`, or 8 when `val` is beyond all of them.
const fn search(val: i32, table: &[i32; 8]) -> i32 {
    let mut i = 0;
    while i < 8 {
        if val <= table[i] {
            return i as i32;
        }
        i += 1;
    }
    8
}

/// Reference μ-law compressor on a 14-bit two's-complement sample.
const fn linear14_to_ulaw(pcm: i32) -> u8 {
    let (mut v, mask) = if pcm < 0 { (-pcm, 0x7F) } else { (pcm, 0xFF) };
    if v > ULAW_CLIP {
        v = ULAW_CLIP;
    }
    v += ULAW_BIAS >> 2;
    let seg = search(v, &SEG_UEND);
    if seg >= 8 {
        (0x7F ^ mask) as u8
    } else {
        let uval = (seg << 4) | ((v >> (seg + 1)) & 0xF);
        (uval ^ mask) as u8
    }
}

/// Reference A-law compressor on a 13-bit two's-complement sample.
const fn linear13_to_alaw(pcm: i32) -> u8 {
    let (v, mask) = if pcm >= 0 {
        (pcm, 0xD5)
    } else {
        (-pcm - 1, 0x55)
    };
    let seg = search(v, &SEG_AEND);
    if seg >= 8 {
        (0x7F ^ mask) as u8
    } else {
        let mut aval = seg << 4;
        if seg < 2 {
            aval |= (v >> 1) & 0xF;
        } else {
            aval |= (v >> seg) & 0xF;
        }
        (aval ^ mask) as u8
    }
}

const fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u as i32;
    let mut t = ((u & 0x0F) << 3) + ULAW_BIAS;
    t <<= (u & 0x70) >> 4;
    if u & 0x80 != 0 {
        (ULAW_BIAS - t) as i16
    } else {
        (t - ULAW_BIAS) as i16
    }
}

const fn alaw_to_linear(a: u8) -> i16 {
    let a = (a ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

const fn build_ulaw_encode() -> [u8; 16384] {
    let mut t = [0u8; 16384];
    let mut i = 0;
    while i < 16384 {
        // Index is the 14-bit sample offset by 8192 so negative values fit.
        t[i] = linear14_to_ulaw(i as i32 - 8192);
        i += 1;
    }
    t
}

const fn build_alaw_encode() -> [u8; 8192] {
    let mut t = [0u8; 8192];
    let mut i = 0;
    while i < 8192 {
        t[i] = linear13_to_alaw(i as i32 - 4096);
        i += 1;
    }
    t
}

const fn build_ulaw_decode() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_to_linear(i as u8);
        i += 1;
    }
    t
}

const fn build_alaw_decode() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_to_linear(i as u8);
        i += 1;
    }
    t
}

static ULAW_ENCODE: [u8; 16384] = build_ulaw_encode();
static ALAW_ENCODE: [u8; 8192] = build_alaw_encode();
static ULAW_DECODE: [i16; 256] = build_ulaw_decode();
static ALAW_DECODE: [i16; 256] = build_alaw_decode();

/// Compress one 16-bit sample to μ-law.
#[inline]
pub fn ulaw_encode(s: i16) -> u8 {
    // Round to 14 bits like sox; the result is in -8192..=8191, so the index is in range.
    let v = ((s as i32 + 2) >> 2).min(8191);
    ULAW_ENCODE[(v + 8192) as usize]
}

/// Expand one μ-law byte to a 16-bit sample.
#[inline]
pub fn ulaw_decode(u: u8) -> i16 {
    ULAW_DECODE[u as usize]
}

/// Compress one 16-bit sample to A-law.
#[inline]
pub fn alaw_encode(s: i16) -> u8 {
    // Round to 13 bits like sox; the result is in -4096..=4095, so the index is in range.
    let v = ((s as i32 + 4) >> 3).min(4095);
    ALAW_ENCODE[(v + 4096) as usize]
}

/// Expand one A-law byte to a 16-bit sample.
#[inline]
pub fn alaw_decode(a: u8) -> i16 {
    ALAW_DECODE[a as usize]
}

/// Encode `min(pcm.len(), out.len())` samples; returns how many were written.
pub fn encode_ulaw(pcm: &[i16], out: &mut [u8]) -> usize {
    let n = pcm.len().min(out.len());
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = ulaw_encode(s);
    }
    n
}

/// Decode `min(data.len(), out.len())` bytes; returns how many were written.
pub fn decode_ulaw(data: &[u8], out: &mut [i16]) -> usize {
    let n = data.len().min(out.len());
    for (o, &b) in out.iter_mut().zip(data) {
        *o = ulaw_decode(b);
    }
    n
}

/// Encode `min(pcm.len(), out.len())` samples; returns how many were written.
pub fn encode_alaw(pcm: &[i16], out: &mut [u8]) -> usize {
    let n = pcm.len().min(out.len());
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = alaw_encode(s);
    }
    n
}

/// Decode `min(data.len(), out.len())` bytes; returns how many were written.
pub fn decode_alaw(data: &[u8], out: &mut [i16]) -> usize {
    let n = data.len().min(out.len());
    for (o, &b) in out.iter_mut().zip(data) {
        *o = alaw_decode(b);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn run_sox(args: &[&str]) {
        let out = match Command::new("sox").args(args).output() {
            Ok(o) => o,
            Err(e) => panic!(
                "the G.711 conformance test needs the `sox` binary on PATH (apt install sox): {e}"
            ),
        };
        assert!(
            out.status.success(),
            "sox {:?} failed: {}",
            args,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("voxgate-g711-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create temp dir");
        d
    }

    fn read_wav(p: &Path) -> Vec<i16> {
        let mut r = hound::WavReader::open(p).expect("open wav");
        assert_eq!(r.spec().bits_per_sample, 16);
        r.samples::<i16>().map(|s| s.expect("sample")).collect()
    }

    fn p(path: &Path) -> &str {
        path.to_str().expect("utf-8 temp path")
    }

    /// Generates a sweep (plus a loud, clipping one to hit the end segments), has sox
    /// compand it and compares byte for byte, then compares decoding too.
    fn sox_conformance(
        tag: &str,
        sox_enc: &str,
        ext: &str,
        enc: fn(i16) -> u8,
        dec: fn(u8) -> i16,
    ) {
        let dir = tmpdir(tag);
        let input = dir.join("in.wav");
        let coded = dir.join(format!("out.{ext}"));
        let decoded = dir.join("dec.wav");
        // The required sweep, then (below) an over-driven copy so that both clipping
        // extremes are exercised as well.
        run_sox(&[
            "-n",
            "-r",
            "8000",
            "-c",
            "1",
            "-b",
            "16",
            p(&input),
            "synth",
            "1",
            "sine",
            "300-3000",
        ]);
        let loud = dir.join("loud.wav");
        run_sox(&[
            "-n",
            "-r",
            "8000",
            "-c",
            "1",
            "-b",
            "16",
            p(&loud),
            "synth",
            "1",
            "sine",
            "300-3000",
            "vol",
            "2",
        ]);
        let both = dir.join("both.wav");
        run_sox(&[p(&input), p(&loud), p(&both)]);
        let input = both;
        run_sox(&["-D", p(&input), "-e", sox_enc, "-t", "raw", p(&coded)]);
        run_sox(&[
            "-D",
            "-t",
            "raw",
            "-e",
            sox_enc,
            "-r",
            "8000",
            "-c",
            "1",
            p(&coded),
            "-b",
            "16",
            p(&decoded),
        ]);
        let pcm = read_wav(&input);
        assert!(pcm.len() >= 8000, "sox produced {} samples", pcm.len());
        assert!(pcm.contains(&i16::MAX) && pcm.contains(&i16::MIN));
        let theirs = std::fs::read(&coded).expect("read sox output");
        let ours: Vec<u8> = pcm.iter().map(|&s| enc(s)).collect();
        assert_eq!(ours.len(), theirs.len());
        let mismatch = ours.iter().zip(&theirs).position(|(a, b)| a != b);
        assert_eq!(
            mismatch, None,
            "first encoder mismatch vs sox at sample {mismatch:?}"
        );
        let their_dec = read_wav(&decoded);
        let our_dec: Vec<i16> = theirs.iter().map(|&b| dec(b)).collect();
        assert_eq!(our_dec, their_dec, "decoder differs from sox");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ulaw_matches_sox() {
        sox_conformance("ulaw", "u-law", "ul", ulaw_encode, ulaw_decode);
    }

    #[test]
    fn alaw_matches_sox() {
        sox_conformance("alaw", "a-law", "al", alaw_encode, alaw_decode);
    }

    #[test]
    fn alaw_code_round_trip_is_exact_for_all_codes() {
        for c in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(c)), c, "code {c:#04x}");
        }
    }

    #[test]
    fn ulaw_code_round_trip_only_merges_negative_zero() {
        for c in 0..=255u8 {
            let back = ulaw_encode(ulaw_decode(c));
            if c == 0x7F {
                // 0x7F is "-0"; it decodes to 0, which encodes as the canonical +0 (0xFF).
                assert_eq!(back, 0xFF);
            } else {
                assert_eq!(back, c, "code {c:#04x}");
            }
        }
    }

    #[test]
    fn every_sample_round_trips_within_its_segment_step_and_is_monotonic() {
        let mut prev_u = i16::MIN;
        let mut prev_a = i16::MIN;
        for s in i16::MIN..=i16::MAX {
            let u = ulaw_decode(ulaw_encode(s));
            let a = alaw_decode(alaw_encode(s));
            // Quantisation error is at most one step of the top segment (plus clipping).
            let clip_u = (s as i32).clamp(-32124, 32124);
            let clip_a = (s as i32).clamp(-32256, 32256);
            assert!((u as i32 - clip_u).abs() <= 1024, "ulaw {s} -> {u}");
            assert!((a as i32 - clip_a).abs() <= 1024, "alaw {s} -> {a}");
            // Step size grows with magnitude: relative error bounded for larger signals.
            if s.unsigned_abs() > 256 {
                assert!(
                    (u as i32 - clip_u).abs() * 16 <= (s as i32).abs() + 64,
                    "ulaw {s} -> {u}"
                );
                assert!(
                    (a as i32 - clip_a).abs() * 16 <= (s as i32).abs() + 64,
                    "alaw {s} -> {a}"
                );
            }
            assert!(u >= prev_u && a >= prev_a, "not monotonic at {s}");
            prev_u = u;
            prev_a = a;
        }
    }

    #[test]
    fn silence_and_extremes() {
        assert_eq!(ulaw_encode(0), ULAW_SILENCE);
        assert_eq!(alaw_encode(0), ALAW_SILENCE);
        assert_eq!(ulaw_decode(ULAW_SILENCE), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
    }

    #[test]
    fn slice_versions_match_scalar_and_respect_lengths() {
        let pcm: Vec<i16> = (0..200).map(|i| (i * 331 - 30000) as i16).collect();
        let mut u = [0u8; 160];
        let mut a = [0u8; 160];
        assert_eq!(encode_ulaw(&pcm, &mut u), 160);
        assert_eq!(encode_alaw(&pcm, &mut a), 160);
        for i in 0..160 {
            assert_eq!(u[i], ulaw_encode(pcm[i]));
            assert_eq!(a[i], alaw_encode(pcm[i]));
        }
        let mut back = [0i16; 100];
        assert_eq!(decode_ulaw(&u, &mut back), 100);
        assert_eq!(back[7], ulaw_decode(u[7]));
        assert_eq!(decode_alaw(&a[..10], &mut back), 10);
        assert_eq!(back[9], alaw_decode(a[9]));
    }
}
