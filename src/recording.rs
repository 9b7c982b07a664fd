//! The recording writer: one thread that owns every open WAV file, so media threads never touch the disk.
//!
//! Media threads hand over chunks of interleaved stereo frames through one queue, so opens, data and closes
//! stay in order, and never wait on it: audio chunks are bounded by a counter (when `queue_chunks` are
//! waiting, a new chunk is dropped and counted, and the writer fills the gap with silence from the next
//! chunk's frame index, so both channels stay aligned with the call's timeline); opens and closes are tiny
//! and always queued.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use voxgate_media::wav::StereoWavWriter;

use crate::metrics::Metrics;

/// Interleaved samples per 20 ms stereo frame.
pub const STEREO_FRAME: usize = 2 * voxgate_media::FRAME_SAMPLES;
/// Frames per chunk handed to the writer (1 s).
pub const CHUNK_FRAMES: usize = 50;

pub enum RecMsg {
    Open {
        key: u64,
        path: PathBuf,
    },
    /// `samples` holds whole stereo frames starting at frame index `first_frame`.
    Data {
        key: u64,
        first_frame: u64,
        samples: Vec<i16>,
    },
    Close {
        key: u64,
    },
}

/// Where a media thread sends chunks, and where emptied buffers come back for reuse.
#[derive(Clone)]
pub struct RecordingSink {
    tx: Sender<RecMsg>,
    recycled: Receiver<Vec<i16>>,
    metrics: Arc<Metrics>,
    queued_chunks: Arc<AtomicUsize>,
    max_chunks: usize,
}

impl RecordingSink {
    pub fn open(&self, key: u64, path: PathBuf) {
        let _ = self.tx.send(RecMsg::Open { key, path });
    }

    pub fn close(&self, key: u64) {
        let _ = self.tx.send(RecMsg::Close { key });
    }

    /// A buffer for the next chunk, reused when the writer has returned one.
    pub fn buffer(&self) -> Vec<i16> {
        self.recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK_FRAMES * STEREO_FRAME))
    }

    /// Never blocks: with the writer `max_chunks` behind, the chunk is dropped (the writer pads the gap).
    pub fn submit(&self, key: u64, first_frame: u64, samples: Vec<i16>) {
        let frames = (samples.len() / STEREO_FRAME) as u64;
        if self.queued_chunks.fetch_add(1, Ordering::AcqRel) >= self.max_chunks {
            self.queued_chunks.fetch_sub(1, Ordering::AcqRel);
            Metrics::add(&self.metrics.recording_frames_dropped_total, frames);
            return;
        }
        let sent = self.tx.send(RecMsg::Data {
            key,
            first_frame,
            samples,
        });
        if sent.is_err() {
            self.queued_chunks.fetch_sub(1, Ordering::AcqRel);
            Metrics::add(&self.metrics.recording_frames_dropped_total, frames);
        }
    }
}

struct OpenFile {
    writer: StereoWavWriter,
    frames_written: u64,
    path: PathBuf,
}

/// Starts the writer thread.
pub fn spawn_writer(
    metrics: Arc<Metrics>,
    queue_chunks: usize,
) -> std::io::Result<(RecordingSink, std::thread::JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::unbounded::<RecMsg>();
    let (recycle_tx, recycle_rx) = crossbeam_channel::bounded::<Vec<i16>>(queue_chunks);
    let queued_chunks = Arc::new(AtomicUsize::new(0));
    let writer_count = queued_chunks.clone();
    let handle = std::thread::Builder::new()
        .name("recording".into())
        .spawn(move || writer_loop(rx, recycle_tx, &writer_count))?;
    Ok((
        RecordingSink {
            tx,
            recycled: recycle_rx,
            metrics,
            queued_chunks,
            max_chunks: queue_chunks,
        },
        handle,
    ))
}

fn writer_loop(rx: Receiver<RecMsg>, recycle: Sender<Vec<i16>>, queued_chunks: &AtomicUsize) {
    let silence = [0i16; STEREO_FRAME];
    let mut files: HashMap<u64, OpenFile> = HashMap::new();
    for msg in rx {
        match msg {
            RecMsg::Open { key, path } => match StereoWavWriter::create(&path) {
                Ok(writer) => {
                    files.insert(
                        key,
                        OpenFile {
                            writer,
                            frames_written: 0,
                            path,
                        },
                    );
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot create recording")
                }
            },
            RecMsg::Data {
                key,
                first_frame,
                mut samples,
            } => {
                queued_chunks.fetch_sub(1, Ordering::AcqRel);
                if let Some(f) = files.get_mut(&key) {
                    let mut ok = true;
                    while ok && f.frames_written < first_frame {
                        ok = f.writer.write_frame(&silence).is_ok();
                        f.frames_written += 1;
                    }
                    for frame in samples.chunks_exact(STEREO_FRAME) {
                        if !ok {
                            break;
                        }
                        if let Ok(frame) = <&[i16; STEREO_FRAME]>::try_from(frame) {
                            ok = f.writer.write_frame(frame).is_ok();
                            f.frames_written += 1;
                        }
                    }
                    if !ok {
                        tracing::error!(path = %f.path.display(), "recording write failed; closing it");
                        if let Some(f) = files.remove(&key) {
                            let _ = f.writer.finalize();
                        }
                    }
                }
                samples.clear();
                let _ = recycle.try_send(samples);
            }
            RecMsg::Close { key } => {
                if let Some(f) = files.remove(&key) {
                    if let Err(e) = f.writer.finalize() {
                        tracing::error!(path = %f.path.display(), error = %e, "cannot finalize recording");
                    }
                }
            }
        }
    }
    for (_, f) in files {
        let _ = f.writer.finalize();
    }
}
