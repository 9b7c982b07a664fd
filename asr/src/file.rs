//! Offline transcription of WAV files (`voxgate transcribe`): any rate, each channel on its own.
//!
//! Call recordings are stereo with caller and prompt on separate channels; mixing them would interleave two
//! speakers into one transcript, so every channel is decoded separately and labelled.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::recognizer::{AsrError, Recognizer, Transcript};

#[derive(Debug, Error)]
pub enum TranscribeFileError {
    #[error("cannot read {path}: {source}")]
    Wav {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
    #[error("{path} has no audio channels")]
    NoChannels { path: PathBuf },
    #[error("{path} has {channels} channel(s); channel {requested} does not exist")]
    NoSuchChannel {
        path: PathBuf,
        channels: u16,
        requested: u16,
    },
    #[error("{path}: unsupported sample format ({bits}-bit {format:?})")]
    Format {
        path: PathBuf,
        bits: u16,
        format: hound::SampleFormat,
    },
    #[error(transparent)]
    Recognizer(#[from] AsrError),
    #[error("{path}, channel {channel}: {source}")]
    Asr {
        path: PathBuf,
        channel: u16,
        #[source]
        source: AsrError,
    },
}

/// One channel's transcript; `channel` counts from 0.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelTranscript {
    pub channel: u16,
    pub transcript: Transcript,
}

/// Decoded WAV: rate and one `i16` buffer per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct WavChannels {
    pub rate_hz: u32,
    pub channels: Vec<Vec<i16>>,
}

/// Reads any PCM or float WAV and splits it into channels at 16-bit.
pub fn load_wav_channels(path: &Path) -> Result<WavChannels, TranscribeFileError> {
    let wav_err = |source| TranscribeFileError::Wav {
        path: path.to_owned(),
        source,
    };
    let mut reader = hound::WavReader::open(path).map_err(wav_err)?;
    let spec = reader.spec();
    let n = usize::from(spec.channels);
    if n == 0 {
        return Err(TranscribeFileError::NoChannels {
            path: path.to_owned(),
        });
    }
    let per_channel = usize::try_from(reader.duration()).unwrap_or(0);
    let mut channels = vec![Vec::with_capacity(per_channel); n];
    let mut push = |i: usize, s: i16| {
        if let Some(ch) = channels.get_mut(i % n) {
            ch.push(s);
        }
    };
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, bits @ 1..=32) => {
            for (i, s) in reader.samples::<i32>().enumerate() {
                let s = s.map_err(wav_err)?;
                // Scale to 16 bits: shift down wider formats, up narrower ones.
                let v = if bits >= 16 {
                    s >> (bits - 16)
                } else {
                    s << (16 - bits)
                };
                push(i, v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16);
            }
        }
        (hound::SampleFormat::Float, 32) => {
            for (i, s) in reader.samples::<f32>().enumerate() {
                let s = s.map_err(wav_err)?;
                push(i, (s.clamp(-1.0, 1.0) * 32767.0) as i16);
            }
        }
        (format, bits) => {
            return Err(TranscribeFileError::Format {
                path: path.to_owned(),
                bits,
                format,
            })
        }
    }
    Ok(WavChannels {
        rate_hz: spec.sample_rate,
        channels,
    })
}

/// Transcribes every channel of `path` (or only `channel`), resampling to whisper's rate.
pub fn transcribe_file(
    recognizer: &mut Recognizer,
    path: &Path,
    channel: Option<u16>,
) -> Result<Vec<ChannelTranscript>, TranscribeFileError> {
    let wav = load_wav_channels(path)?;
    let count = u16::try_from(wav.channels.len()).unwrap_or(u16::MAX);
    let wanted: Vec<u16> = match channel {
        Some(c) if c < count => vec![c],
        Some(c) => {
            return Err(TranscribeFileError::NoSuchChannel {
                path: path.to_owned(),
                channels: count,
                requested: c,
            })
        }
        None => (0..count).collect(),
    };
    let mut out = Vec::with_capacity(wanted.len());
    for c in wanted {
        let pcm = wav
            .channels
            .get(usize::from(c))
            .map_or(&[][..], Vec::as_slice);
        let transcript = if pcm.is_empty() {
            Transcript::default()
        } else {
            recognizer
                .transcribe_pcm(pcm, wav.rate_hz, None)
                .map_err(|source| TranscribeFileError::Asr {
                    path: path.to_owned(),
                    channel: c,
                    source,
                })?
        };
        out.push(ChannelTranscript {
            channel: c,
            transcript,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, spec: hound::WavSpec, samples: &[i32]) {
        let mut w = hound::WavWriter::create(path, spec).expect("create");
        for &s in samples {
            w.write_sample(s).expect("write");
        }
        w.finalize().expect("finalize");
    }

    #[test]
    fn stereo_is_split_into_channels_and_scaled_to_16_bit() {
        let dir = std::env::temp_dir().join(format!("voxgate-asr-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("stereo24.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 24,
            sample_format: hound::SampleFormat::Int,
        };
        write_wav(&path, spec, &[256, -512, 1 << 22, -(1 << 23)]);
        let wav = load_wav_channels(&path).expect("load");
        assert_eq!(wav.rate_hz, 44_100);
        assert_eq!(wav.channels, vec![vec![1, 1 << 14], vec![-2, i16::MIN]]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let dir = std::env::temp_dir().join(format!("voxgate-asr-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("bad.wav");
        std::fs::write(&path, b"RIFF\x10\x00\x00\x00WAVEfmt junk").expect("write");
        assert!(matches!(
            load_wav_channels(&path),
            Err(TranscribeFileError::Wav { .. })
        ));
        std::fs::remove_dir_all(&dir).ok();
    }
}
