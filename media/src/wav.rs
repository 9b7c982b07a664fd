//! WAV in (prompts, any format) and WAV out (8 kHz stereo call recordings).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::resample::{self, ResampleError};
use crate::{FRAME_SAMPLES, SAMPLE_RATE};

/// Most samples (all channels) accepted from one file: bounds start-up memory (~256 MiB of
/// `f32`), while still allowing e.g. 10 minutes of 48 kHz stereo hold music.
pub const MAX_INPUT_SAMPLES: u32 = 64 * 1024 * 1024;
/// Most channels accepted when mixing down to mono.
pub const MAX_CHANNELS: u16 = 8;

/// Samples in one interleaved stereo recording frame (L/R × 160).
pub const STEREO_FRAME_SAMPLES: usize = FRAME_SAMPLES * 2;

/// Data bytes a RIFF file can describe, minus headroom for the header.
const MAX_DATA_BYTES: u64 = u32::MAX as u64 - 4096;

/// Why a WAV file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// Opening, reading or writing failed at the OS level or the RIFF structure is broken.
    #[error("{path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
    /// Sample encoding we do not decode (e.g. 64-bit float, 12-bit int).
    #[error("{path}: unsupported sample format {format:?} {bits} bit", path = path.display())]
    UnsupportedFormat {
        path: PathBuf,
        format: hound::SampleFormat,
        bits: u16,
    },
    /// Zero or implausibly many channels.
    #[error("{path}: unsupported channel count {channels} (1..={MAX_CHANNELS})", path = path.display())]
    UnsupportedChannels { path: PathBuf, channels: u16 },
    /// The file holds more than [`MAX_INPUT_SAMPLES`] samples.
    #[error("{path}: {samples} samples exceed the limit of {MAX_INPUT_SAMPLES}", path = path.display())]
    TooLong { path: PathBuf, samples: u32 },
    /// The recording reached the 4 GiB RIFF size limit (~37 hours); further frames are refused.
    #[error("{path}: WAV size limit reached", path = path.display())]
    Full { path: PathBuf },
    /// The rate is outside what the resampler accepts.
    #[error("{path}: {source}", path = path.display())]
    Resample {
        path: PathBuf,
        #[source]
        source: ResampleError,
    },
}

/// Writes 8 kHz mono 16-bit PCM (test corpora, clips for inspection).
pub fn write_wav_8k_mono(path: &Path, samples: &[i16]) -> Result<(), WavError> {
    let io_err = |source| WavError::Io {
        path: path.to_path_buf(),
        source,
    };
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(io_err)?;
    for &s in samples {
        w.write_sample(s).map_err(io_err)?;
    }
    w.finalize().map_err(io_err)
}

/// Decodes a WAV file of any common format to 8 kHz mono 16-bit PCM.
///
/// Accepts 8/16/24/32-bit integer and 32-bit float, any channel count up to
/// [`MAX_CHANNELS`] (averaged to mono) and any rate the resampler accepts.
pub fn load_wav_8k_mono(path: &Path) -> Result<Vec<i16>, WavError> {
    let io_err = |source| WavError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = hound::WavReader::open(path).map_err(io_err)?;
    let spec = reader.spec();
    if spec.channels == 0 || spec.channels > MAX_CHANNELS {
        return Err(WavError::UnsupportedChannels {
            path: path.to_path_buf(),
            channels: spec.channels,
        });
    }
    let channels = usize::from(spec.channels);
    if reader.len() > MAX_INPUT_SAMPLES {
        return Err(WavError::TooLong {
            path: path.to_path_buf(),
            samples: reader.len(),
        });
    }

    // Decode into normalised interleaved f32, whatever the source encoding.
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| (f64::from(v) * scale) as f32))
                .collect::<Result<_, _>>()
                .map_err(io_err)?
        }
        (hound::SampleFormat::Float, 32) => reader
            .samples::<f32>()
            .map(|s| {
                s.map(|v| {
                    if v.is_finite() {
                        v.clamp(-1.0, 1.0)
                    } else {
                        0.0
                    }
                })
            })
            .collect::<Result<_, _>>()
            .map_err(io_err)?,
        (format, bits) => {
            return Err(WavError::UnsupportedFormat {
                path: path.to_path_buf(),
                format,
                bits,
            })
        }
    };

    let mono: Vec<f32> = interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    let resampled = resample::resample(&mono, spec.sample_rate, SAMPLE_RATE).map_err(|source| {
        WavError::Resample {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(resampled.into_iter().map(resample::f32_to_i16).collect())
}

/// Writes a call recording: 8 kHz, 16-bit, stereo (left = caller, right = voxgate).
///
/// Lives on the recording thread; the media thread hands it frames produced by
/// [`crate::recorder::CallRecorder`]. Dropping without [`StereoWavWriter::finalize`] still
/// tries to fix the header, but only `finalize` reports whether that worked.
pub struct StereoWavWriter {
    path: PathBuf,
    writer: hound::WavWriter<BufWriter<File>>,
    frames: u64,
}

impl std::fmt::Debug for StereoWavWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StereoWavWriter")
            .field("path", &self.path)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl StereoWavWriter {
    /// Creates (truncates) `path` and writes a provisional header.
    pub fn create(path: &Path) -> Result<Self, WavError> {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(path, spec).map_err(|source| WavError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            writer,
            frames: 0,
        })
    }

    /// Appends one interleaved L/R 20 ms frame.
    pub fn write_frame(&mut self, frame: &[i16; STEREO_FRAME_SAMPLES]) -> Result<(), WavError> {
        self.ensure_room(STEREO_FRAME_SAMPLES)?;
        let mut w = self.writer.get_i16_writer(STEREO_FRAME_SAMPLES as u32);
        for &s in frame {
            w.write_sample(s);
        }
        w.flush().map_err(|source| WavError::Io {
            path: self.path.clone(),
            source,
        })?;
        self.frames += 1;
        Ok(())
    }

    /// Appends interleaved samples of any length (e.g. the tail drained by
    /// [`crate::recorder::CallRecorder::finish`]). An odd trailing sample is dropped.
    pub fn write_interleaved(&mut self, samples: &[i16]) -> Result<(), WavError> {
        self.ensure_room(samples.len())?;
        for pair in samples.chunks_exact(2) {
            for &s in pair {
                self.writer.write_sample(s).map_err(|source| WavError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            }
        }
        self.frames += (samples.len() / STEREO_FRAME_SAMPLES) as u64;
        Ok(())
    }

    /// hound's u32 byte counter must never overflow (that would panic or corrupt the header).
    fn ensure_room(&self, samples: usize) -> Result<(), WavError> {
        let after = u64::from(self.writer.len()) * 2 + samples as u64 * 2;
        if after > MAX_DATA_BYTES {
            return Err(WavError::Full {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// Whole frames written so far.
    pub fn frames_written(&self) -> u64 {
        self.frames
    }

    /// Where the recording goes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Patches the RIFF/data sizes and flushes; the file is a valid WAV only after this.
    pub fn finalize(self) -> Result<(), WavError> {
        let path = self.path;
        self.writer
            .finalize()
            .map_err(|source| WavError::Io { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resample::tests::{goertzel_amplitude, zero_crossing_freq};

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("voxgate-media-wav-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes a 1 kHz, half-scale tone in the given format; stereo puts it in both channels
    /// with opposite DC offsets so a correct mix-down cancels the offset.
    fn write_tone(path: &Path, rate: u32, channels: u16, format: hound::SampleFormat, bits: u16) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: format,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..rate / 2 {
            let v =
                0.5 * (2.0 * std::f64::consts::PI * 1000.0 * f64::from(i) / f64::from(rate)).sin();
            for ch in 0..channels {
                let offset = if channels == 2 {
                    if ch == 0 {
                        0.2
                    } else {
                        -0.2
                    }
                } else {
                    0.0
                };
                let x = v + offset;
                match format {
                    hound::SampleFormat::Float => w.write_sample(x as f32).unwrap(),
                    hound::SampleFormat::Int => {
                        let max = f64::from((1u32 << (bits - 1)) - 1);
                        w.write_sample((x * max).round() as i32).unwrap()
                    }
                }
            }
        }
        w.finalize().unwrap();
    }

    #[test]
    fn loads_every_supported_format_to_8k_mono() {
        let dir = temp_dir("formats");
        let cases = [
            (44_100, 2, hound::SampleFormat::Int, 16),
            (48_000, 1, hound::SampleFormat::Int, 24),
            (16_000, 1, hound::SampleFormat::Int, 32),
            (22_050, 2, hound::SampleFormat::Int, 8),
            (32_000, 1, hound::SampleFormat::Float, 32),
            (8_000, 1, hound::SampleFormat::Int, 16),
        ];
        for (i, &(rate, ch, fmt, bits)) in cases.iter().enumerate() {
            let path = dir.join(format!("t{i}.wav"));
            write_tone(&path, rate, ch, fmt, bits);
            let pcm = load_wav_8k_mono(&path).unwrap();
            assert_eq!(pcm.len(), 4_000, "case {i}");
            let x: Vec<f32> = pcm[400..3600]
                .iter()
                .map(|&s| resample::i16_to_f32(s))
                .collect();
            let f = zero_crossing_freq(&x, 8_000);
            assert!((f - 1000.0).abs() < 3.0, "case {i}: {f} Hz");
            let a = goertzel_amplitude(&x, 1000.0, 8_000);
            // 8-bit quantisation costs a little accuracy; the rest must be exact-ish.
            assert!((a - 0.5).abs() < 0.02, "case {i}: amplitude {a}");
            let dc = x.iter().sum::<f32>() / x.len() as f32;
            assert!(dc.abs() < 0.01, "case {i}: stereo mix-down left DC {dc}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn garbage_and_unsupported_files_are_errors() {
        let dir = temp_dir("garbage");
        let junk = dir.join("junk.wav");
        std::fs::write(&junk, b"RIFF\x10\0\0\0WAVEfmt garbage").unwrap();
        assert!(matches!(load_wav_8k_mono(&junk), Err(WavError::Io { .. })));
        let missing = dir.join("missing.wav");
        assert!(matches!(
            load_wav_8k_mono(&missing),
            Err(WavError::Io { .. })
        ));
        let rate = dir.join("rate.wav");
        write_tone(&rate, 500, 1, hound::SampleFormat::Int, 16);
        assert!(matches!(
            load_wav_8k_mono(&rate),
            Err(WavError::Resample { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn stereo_writer_produces_valid_8k_file() {
        let dir = temp_dir("writer");
        let path = dir.join("call.wav");
        let mut w = StereoWavWriter::create(&path).unwrap();
        let mut frame = [0i16; STEREO_FRAME_SAMPLES];
        for n in 0..50i16 {
            for (i, pair) in frame.chunks_exact_mut(2).enumerate() {
                pair[0] = n;
                pair[1] = -(i as i16);
            }
            w.write_frame(&frame).unwrap();
        }
        w.write_interleaved(&[7, -7, 8, -8]).unwrap();
        assert_eq!(w.frames_written(), 50);
        w.finalize().unwrap();

        let mut r = hound::WavReader::open(&path).unwrap();
        let spec = r.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 8_000, 16)
        );
        assert_eq!(r.duration(), 50 * 160 + 2);
        let samples: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(samples[0..4], [0, 0, 0, -1]);
        let last_frame = &samples[49 * 320..50 * 320];
        assert!(last_frame.chunks_exact(2).all(|p| p[0] == 49));
        assert_eq!(samples[50 * 320..], [7, -7, 8, -8]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
