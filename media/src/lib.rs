//! Sans-IO media: RTP/RTCP, jitter buffer, codecs, DTMF, prompt playback and recording.
//! Everything here takes `now` (or a frame) as input; nothing reads clocks or sockets.

/// Samples in one 20 ms frame at the internal 8 kHz rate.
pub const FRAME_SAMPLES: usize = 160;
/// Internal sample rate of the whole media pipeline.
pub const SAMPLE_RATE: u32 = 8000;
/// One 20 ms frame of internal audio.
pub type Frame = [i16; FRAME_SAMPLES];

// Network side.
pub mod clock;
pub mod codec;
pub mod dtmf;
pub mod g711;
pub mod jitter;
pub mod plc;
pub mod rtcp;
pub mod rtp;
pub mod session;

// Audio side.
pub mod player;
pub mod readout;
pub mod recorder;
pub mod resample;
pub mod speech;
pub mod wav;
