use super::*;

fn unit(i: usize) -> Embedding {
    let mut v = vec![0f32; EMBEDDING_DIM];
    v[i] = 1.0;
    v[(i + 1) % EMBEDDING_DIM] = 1.0;
    Embedding::from_vec(v).unwrap()
}

#[test]
fn template_round_trips_and_rejects_garbage() {
    let t = Template {
        embedding: unit(3),
        speech: Duration::from_millis(8_240),
        segments: 4,
    };
    let b = t.to_bytes();
    assert_eq!(b.len(), 1_038);
    assert_eq!(Template::from_bytes(&b).unwrap(), t);
    assert!(Template::from_bytes(&b[..100]).is_err());
    let mut other_model = b.clone();
    other_model[5] = 9;
    assert!(matches!(
        Template::from_bytes(&other_model),
        Err(VoiceprintError::Template("made with another speaker model"))
    ));
}

#[test]
fn similarity_and_verdicts() {
    let a = unit(0);
    let b = unit(1);
    assert!((a.similarity(&a) - 1.0).abs() < 1e-6);
    assert!((a.similarity(&b) - 0.5).abs() < 1e-6);
    assert_eq!(a.similarity(&unit(100)), 0.0);
    let t = Template {
        embedding: a.clone(),
        speech: DEFAULT_ENROLL_SPEECH,
        segments: 1,
    };
    assert!(matches!(verify(&t, &b, 0.4), Verdict::Accept { .. }));
    assert!(matches!(verify(&t, &b, 0.6), Verdict::Reject { score } if (score - 0.5).abs() < 1e-6));
    let m = Embedding::mean([&a, &unit(100)]).unwrap();
    assert!((m.similarity(&a) - m.similarity(&unit(100))).abs() < 1e-6);
    assert!(Embedding::from_vec(vec![0.0; EMBEDDING_DIM]).is_none());
    assert!(Embedding::from_vec(vec![1.0; 3]).is_none());
}

#[test]
fn speech_only_drops_leading_and_trailing_silence() {
    let frame = 160;
    let mut pcm = vec![0i16; 10 * frame];
    // 30 frames of a 400 Hz tone at about -12 dBFS, with faint hiss (-70 dBFS) around it.
    pcm.extend(
        (0..30 * frame).map(|i| {
            (8000.0 * (i as f32 * 2.0 * std::f32::consts::PI * 400.0 / 8000.0).sin()) as i16
        }),
    );
    pcm.extend((0..35 * frame).map(|i| if i % 2 == 0 { 10 } else { -10 }));
    let kept = speech_only(&pcm);
    assert_eq!(kept.len(), 30 * frame);
    assert!(speech_only(&[0i16; 1600]).is_empty());
}
