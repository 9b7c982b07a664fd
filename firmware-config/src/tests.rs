use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::*;

fn origin() -> PathBuf {
    PathBuf::from("/etc/voxgate/voxgate.toml")
}

fn invalid(text: &str) -> Vec<Diagnostic> {
    match parse(text, &origin()) {
        Err(ConfigError::Invalid(d)) => d,
        other => panic!("expected validation errors, got {other:?}"),
    }
}

/// The single diagnostic's (line, column, key, problem).
fn one(text: &str) -> (usize, usize, String, Problem) {
    let d = invalid(text);
    assert_eq!(d.len(), 1, "{d:#?}");
    let d = d.into_iter().next().unwrap();
    assert_eq!(d.location.file, origin());
    (d.location.line, d.location.column, d.key, d.problem)
}

fn parse_error(text: &str) -> (usize, usize, String) {
    match parse(text, &origin()) {
        Err(ConfigError::Parse { location, message }) => (location.line, location.column, message),
        other => panic!("expected parse error, got {other:?}"),
    }
}

#[test]
fn empty_file_is_default_relative_to_file() {
    let c = parse("", &origin()).unwrap();
    assert_eq!(c, Config::default_in(Path::new("/etc/voxgate")));
    assert_eq!(c.prompts.dir, PathBuf::from("/etc/voxgate/prompts"));
    assert_eq!(
        c.prompts.language_dir(),
        PathBuf::from("/etc/voxgate/prompts/en")
    );
    assert_eq!(c.sip.udp, ["0.0.0.0:5060".parse::<SocketAddr>().unwrap()]);
    assert_eq!(c.media.codecs, [CodecName::Pcmu, CodecName::Pcma]);
    assert_eq!(c.sip.t1(), std::time::Duration::from_millis(500));
    assert_eq!(
        c.media.no_packet_timeout(),
        Some(std::time::Duration::from_secs(60))
    );
    assert_eq!(
        c.dialog.flow,
        PathBuf::from("/etc/voxgate/flows/bank.en.toml")
    );
    assert!(c.dialog.numbers.is_empty());
    assert_eq!(c.dialog.voiceprint_threshold_milli, 900);
    assert_eq!(c.dialog.voiceprint_threshold(), 0.9);
    assert_eq!(c.backend.kind, BackendKind::Demo);
    assert_eq!(
        c.backend.demo_db,
        PathBuf::from("/etc/voxgate/var/demo-bank.sqlite")
    );
    assert_eq!(c.backend.timeout(), std::time::Duration::from_millis(3000));
    assert_eq!(c.handoff.hold_music, None);
    assert_eq!(c.handoff.refer_target, None);
    assert!(c.handoff.agents.is_empty());
}

#[test]
fn default_file_parses_back_to_default() {
    let default = Config::default();
    let text = default.to_toml_string();
    let back = parse(&text, &default.base_dir.join("voxgate.toml")).unwrap();
    assert_eq!(back, default);
    // Portable: paths are written relative, and every key is documented.
    assert!(text.contains("dir = \"prompts\"\n"), "{text}");
    let keys = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(" = "))
        .count();
    let comments = text.lines().filter(|l| l.starts_with("# ")).count();
    assert_eq!(keys, 84, "every schema key is present");
    assert!(text.contains("numbers = {}\n"), "{text}");
    assert!(text.contains("# [[handoff.agent]]\n"), "{text}");
    assert!(comments > keys);
}

#[test]
fn non_default_config_round_trips() {
    let text = r#"
[sip]
udp = ["[::]:5060", "10.0.0.1:5070"]
tcp = []
public_address = "sip.example.com"
[media]
codecs = ["PCMA"]
rtp_port_min = 10000
rtp_port_max = 10001
[recording]
dir = "/data/rec"
[log]
format = "json"
[hw]
pin_media_threads = true
media_cores = [2, 3]
[dialog]
flow = "flows/bank.fr.toml"
numbers = { "+15550200" = "flows/bank.zh.toml", "200" = "/srv/flows/internal.toml" }
voiceprint = false
voiceprint_threshold = 0.8
voiceprint_enroll_secs = 12
[backend]
kind = "webhook"
url = "https://bank.example.com/voxgate"
bearer_token = "s3cret-token"
retries = 0
[handoff]
hold_music = "audio/hold.wav"
ring_timeout_secs = 15

[[handoff.agent]]
name = "alice"
uri = "sip:alice@10.0.0.21:5060"
skills = ["fraud", "general"]

[[handoff.agent]]
name = "Bob Li"
uri = "sips:bob@agents.example.com"
skills = ["cards", "vip"]
languages = ["en", "zh"]
"#;
    let c = parse(text, &origin()).unwrap();
    assert_eq!(c.sip.udp.len(), 2);
    assert!(c.sip.udp[0].is_ipv6());
    assert!(c.sip.tcp.is_empty());
    assert_eq!(c.sip.public_address.as_deref(), Some("sip.example.com"));
    assert_eq!(c.media.codecs, [CodecName::Pcma]);
    assert_eq!(c.recording.dir, PathBuf::from("/data/rec"));
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.hw.media_cores, [2, 3]);
    assert_eq!(
        c.dialog.flow,
        PathBuf::from("/etc/voxgate/flows/bank.fr.toml")
    );
    assert_eq!(
        c.dialog.numbers,
        [
            (
                "+15550200".to_string(),
                PathBuf::from("/etc/voxgate/flows/bank.zh.toml")
            ),
            ("200".to_string(), PathBuf::from("/srv/flows/internal.toml")),
        ]
    );
    assert!(!c.dialog.voiceprint);
    assert_eq!(c.dialog.voiceprint_threshold_milli, 800);
    assert_eq!(c.dialog.voiceprint_enroll_secs, 12);
    assert_eq!(c.backend.kind, BackendKind::Webhook);
    assert_eq!(c.backend.url, "https://bank.example.com/voxgate");
    assert_eq!(c.backend.bearer_token, "s3cret-token");
    assert_eq!(c.backend.retries, 0);
    assert_eq!(
        c.handoff.hold_music,
        Some(PathBuf::from("/etc/voxgate/audio/hold.wav"))
    );
    assert_eq!(c.handoff.ring_timeout_secs, 15);
    assert_eq!(
        c.handoff.agents,
        [
            AgentConfig {
                name: "alice".into(),
                uri: "sip:alice@10.0.0.21:5060".into(),
                skills: vec!["fraud".into(), "general".into()],
                languages: vec!["en".into()],
            },
            AgentConfig {
                name: "Bob Li".into(),
                uri: "sips:bob@agents.example.com".into(),
                skills: vec!["cards".into(), "vip".into()],
                languages: vec!["en".into(), "zh".into()],
            },
        ]
    );
    let rendered = c.to_toml_string();
    assert!(
        rendered.contains(
            "numbers = { \"+15550200\" = \"flows/bank.zh.toml\", \"200\" = \"/srv/flows/internal.toml\" }\n"
        ),
        "{rendered}"
    );
    assert_eq!(
        rendered.matches("\n[[handoff.agent]]\n").count(),
        2,
        "{rendered}"
    );
    let again = parse(&rendered, &origin()).unwrap();
    assert_eq!(again, c);
}

#[test]
fn relative_paths_resolve_against_config_dir() {
    let text = "[prompts]\ndir = \"../share/prompts\"\n[storage]\npath = \"db/v.db\"\n";
    let c = parse(text, Path::new("/opt/vg/conf/voxgate.toml")).unwrap();
    assert_eq!(
        c.prompts.dir,
        PathBuf::from("/opt/vg/conf/../share/prompts")
    );
    assert_eq!(c.storage.path, PathBuf::from("/opt/vg/conf/db/v.db"));
    assert_eq!(
        c.recording.dir,
        PathBuf::from("/opt/vg/conf/var/recordings")
    );
    // A bare file name resolves against ".".
    let c = parse(text, Path::new("voxgate.toml")).unwrap();
    assert_eq!(c.storage.path, PathBuf::from("./db/v.db"));
}

#[test]
fn syntax_error_has_line_and_column() {
    let (line, col, msg) = parse_error("[sip]\nmax_calls = 10\nuser_agent = \"x\n");
    // Unterminated string: reported where the line ends.
    assert_eq!((line, col), (3, 16), "{msg}");
    let (line, col, _) = parse_error("[media]\n\n  codecs = [\"pcmu\",, ]\n");
    assert_eq!((line, col), (3, 20));
}

#[test]
fn unknown_key_has_line_and_column() {
    let (line, col, msg) = parse_error("[sip]\nmax_calls = 10\n  max_cals = 5\n");
    assert_eq!((line, col), (3, 3));
    assert!(msg.contains("max_cals"), "{msg}");
    let (line, col, msg) = parse_error("[sip]\n[mediaa]\nx = 1\n");
    assert_eq!((line, col), (2, 2), "{msg}");
}

#[test]
fn type_error_has_line_and_column() {
    let (line, col, msg) = parse_error("[sip]\nmax_calls = \"many\"\n");
    assert_eq!((line, col), (2, 13), "{msg}");
    let (line, col, _) = parse_error("[media]\ninband_dtmf = 1\n");
    assert_eq!((line, col), (2, 15));
}

#[test]
fn port_range_errors() {
    let (l, c, key, p) = one("[media]\nrtp_port_min = 30000\nrtp_port_max = 20000\n");
    assert_eq!((l, c, key.as_str()), (3, 1, "media.rtp_port_max"));
    assert_eq!(
        p,
        Problem::PortRangeEmpty {
            min: 30000,
            max: 20000
        }
    );
    // Only min given: the error points at min.
    let (l, c, key, _) = one("[media]\n    rtp_port_min = 40000\n");
    assert_eq!((l, c, key.as_str()), (2, 5, "media.rtp_port_min"));
    let (l, c, _, p) = one("[media]\nrtp_port_max = 21000\nrtp_port_min = 20001\n");
    assert_eq!((l, c), (3, 1));
    assert_eq!(p, Problem::OddRtpPort { port: 20001 });
    let (l, c, _, p) = one("[media]\nrtp_port_max = 70000\n");
    assert_eq!((l, c), (2, 1));
    assert_eq!(
        p,
        Problem::OutOfRange {
            value: 70000,
            min: 1,
            max: 65535
        }
    );
}

#[test]
fn zero_and_range_errors() {
    let (l, c, key, p) = one("\n[sip]\nmax_calls = 0\n");
    assert_eq!(
        (l, c, key.as_str(), p),
        (3, 1, "sip.max_calls", Problem::Zero)
    );
    let (l, c, _, p) = one("[media]\nptime_ms = 25\n");
    assert_eq!((l, c, p), (2, 1, Problem::BadPtime { value: 25 }));
    let (l, c, _, p) = one("[media]\njitter_min_ms = 300\n");
    assert_eq!(
        (l, c, p),
        (2, 1, Problem::JitterInverted { min: 300, max: 200 })
    );
    let (l, c, _, p) = one("[sip]\nt1_ms = 500\nt2_ms = 100\n");
    assert_eq!((l, c, p), (3, 1, Problem::T2BelowT1 { t1: 500, t2: 100 }));
    let (l, c, _, p) = one("[call]\nmenu_timeout_secs = -1\n");
    assert_eq!((l, c), (2, 1));
    assert_eq!(
        p,
        Problem::OutOfRange {
            value: -1,
            min: 1,
            max: 3600
        }
    );
}

#[test]
fn address_errors_point_at_the_element() {
    let (l, c, key, p) = one("[sip]\nudp = [\"0.0.0.0:5060\", \"1.2.3.4\"]\n");
    assert_eq!((l, c, key.as_str()), (2, 24, "sip.udp[1]"));
    assert!(matches!(p, Problem::BadSocketAddr { ref value, .. } if value == "1.2.3.4"));
    let (l, c, _, p) = one("[sip]\ntcp = [\"[::]:5060\", \"[::]:5060\"]\n");
    assert_eq!((l, c), (2, 21));
    assert!(matches!(p, Problem::DuplicateAddr { .. }));
    let (l, c, key, _) = one("[http]\nbind = \"localhost:80\"\n");
    assert_eq!((l, c, key.as_str()), (2, 1, "http.bind"));
    let (l, c, _, p) = one("[media]\nrtp_bind = \"0.0.0.0:1\"\n");
    assert_eq!((l, c), (2, 1));
    assert!(matches!(p, Problem::BadIpAddr { .. }));
    let (_, _, _, p) = one("[sip]\npublic_address = \"1.2.3.4:5060\"\n");
    assert!(matches!(p, Problem::BadPublicAddress { .. }));
}

#[test]
fn codec_errors() {
    let (l, c, key, p) = one("[media]\ncodecs = [\"pcmu\", \"g729\"]\n");
    assert_eq!((l, c, key.as_str()), (2, 19, "media.codecs[1]"));
    assert_eq!(
        p,
        Problem::UnknownCodec {
            name: "g729".into()
        }
    );
    let (_, _, _, p) = one("[media]\ncodecs = []\n");
    assert_eq!(p, Problem::NoCodecs);
    let (_, _, _, p) = one("[media]\ncodecs = [\"pcma\", \"PCMA\"]\n");
    assert_eq!(
        p,
        Problem::DuplicateCodec {
            codec: CodecName::Pcma
        }
    );

    let text = "[media]\ncodecs = [\"opus\", \"pcmu\"]\n";
    match parse_with_codecs(text, &origin(), &[CodecName::Pcmu, CodecName::Pcma]) {
        Err(ConfigError::Invalid(d)) => {
            assert_eq!(d.len(), 1);
            assert_eq!((d[0].location.line, d[0].location.column), (2, 11));
            assert_eq!(
                d[0].problem,
                Problem::CodecNotCompiled {
                    codec: CodecName::Opus
                }
            );
        }
        other => panic!("{other:?}"),
    }
    let c = parse_with_codecs(text, &origin(), &CodecName::ALL).unwrap();
    assert_eq!(c.media.codecs, [CodecName::Opus, CodecName::Pcmu]);
}

#[test]
fn misc_string_errors() {
    let (_, _, key, _) = one("[log]\nformat = \"xml\"\n");
    assert_eq!(key, "log.format");
    let (_, _, key, _) = one("[log]\nlevel = \"\"\n");
    assert_eq!(key, "log.level");
    let (_, _, _, p) = one("[sip]\nuser_agent = \"evil\\r\\nX-Injected: 1\"\n");
    assert!(matches!(p, Problem::BadUserAgent { .. }));
    let (_, _, _, p) = one("[prompts]\nlanguage = \"../../etc\"\n");
    assert!(matches!(p, Problem::BadLanguage { .. }));
    let (_, _, _, p) = one("[storage]\npath = \"\"\n");
    assert_eq!(p, Problem::EmptyPath);
    let (l, c, _, p) = one("[hw]\nmedia_cores = [1, 2, 1]\n");
    assert_eq!((l, c, p), (2, 22, Problem::DuplicateCore { core: 1 }));
}

#[test]
fn all_errors_reported_together_in_file_order() {
    let text = "[sip]\nmax_calls = 0\nudp = [\"nope\"]\n[media]\nptime_ms = 7\ncodecs = [\"x\"]\n[http]\nbind = \"\"\n";
    let d = invalid(text);
    let got: Vec<(usize, &str)> = d
        .iter()
        .map(|d| (d.location.line, d.key.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (3, "sip.udp[0]"),
            (2, "sip.max_calls"),
            (6, "media.codecs[0]"),
            (5, "media.ptime_ms"),
            (8, "http.bind"),
        ]
    );
    let msg = ConfigError::Invalid(d).to_string();
    assert_eq!(msg.lines().count(), 5);
    assert!(
        msg.starts_with("/etc/voxgate/voxgate.toml:3:8: sip.udp[0]: invalid socket address"),
        "{msg}"
    );
}

#[test]
fn dotted_and_inline_keys_are_located() {
    let (l, c, _, _) = one("media.ptime_ms = 5\n");
    assert_eq!((l, c), (1, 7));
    let (l, c, _, _) = one("call = { max_duration_secs = 0 }\n");
    assert_eq!((l, c), (1, 10));
}

#[test]
fn load_reads_file_and_reports_missing() {
    let dir = std::env::temp_dir().join(format!("voxgate-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("voxgate.toml");
    std::fs::write(&path, "[sip]\nmax_calls = 5\n").unwrap();
    let c = load(&path).unwrap();
    assert_eq!(c.sip.max_calls, 5);
    assert_eq!(c.storage.path, dir.join("var/voxgate.db"));
    std::fs::write(&path, "[sip]\nmax_calls = 0\n").unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("{}:2:1: sip.max_calls: must not be 0", path.display())
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(load(&path), Err(ConfigError::Read { .. })));
}

#[test]
fn speech_and_asr_errors() {
    let (l, c, key, p) = one("[speech]\nvad = \"silero\"\n");
    assert_eq!((l, c, key.as_str()), (2, 1, "speech.vad"));
    assert!(matches!(p, Problem::UnknownChoice { .. }), "{p:?}");
    let (_, _, key, p) = one("[speech]\nbargein_min_speech_ms = 0\n");
    assert_eq!(
        (key.as_str(), p),
        ("speech.bargein_min_speech_ms", Problem::Zero)
    );
    let (_, _, key, _) = one("[speech]\nstart_speech_ms = 900\nmax_utterance_ms = 800\n");
    assert_eq!(key, "speech.start_speech_ms");
    let (l, _, key, p) = one("[asr]\nmodel = \"tiny.en\"\nlanguage = \"zh\"\n");
    assert_eq!((l, key.as_str()), (3, "asr.language"));
    assert_eq!(p, Problem::LanguageNeedsMultilingual { language: "zh" });
    let c = parse("[asr]\nmodel = \"base\"\nlanguage = \"ZH\"\nmodels_dir = \"m\"\n[speech]\nbargein_resume = \"pause\"\n", &origin()).unwrap();
    assert_eq!(
        (c.asr.model, c.asr.language),
        (AsrModel::Base, AsrLanguage::Zh)
    );
    assert_eq!(c.asr.models_dir, PathBuf::from("/etc/voxgate/m"));
    assert_eq!(c.speech.bargein_resume, BargeInResume::Pause);
    assert_eq!(parse(&c.to_toml_string(), &origin()).unwrap(), c);
    // The 8-bit variants: English-only stays English-only.
    let (_, _, key, _) = one("[asr]\nmodel = \"tiny.en-q8_0\"\nlanguage = \"zh\"\n");
    assert_eq!(key, "asr.language");
    let c = parse(
        "[asr]\nmodel = \"base-q8_0\"\nlanguage = \"zh\"\n",
        &origin(),
    )
    .unwrap();
    assert_eq!(c.asr.model, AsrModel::BaseQ8);
    assert_eq!(parse(&c.to_toml_string(), &origin()).unwrap(), c);
}

#[test]
fn dialog_errors() {
    let (l, c, key, p) =
        one("[dialog]\nnumbers = { \"+15550200\" = \"a.toml\", \"55-01\" = \"b.toml\" }\n");
    assert_eq!((l, c, key.as_str()), (2, 37, "dialog.numbers.55-01"));
    assert_eq!(
        p,
        Problem::BadDialledNumber {
            value: "55-01".into()
        }
    );
    // Table form; keys that are not bare TOML keys are quoted in the diagnostic.
    let (l, c, key, p) = one("[dialog.numbers]\n\"200\" = \"a.toml\"\n  \"+\" = \"b.toml\"\n");
    assert_eq!((l, c, key.as_str()), (3, 3, "dialog.numbers.\"+\""));
    assert_eq!(p, Problem::BadDialledNumber { value: "+".into() });
    let (l, c, _, p) = one("[dialog.numbers]\n\"\" = \"a.toml\"\n");
    assert_eq!(
        (l, c, p),
        (2, 1, Problem::BadDialledNumber { value: "".into() })
    );
    // The binary ignores a leading '+' when matching, so these two clash.
    let (l, c, key, p) =
        one("[dialog]\nnumbers = { \"200\" = \"a.toml\", \"+200\" = \"b.toml\" }\n");
    assert_eq!((l, c, key.as_str()), (2, 13, "dialog.numbers.200"));
    assert_eq!(
        p,
        Problem::DuplicateNumber {
            value: "200".into(),
            other: "+200".into()
        }
    );
    let (l, c, _, p) = one("[dialog]\nnumbers = { \"200\" = \"\" }\n");
    assert_eq!((l, c, p), (2, 13, Problem::EmptyPath));
    let (l, c, _, p) = one("[dialog]\nflow = \"\"\n");
    assert_eq!((l, c, p), (2, 1, Problem::EmptyPath));

    for (written, shown) in [
        ("1.5", "1.5"),
        ("1.0", "1.0"),
        ("0.0", "0.0"),
        ("-0.2", "-0.2"),
        ("1", "1.0"),
        ("0.7555", "0.7555"),
        ("0.0001", "0.0001"),
        ("nan", "nan"),
    ] {
        let (l, c, key, p) = one(&format!(
            "[dialog]\nvoiceprint = true\n  voiceprint_threshold = {written}\n"
        ));
        assert_eq!((l, c, key.as_str()), (3, 3, "dialog.voiceprint_threshold"));
        assert_eq!(
            p,
            Problem::BadThreshold {
                value: shown.into()
            },
            "{written}"
        );
    }
    for (written, milli) in [("0.001", 1), ("0.999", 999), ("0.7", 700), ("0.65", 650)] {
        let c = parse(
            &format!("[dialog]\nvoiceprint_threshold = {written}\n"),
            &origin(),
        )
        .unwrap();
        assert_eq!(c.dialog.voiceprint_threshold_milli, milli, "{written}");
        assert_eq!(parse(&c.to_toml_string(), &origin()).unwrap(), c);
    }

    let (l, c, key, p) = one("[dialog]\nvoiceprint_enroll_secs = 1\n");
    assert_eq!(
        (l, c, key.as_str()),
        (2, 1, "dialog.voiceprint_enroll_secs")
    );
    assert_eq!(
        p,
        Problem::OutOfRange {
            value: 1,
            min: 2,
            max: 120
        }
    );
    let (_, _, key, p) = one("[dialog]\nvoiceprint_min_secs = 0\n");
    assert_eq!(
        (key.as_str(), p),
        ("dialog.voiceprint_min_secs", Problem::Zero)
    );
    let (_, _, _, p) = one("[dialog]\nvoiceprint_min_secs = 61\n");
    assert_eq!(
        p,
        Problem::OutOfRange {
            value: 61,
            min: 1,
            max: 60
        }
    );
}

#[test]
fn backend_errors() {
    // Webhook without url: reported at `kind`, the key that asked for one.
    let (l, c, key, p) = one("[backend]\nretries = 1\nkind = \"webhook\"\n");
    assert_eq!(
        (l, c, key.as_str(), p),
        (3, 1, "backend.kind", Problem::MissingWebhookUrl)
    );
    // ... or at `url` when it is there but empty.
    let (l, c, key, p) = one("[backend]\nkind = \"WEBHOOK\"\n url = \"\"\n");
    assert_eq!(
        (l, c, key.as_str(), p),
        (3, 2, "backend.url", Problem::MissingWebhookUrl)
    );
    for url in [
        "ftp://bank.example.com/",
        "https://",
        "http:///path",
        "bank.example.com",
        "https://bank.example.com/a b",
        "HTTPS://bank.example.com/",
    ] {
        let text = format!(
            "[backend]\nkind = \"webhook\"\nurl = {}\n",
            toml::Value::from(url)
        );
        let (l, c, key, p) = one(&text);
        assert_eq!((l, c, key.as_str()), (3, 1, "backend.url"), "{url}");
        assert_eq!(p, Problem::BadUrl { value: url.into() });
    }
    // A bad url is reported even while the demo bank is in use.
    let (_, _, key, _) = one("[backend]\nurl = \"bank\"\n");
    assert_eq!(key, "backend.url");
    let c = parse(
        "[backend]\nkind = \"webhook\"\nurl = \"http://10.0.0.5:8080/hook\"\n",
        &origin(),
    )
    .unwrap();
    assert_eq!(c.backend.kind, BackendKind::Webhook);

    let (l, c, key, p) = one("[backend]\nkind = \"ldap\"\n");
    assert_eq!((l, c, key.as_str()), (2, 1, "backend.kind"));
    assert_eq!(
        p,
        Problem::UnknownChoice {
            value: "ldap".into(),
            expected: "demo, webhook"
        }
    );
    let (_, _, key, p) = one("[backend]\nmax_pin_attempts = 11\n");
    assert_eq!(key, "backend.max_pin_attempts");
    assert_eq!(
        p,
        Problem::OutOfRange {
            value: 11,
            min: 1,
            max: 10
        }
    );
    let (_, _, key, _) = one("[backend]\ntimeout_ms = 99\n");
    assert_eq!(key, "backend.timeout_ms");
    let (_, _, key, _) = one("[backend]\nretries = 6\n");
    assert_eq!(key, "backend.retries");
    let (_, _, key, _) = one("[backend]\nbackoff_ms = -1\n");
    assert_eq!(key, "backend.backoff_ms");
    let (_, _, _, p) = one("[backend]\ndemo_db = \"\"\n");
    assert_eq!(p, Problem::EmptyPath);

    // A token with a line break would inject a header; the message must not echo the secret.
    let d = invalid("[backend]\nbearer_token = \"abc\\r\\nX-Evil: 1\"\n");
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].location.line, d[0].location.column), (2, 1));
    assert_eq!(d[0].problem, Problem::BadBearerToken);
    assert!(!d[0].to_string().contains("abc"), "{}", d[0]);
}

#[test]
fn backend_debug_redacts_the_token() {
    let c = parse(
        "[backend]\nkind = \"webhook\"\nurl = \"https://h/\"\nbearer_token = \"s3cret\"\n",
        &origin(),
    )
    .unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    assert!(shown.contains("https://h/"), "{shown}");
}

#[test]
fn handoff_errors_point_at_the_agent() {
    // An agent without uri: reported at its [[handoff.agent]] header.
    let text = "[handoff]\nring_timeout_secs = 20\n\n[[handoff.agent]]\nname = \"alice\"\nuri = \"sip:alice@pbx\"\nskills = [\"fraud\"]\n\n  [[handoff.agent]]\nname = \"bob\"\nskills = [\"general\"]\n";
    let (l, c, key, p) = one(text);
    assert_eq!((l, c, key.as_str()), (9, 3, "handoff.agent[1].uri"));
    assert_eq!(p, Problem::BadSipUri { value: "".into() });
    // Present but not a SIP URI: reported at the key.
    let (l, c, key, p) =
        one("[[handoff.agent]]\nname = \"a\"\nskills = [\"vip\"]\nuri = \"tel:+15550100\"\n");
    assert_eq!((l, c, key.as_str()), (4, 1, "handoff.agent[0].uri"));
    assert_eq!(
        p,
        Problem::BadSipUri {
            value: "tel:+15550100".into()
        }
    );
    // Duplicate name: reported at the second agent's name.
    let text = "[[handoff.agent]]\nname = \"a\"\nuri = \"sip:a@x\"\nskills = [\"x\"]\n[[handoff.agent]]\nuri = \"sip:b@x\"\n  name = \"a\"\nskills = [\"x\"]\n";
    let (l, c, key, p) = one(text);
    assert_eq!((l, c, key.as_str()), (7, 3, "handoff.agent[1].name"));
    assert_eq!(p, Problem::DuplicateAgent { name: "a".into() });
    let (l, c, key, p) =
        one("[[handoff.agent]]\nname = \"\"\nuri = \"sip:a@x\"\nskills = [\"x\"]\n");
    assert_eq!((l, c, key.as_str()), (2, 1, "handoff.agent[0].name"));
    assert_eq!(p, Problem::BadAgentName { value: "".into() });
    // Skills: required, each lowercase; languages: each a tag.
    let (l, c, key, p) = one("[[handoff.agent]]\nname = \"a\"\nuri = \"sip:a@x\"\n");
    assert_eq!(
        (l, c, key.as_str(), p),
        (1, 1, "handoff.agent[0].skills", Problem::EmptyList)
    );
    let (l, c, key, p) = one(
        "[[handoff.agent]]\nname = \"a\"\nuri = \"sip:a@x\"\nskills = [\"fraud\", \"Cards\"]\n",
    );
    assert_eq!((l, c, key.as_str()), (4, 20, "handoff.agent[0].skills[1]"));
    assert_eq!(
        p,
        Problem::BadSkill {
            value: "Cards".into()
        }
    );
    let (l, c, key, p) = one(
        "[[handoff.agent]]\nname = \"a\"\nuri = \"sip:a@x\"\nskills = [\"x\"]\nlanguages = [\"en\", \"../zh\"]\n",
    );
    assert_eq!(
        (l, c, key.as_str()),
        (5, 20, "handoff.agent[0].languages[1]")
    );
    assert!(matches!(p, Problem::BadLanguage { .. }), "{p:?}");
    let (_, _, key, p) = one(
        "[[handoff.agent]]\nname = \"a\"\nuri = \"sip:a@x\"\nskills = [\"x\"]\nlanguages = []\n",
    );
    assert_eq!(
        (key.as_str(), p),
        ("handoff.agent[0].languages", Problem::EmptyList)
    );
    // Inline array of tables: located at the element's `{`.
    let (l, c, key, _) = one(
        "handoff.agent = [{ name = \"a\", uri = \"sip:a@x\", skills = [\"x\"] }, { name = \"b\", skills = [\"x\"] }]\n",
    );
    assert_eq!((l, c, key.as_str()), (1, 67, "handoff.agent[1].uri"));

    // refer_target must be a SIP URI when set.
    let (l, c, key, p) = one("[handoff]\nhold_music = \"h.wav\"\nrefer_target = \"agents@pbx\"\n");
    assert_eq!((l, c, key.as_str()), (3, 1, "handoff.refer_target"));
    assert_eq!(
        p,
        Problem::BadSipUri {
            value: "agents@pbx".into()
        }
    );
    let (_, _, _, p) = one("[handoff]\nrefer_target = \"sip:agents@pbx\\r\\nX: 1\"\n");
    assert!(matches!(p, Problem::BadSipUri { .. }), "{p:?}");
    let c = parse(
        "[handoff]\nrefer_target = \"sips:queue@pbx.example.com\"\n",
        &origin(),
    )
    .unwrap();
    assert_eq!(
        c.handoff.refer_target.as_deref(),
        Some("sips:queue@pbx.example.com")
    );
    assert_eq!(parse(&c.to_toml_string(), &origin()).unwrap(), c);

    let (_, _, key, p) = one("[handoff]\nring_timeout_secs = 0\n");
    assert_eq!(
        (key.as_str(), p),
        ("handoff.ring_timeout_secs", Problem::Zero)
    );
    let (_, _, key, _) = one("[handoff]\nqueue_timeout_secs = 4\n");
    assert_eq!(key, "handoff.queue_timeout_secs");
    let (_, _, key, _) = one("[handoff]\nannounce_every_secs = 601\n");
    assert_eq!(key, "handoff.announce_every_secs");
    // Unknown keys inside an agent are syntax-level errors with a location.
    let (l, _, msg) = parse_error("[[handoff.agent]]\nname = \"a\"\nskill = [\"x\"]\n");
    assert_eq!(l, 3, "{msg}");
}

const HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$J8RvFvd6k3t2lZ1qzv3i0l4Zs0b4l9hO8S3a7pVw0Rk";

#[test]
fn qa_storage_and_auth_sections_parse() {
    let text = format!(
        r#"
[storage]
postgres_url = "postgres://vox:secret@db.example.com:5432/voxgate"
retention_days = 90
[asr]
enabled = false
[handoff]
screen_pop_url = "https://crm.example.com/pop"
[qa]
scorecards = "cards"
live_partials = false
alert_webhook = "http://10.0.0.9:9000/alerts"
[auth]
session_hours = 8
[[auth.user]]
name = "sam"
role = "supervisor"
password_hash = "{HASH}"
[[auth.token]]
name = "bi-export"
role = "qa_reviewer"
sha256 = "{}"
"#,
        "ab".repeat(32)
    );
    let c = parse(&text, &origin()).unwrap();
    assert_eq!(
        c.storage.postgres_url.as_deref(),
        Some("postgres://vox:secret@db.example.com:5432/voxgate")
    );
    assert!(!format!("{:?}", c.storage).contains("secret"));
    assert_eq!(c.storage.retention_days, 90);
    assert!(!c.asr.enabled);
    assert_eq!(
        c.handoff.screen_pop_url.as_deref(),
        Some("https://crm.example.com/pop")
    );
    assert_eq!(c.qa.scorecards, PathBuf::from("/etc/voxgate/cards"));
    assert!(!c.qa.live_partials);
    assert_eq!(
        c.qa.alert_webhook.as_deref(),
        Some("http://10.0.0.9:9000/alerts")
    );
    assert_eq!(c.auth.session_hours, 8);
    assert_eq!(c.auth.users.len(), 1);
    assert_eq!(c.auth.users[0].role, Role::Supervisor);
    assert!(!format!("{:?}", c.auth.users[0]).contains("argon2"));
    assert_eq!(c.auth.tokens[0].role, Role::QaReviewer);
    // Rendering keeps users and tokens, and the render parses back.
    let back = parse(&c.to_toml_string(), &origin()).unwrap();
    assert_eq!(back.auth, c.auth);
}

#[test]
fn auth_and_qa_mistakes_are_located_and_secrets_not_echoed() {
    let text = format!(
        r#"[storage]
postgres_url = "mysql://root:hunter2@db"
[qa]
alert_webhook = "ftp://x"
[[auth.user]]
name = "sam"
role = "boss"
password_hash = "{HASH}"
[[auth.user]]
name = "sam"
role = "admin"
password_hash = "plaintext-hunter2"
[[auth.token]]
name = "t"
role = "admin"
sha256 = "XYZ"
"#
    );
    let d = invalid(&text);
    let got: Vec<(usize, String)> = d.iter().map(|d| (d.location.line, d.key.clone())).collect();
    assert_eq!(
        got,
        [
            (2, "storage.postgres_url".to_string()),
            (4, "qa.alert_webhook".to_string()),
            (7, "auth.user[0].role".to_string()),
            (10, "auth.user[1].name".to_string()),
            (12, "auth.user[1].password_hash".to_string()),
            (16, "auth.token[0].sha256".to_string()),
        ]
    );
    let all = d.iter().map(ToString::to_string).collect::<String>();
    assert!(!all.contains("hunter2"), "{all}");
}
