//! The GE2E network: 3-layer LSTM (40 → 256), last layer's final hidden state → linear 256→256 → ReLU → L2 norm.
//!
//! All partial utterances of one call are run as one batch: each weight row is then loaded once per time step
//! and used for every partial, which is what keeps 3 s of audio well under 100 ms on one core.

use super::weights::{LstmLayer, Weights, EMBEDDING_DIM, HIDDEN};

/// Dot product written so the compiler vectorises it (16 independent accumulators: two AVX registers).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..16 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Runs one layer over `batch` sequences of `steps` frames (`input`: batch × steps × layer.input).
/// Returns the hidden states (batch × steps × HIDDEN) when `all_steps`, else only the last (batch × HIDDEN).
///
/// The portable build only assumes SSE2; on x86-64 CPUs with AVX2 (any deployment target, see
/// `.cargo/config.toml`) the same code compiled for AVX2 runs about twice as fast.
fn lstm_layer(
    layer: &LstmLayer,
    input: &[f32],
    batch: usize,
    steps: usize,
    all_steps: bool,
) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above), the only requirement of this function.
            return unsafe { lstm_layer_avx2(layer, input, batch, steps, all_steps) };
        }
    }
    lstm_layer_impl(layer, input, batch, steps, all_steps)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lstm_layer_avx2(
    layer: &LstmLayer,
    input: &[f32],
    batch: usize,
    steps: usize,
    all_steps: bool,
) -> Vec<f32> {
    lstm_layer_impl(layer, input, batch, steps, all_steps)
}

#[inline(always)]
fn lstm_layer_impl(
    layer: &LstmLayer,
    input: &[f32],
    batch: usize,
    steps: usize,
    all_steps: bool,
) -> Vec<f32> {
    let gates_n = 4 * HIDDEN;
    let frames = batch * steps;
    // Input projections for every frame at once: rows of W_ih stay hot across a block of frames.
    let mut pre = vec![0f32; frames * gates_n];
    const BLOCK: usize = 32;
    for f0 in (0..frames).step_by(BLOCK) {
        let f1 = (f0 + BLOCK).min(frames);
        for (r, w) in layer.w_ih.chunks_exact(layer.input).enumerate() {
            let b = layer.bias[r];
            for f in f0..f1 {
                let x = &input[f * layer.input..(f + 1) * layer.input];
                pre[f * gates_n + r] = dot(w, x) + b;
            }
        }
    }
    let mut h = vec![0f32; batch * HIDDEN];
    let mut c = vec![0f32; batch * HIDDEN];
    let mut gates = vec![0f32; batch * gates_n];
    let mut out = if all_steps {
        vec![0f32; frames * HIDDEN]
    } else {
        Vec::new()
    };
    for t in 0..steps {
        for bi in 0..batch {
            let f = bi * steps + t;
            gates[bi * gates_n..(bi + 1) * gates_n]
                .copy_from_slice(&pre[f * gates_n..(f + 1) * gates_n]);
        }
        if t > 0 {
            for (r, w) in layer.w_hh.chunks_exact(HIDDEN).enumerate() {
                for bi in 0..batch {
                    gates[bi * gates_n + r] += dot(w, &h[bi * HIDDEN..(bi + 1) * HIDDEN]);
                }
            }
        }
        for bi in 0..batch {
            let g = &gates[bi * gates_n..(bi + 1) * gates_n];
            let hs = &mut h[bi * HIDDEN..(bi + 1) * HIDDEN];
            let cs = &mut c[bi * HIDDEN..(bi + 1) * HIDDEN];
            for j in 0..HIDDEN {
                let i = sigmoid(g[j]);
                let fg = sigmoid(g[HIDDEN + j]);
                let gg = g[2 * HIDDEN + j].tanh();
                let o = sigmoid(g[3 * HIDDEN + j]);
                cs[j] = fg * cs[j] + i * gg;
                hs[j] = o * cs[j].tanh();
            }
            if all_steps {
                let f = bi * steps + t;
                out[f * HIDDEN..(f + 1) * HIDDEN].copy_from_slice(hs);
            }
        }
    }
    if all_steps {
        out
    } else {
        h
    }
}

/// Embeddings (each L2-normalised, `EMBEDDING_DIM` long) of `batch` mel sequences of `steps` frames each.
/// A partial whose ReLU output is all zero (never seen in practice) yields a zero vector.
pub(crate) fn forward(w: &Weights, mels: &[f32], batch: usize, steps: usize) -> Vec<Vec<f32>> {
    let mut x = mels.to_vec();
    let last = w.lstm.len().saturating_sub(1);
    for (l, layer) in w.lstm.iter().enumerate() {
        x = lstm_layer(layer, &x, batch, steps, l < last);
    }
    x.chunks_exact(HIDDEN)
        .map(|h| {
            let mut e: Vec<f32> = w
                .linear_w
                .chunks_exact(HIDDEN)
                .zip(&w.linear_b)
                .map(|(row, b)| (dot(row, h) + b).max(0.0))
                .collect();
            debug_assert_eq!(e.len(), EMBEDDING_DIM);
            let norm = e.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                e.iter_mut().for_each(|v| *v /= norm);
            }
            e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_handles_remainders() {
        let a: Vec<f32> = (0..13).map(|i| i as f32).collect();
        let b = vec![1.0f32; 13];
        assert_eq!(dot(&a, &b), 78.0);
    }

    /// One step of a 1-unit LSTM against hand arithmetic, through the same code path (HIDDEN is fixed, so the
    /// check is on unit 0 with all other weights zero).
    #[test]
    fn single_step_matches_the_lstm_equations() {
        let input = 2;
        let mut w_ih = vec![0f32; 4 * HIDDEN * input];
        let mut bias = vec![0f32; 4 * HIDDEN];
        // gate rows for unit 0: i=0, f=HIDDEN, g=2H, o=3H
        for (gate, (wx, b)) in [
            (0usize, (0.5f32, 0.1f32)),
            (1, (0.2, 0.0)),
            (2, (1.0, -0.3)),
            (3, (-0.4, 0.2)),
        ] {
            w_ih[gate * HIDDEN * input] = wx;
            bias[gate * HIDDEN] = b;
        }
        let layer = LstmLayer {
            input,
            w_ih,
            w_hh: vec![0f32; 4 * HIDDEN * HIDDEN],
            bias,
        };
        let h = lstm_layer(&layer, &[1.5, 7.0], 1, 1, false);
        let x = 1.5f32;
        let i = sigmoid(0.5 * x + 0.1);
        let g = (1.0 * x - 0.3).tanh();
        let o = sigmoid(-0.4 * x + 0.2);
        let expect = o * (i * g).tanh();
        assert!((h[0] - expect).abs() < 1e-6, "{} vs {expect}", h[0]);
        assert!(h[1..].iter().all(|&v| v == 0.0));
    }
}
