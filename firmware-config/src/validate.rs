//! Raw → typed conversion. Collects every problem, each located at its key via toml_edit
//! spans, so the operator fixes the whole file in one round.

use std::collections::HashSet;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit::{Document, Item, Table, TableLike, Value};

use crate::error::{Diagnostic, Location, Problem};
use crate::raw::RawConfig;
use crate::schema::{
    AgentConfig, AsrLanguage, AsrModel, BackendKind, BargeInResume, CodecName, Config, LogFormat,
    Role, TokenConfig, UserConfig, VadName,
};

/// One step of a key path: a table key, or an element of an array or array of tables.
#[derive(Debug, Clone, Copy)]
enum Seg<'k> {
    Key(&'k str),
    Index(usize),
}

fn keys<'k>(path: &[&'k str]) -> Vec<Seg<'k>> {
    path.iter().map(|k| Seg::Key(k)).collect()
}

/// `a.b[1].c`, quoting keys that are not bare TOML keys (`dialog.numbers."+1555"`).
fn key_string(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        match *seg {
            Seg::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let bare = !key.is_empty()
                    && key
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
                if bare {
                    out.push_str(key);
                } else {
                    out.push_str(&toml::Value::String(key.to_string()).to_string());
                }
            }
            Seg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

/// Where a key path has led in the toml_edit document.
#[derive(Clone, Copy)]
enum Node<'d> {
    Item(&'d Item),
    Value(&'d Value),
    Table(&'d Table),
}

impl<'d> Node<'d> {
    fn table(self) -> Option<&'d dyn TableLike> {
        match self {
            Node::Item(item) => item.as_table_like(),
            Node::Value(value) => value.as_inline_table().map(|t| t as &dyn TableLike),
            Node::Table(table) => Some(table),
        }
    }

    /// Element `i` of an array or array of tables, with its span.
    fn element(self, i: usize) -> Option<(Option<Range<usize>>, Node<'d>)> {
        let array = match self {
            Node::Item(item) => {
                if let Some(tables) = item.as_array_of_tables() {
                    return tables.get(i).map(|t| (t.span(), Node::Table(t)));
                }
                item.as_array()
            }
            Node::Value(value) => value.as_array(),
            Node::Table(_) => None,
        };
        array
            .and_then(|a| a.get(i))
            .map(|v| (v.span(), Node::Value(v)))
    }
}

pub(crate) struct Validator<'a> {
    origin: &'a Path,
    text: &'a str,
    /// `None` only if toml_edit rejects what toml accepted; locations then fall back to 1:1.
    doc: Option<Document<&'a str>>,
    compiled: &'a [CodecName],
    diags: Vec<Diagnostic>,
}

impl<'a> Validator<'a> {
    pub fn new(text: &'a str, origin: &'a Path, compiled: &'a [CodecName]) -> Self {
        Self {
            origin,
            text,
            doc: Document::parse(text).ok(),
            compiled,
            diags: Vec::new(),
        }
    }

    /// Span of the deepest existing key or element along `path`, plus whether all of `path`
    /// was found. Elements are located for inline arrays (`udp = ["…", "…"]`), arrays of inline
    /// tables and arrays of tables (`[[handoff.agent]]`, located at the element's header).
    fn span_of(&self, path: &[Seg<'_>]) -> (Option<Range<usize>>, bool) {
        let Some(mut node) = self.doc.as_ref().map(|d| Node::Item(d.as_item())) else {
            return (None, false);
        };
        let mut best = None;
        for seg in path {
            let next = match *seg {
                Seg::Key(key) => node
                    .table()
                    .and_then(|t| t.get_key_value(key))
                    .map(|(k, item)| (k.span(), Node::Item(item))),
                Seg::Index(i) => node.element(i),
            };
            let Some((span, found)) = next else {
                return (best, false);
            };
            best = span.or(best);
            node = found;
        }
        (best, true)
    }

    fn present(&self, path: &[&str]) -> bool {
        self.span_of(&keys(path)).1
    }

    /// Reports `problem` at `path`, or at the deepest part of it present in the file.
    fn report_in(&mut self, path: &[Seg<'_>], problem: Problem) {
        let offset = self.span_of(path).0.map_or(0, |s| s.start);
        self.diags.push(Diagnostic {
            location: Location::from_offset(self.origin, self.text, offset),
            key: key_string(path),
            problem,
        });
    }

    fn report_at(&mut self, path: &[&str], index: Option<usize>, problem: Problem) {
        let mut segs = keys(path);
        segs.extend(index.map(Seg::Index));
        self.report_in(&segs, problem);
    }

    fn report(&mut self, path: &[&str], problem: Problem) {
        self.report_at(path, None, problem);
    }

    /// Checks `min..=max` and converts; `None` (after reporting) when out of range.
    fn int<T: TryFrom<i64>>(&mut self, path: &[&str], value: i64, min: i64, max: i64) -> Option<T> {
        if (min..=max).contains(&value) {
            if let Ok(v) = T::try_from(value) {
                return Some(v);
            }
        }
        self.report(path, Problem::OutOfRange { value, min, max });
        None
    }

    /// Like [`Validator::int`] but 0 gets the clearer [`Problem::Zero`].
    fn positive<T: TryFrom<i64>>(&mut self, path: &[&str], value: i64, max: i64) -> Option<T> {
        if value == 0 {
            self.report(path, Problem::Zero);
            return None;
        }
        self.int(path, value, 1, max)
    }

    fn addrs(&mut self, path: &[&str], values: &[String]) -> Vec<SocketAddr> {
        let mut out = Vec::with_capacity(values.len());
        for (i, value) in values.iter().enumerate() {
            match value.parse::<SocketAddr>() {
                Ok(addr) if out.contains(&addr) => {
                    self.report_at(path, Some(i), Problem::DuplicateAddr { addr })
                }
                Ok(addr) => out.push(addr),
                Err(source) => self.report_at(
                    path,
                    Some(i),
                    Problem::BadSocketAddr {
                        value: value.clone(),
                        source,
                    },
                ),
            }
        }
        out
    }

    fn path(&mut self, key: &[&str], value: &str, base: &Path) -> Option<PathBuf> {
        if value.is_empty() {
            self.report(key, Problem::EmptyPath);
            return None;
        }
        Some(base.join(value))
    }

    /// Checks everything; returns the typed config or all diagnostics.
    pub fn run(mut self, raw: &RawConfig) -> Result<Config, Vec<Diagnostic>> {
        let base = match self.origin.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut c = Config::default_in(&base);
        self.sip(raw, &mut c);
        self.media(raw, &mut c);
        self.files(raw, &mut c, &base);
        self.misc(raw, &mut c);
        self.speech(raw, &mut c, &base);
        self.dialog(raw, &mut c, &base);
        self.backend(raw, &mut c, &base);
        self.handoff(raw, &mut c, &base);
        self.qa(raw, &mut c, &base);
        self.auth(raw, &mut c, &base);
        if self.diags.is_empty() {
            Ok(c)
        } else {
            Err(self.diags)
        }
    }

    fn sip(&mut self, raw: &RawConfig, c: &mut Config) {
        let s = &raw.sip;
        c.sip.udp = self.addrs(&["sip", "udp"], &s.udp);
        c.sip.tcp = self.addrs(&["sip", "tcp"], &s.tcp);
        c.sip.public_address = if s.public_address.is_empty() {
            None
        } else if valid_host(&s.public_address) {
            Some(s.public_address.clone())
        } else {
            self.report(
                &["sip", "public_address"],
                Problem::BadPublicAddress {
                    value: s.public_address.clone(),
                },
            );
            None
        };
        if let Some(v) = self.positive(&["sip", "max_calls"], s.max_calls, 1_000_000) {
            c.sip.max_calls = v;
        }
        if let Some(v) = self.int(&["sip", "retry_after_secs"], s.retry_after_secs, 0, 86_400) {
            c.sip.retry_after_secs = v;
        }
        if s.user_agent.is_empty()
            || !s
                .user_agent
                .chars()
                .all(|ch| ch.is_ascii() && !ch.is_ascii_control())
        {
            // It ends up in a SIP header: control characters would allow header injection.
            self.report(
                &["sip", "user_agent"],
                Problem::BadUserAgent {
                    value: s.user_agent.clone(),
                },
            );
        } else {
            c.sip.user_agent = s.user_agent.clone();
        }
        const TIMER_MAX: i64 = 600_000;
        let t1 = self.positive(&["sip", "t1_ms"], s.t1_ms, TIMER_MAX);
        let t2 = self.positive(&["sip", "t2_ms"], s.t2_ms, TIMER_MAX);
        let t4 = self.positive(&["sip", "t4_ms"], s.t4_ms, TIMER_MAX);
        if let (Some(t1), Some(t2)) = (t1, t2) {
            if t2 < t1 {
                let at: &[&str] = if self.present(&["sip", "t2_ms"]) {
                    &["sip", "t2_ms"]
                } else {
                    &["sip", "t1_ms"]
                };
                self.report(
                    at,
                    Problem::T2BelowT1 {
                        t1: s.t1_ms,
                        t2: s.t2_ms,
                    },
                );
            }
        }
        c.sip.t1_ms = t1.unwrap_or(c.sip.t1_ms);
        c.sip.t2_ms = t2.unwrap_or(c.sip.t2_ms);
        c.sip.t4_ms = t4.unwrap_or(c.sip.t4_ms);
    }

    fn media(&mut self, raw: &RawConfig, c: &mut Config) {
        let m = &raw.media;
        const MIN: &[&str] = &["media", "rtp_port_min"];
        const MAX: &[&str] = &["media", "rtp_port_max"];
        let min: Option<u16> = self.int(MIN, m.rtp_port_min, 1, 65_535);
        let max: Option<u16> = self.int(MAX, m.rtp_port_max, 1, 65_535);
        if min.is_some() && m.rtp_port_min % 2 != 0 {
            self.report(
                MIN,
                Problem::OddRtpPort {
                    port: m.rtp_port_min,
                },
            );
        } else if let (Some(lo), Some(hi)) = (min, max) {
            if hi <= lo {
                let at = if self.present(MAX) { MAX } else { MIN };
                self.report(
                    at,
                    Problem::PortRangeEmpty {
                        min: m.rtp_port_min,
                        max: m.rtp_port_max,
                    },
                );
            } else {
                c.media.rtp_port_min = lo;
                c.media.rtp_port_max = hi;
            }
        }
        match m.rtp_bind.parse::<IpAddr>() {
            Ok(ip) => c.media.rtp_bind = ip,
            Err(source) => self.report(
                &["media", "rtp_bind"],
                Problem::BadIpAddr {
                    value: m.rtp_bind.clone(),
                    source,
                },
            ),
        }
        self.codecs(&m.codecs, c);
        if (10..=60).contains(&m.ptime_ms) && m.ptime_ms % 10 == 0 {
            c.media.ptime_ms = m.ptime_ms as u32;
        } else {
            self.report(
                &["media", "ptime_ms"],
                Problem::BadPtime { value: m.ptime_ms },
            );
        }
        if let Some(v) = self.int(&["media", "threads"], m.threads, 0, 1024) {
            c.media.threads = v;
        }
        c.media.inband_dtmf = m.inband_dtmf;
        let jmin: Option<u32> = self.int(&["media", "jitter_min_ms"], m.jitter_min_ms, 0, 10_000);
        let jmax: Option<u32> = self.int(&["media", "jitter_max_ms"], m.jitter_max_ms, 0, 10_000);
        if let (Some(lo), Some(hi)) = (jmin, jmax) {
            if lo > hi {
                let at: &[&str] = if self.present(&["media", "jitter_max_ms"]) {
                    &["media", "jitter_max_ms"]
                } else {
                    &["media", "jitter_min_ms"]
                };
                self.report(
                    at,
                    Problem::JitterInverted {
                        min: m.jitter_min_ms,
                        max: m.jitter_max_ms,
                    },
                );
            } else {
                c.media.jitter_min_ms = lo;
                c.media.jitter_max_ms = hi;
            }
        }
        if let Some(v) = self.int(
            &["media", "no_packet_timeout_secs"],
            m.no_packet_timeout_secs,
            0,
            86_400,
        ) {
            c.media.no_packet_timeout_secs = v;
        }
    }

    fn codecs(&mut self, names: &[String], c: &mut Config) {
        const KEY: &[&str] = &["media", "codecs"];
        if names.is_empty() {
            self.report(KEY, Problem::NoCodecs);
            return;
        }
        let mut codecs = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            match CodecName::from_name(name) {
                None => self.report_at(KEY, Some(i), Problem::UnknownCodec { name: name.clone() }),
                Some(codec) if !self.compiled.contains(&codec) => {
                    self.report_at(KEY, Some(i), Problem::CodecNotCompiled { codec })
                }
                Some(codec) if codecs.contains(&codec) => {
                    self.report_at(KEY, Some(i), Problem::DuplicateCodec { codec })
                }
                Some(codec) => codecs.push(codec),
            }
        }
        c.media.codecs = codecs;
    }

    fn files(&mut self, raw: &RawConfig, c: &mut Config, base: &Path) {
        if let Some(p) = self.path(&["prompts", "dir"], &raw.prompts.dir, base) {
            c.prompts.dir = p;
        }
        let lang = &raw.prompts.language;
        if valid_language(lang) {
            c.prompts.language = lang.clone();
        } else {
            // Also keeps `..` and `/` out: the language is joined onto the prompt dir.
            self.report(
                &["prompts", "language"],
                Problem::BadLanguage {
                    value: lang.clone(),
                },
            );
        }
        c.recording.enabled = raw.recording.enabled;
        if let Some(p) = self.path(&["recording", "dir"], &raw.recording.dir, base) {
            c.recording.dir = p;
        }
        if let Some(p) = self.path(&["storage", "path"], &raw.storage.path, base) {
            c.storage.path = p;
        }
        let url = &raw.storage.postgres_url;
        if url.is_empty() {
            c.storage.postgres_url = None;
        } else if valid_postgres_url(url) {
            c.storage.postgres_url = Some(url.clone());
        } else {
            // The URL may carry a password: never echo it.
            self.report(&["storage", "postgres_url"], Problem::BadPostgresUrl);
        }
        if let Some(v) = self.int(
            &["storage", "retention_days"],
            raw.storage.retention_days,
            0,
            36_500,
        ) {
            c.storage.retention_days = v;
        }
    }

    fn misc(&mut self, raw: &RawConfig, c: &mut Config) {
        match raw.http.bind.parse::<SocketAddr>() {
            Ok(addr) => c.http.bind = addr,
            Err(source) => self.report(
                &["http", "bind"],
                Problem::BadSocketAddr {
                    value: raw.http.bind.clone(),
                    source,
                },
            ),
        }
        let level = &raw.log.level;
        if level.is_empty()
            || level
                .chars()
                .any(|ch| ch.is_whitespace() || ch.is_control())
        {
            self.report(
                &["log", "level"],
                Problem::BadLogLevel {
                    value: level.clone(),
                },
            );
        } else {
            c.log.level = level.clone();
        }
        match raw.log.format.to_ascii_lowercase().as_str() {
            "text" => c.log.format = LogFormat::Text,
            "json" => c.log.format = LogFormat::Json,
            _ => self.report(
                &["log", "format"],
                Problem::UnknownLogFormat {
                    value: raw.log.format.clone(),
                },
            ),
        }
        c.hw.pin_media_threads = raw.hw.pin_media_threads;
        let mut seen = HashSet::new();
        let mut cores = Vec::with_capacity(raw.hw.media_cores.len());
        for (i, &core) in raw.hw.media_cores.iter().enumerate() {
            if !(0..=4095).contains(&core) {
                self.report_at(
                    &["hw", "media_cores"],
                    Some(i),
                    Problem::OutOfRange {
                        value: core,
                        min: 0,
                        max: 4095,
                    },
                );
            } else if !seen.insert(core) {
                self.report_at(
                    &["hw", "media_cores"],
                    Some(i),
                    Problem::DuplicateCore { core },
                );
            } else {
                cores.push(core as usize);
            }
        }
        c.hw.media_cores = cores;
        const YEAR: i64 = 365 * 86_400;
        if let Some(v) = self.positive(
            &["call", "max_duration_secs"],
            raw.call.max_duration_secs,
            YEAR,
        ) {
            c.call.max_duration_secs = v;
        }
        if let Some(v) = self.positive(
            &["call", "menu_timeout_secs"],
            raw.call.menu_timeout_secs,
            3600,
        ) {
            c.call.menu_timeout_secs = v;
        }
        if let Some(v) = self.int(
            &["call", "answer_delay_ms"],
            raw.call.answer_delay_ms,
            0,
            30_000,
        ) {
            c.call.answer_delay_ms = v;
        }
    }
}

impl Validator<'_> {
    /// Case-insensitive match of `value` against `choices` by their config spelling.
    fn choice<T: Copy>(
        &mut self,
        path: &[&str],
        value: &str,
        choices: &[T],
        name: fn(T) -> &'static str,
        expected: &'static str,
    ) -> Option<T> {
        let found = choices
            .iter()
            .copied()
            .find(|c| name(*c).eq_ignore_ascii_case(value));
        if found.is_none() {
            self.report(
                path,
                Problem::UnknownChoice {
                    value: value.to_string(),
                    expected,
                },
            );
        }
        found
    }

    fn speech(&mut self, raw: &RawConfig, c: &mut Config, base: &Path) {
        /// Longest duration the endpointer and barge-in detector accept (their `MAX_CONFIG_MS`).
        const MAX_MS: i64 = 600_000;
        let s = &raw.speech;
        c.speech.enabled = s.enabled;
        c.speech.bargein = s.bargein;
        c.speech.echo_guard = s.echo_guard;
        if let Some(v) = self.choice(
            &["speech", "vad"],
            &s.vad,
            &VadName::ALL,
            VadName::as_str,
            "webrtc, earshot",
        ) {
            c.speech.vad = v;
        }
        if let Some(v) = self.choice(
            &["speech", "bargein_resume"],
            &s.bargein_resume,
            &BargeInResume::ALL,
            BargeInResume::as_str,
            "flush, pause",
        ) {
            c.speech.bargein_resume = v;
        }
        let sp = &mut c.speech;
        for (key, value, slot, may_be_zero) in [
            (
                "bargein_min_speech_ms",
                s.bargein_min_speech_ms,
                &mut sp.bargein_min_speech_ms,
                false,
            ),
            (
                "bargein_confirm_ms",
                s.bargein_confirm_ms,
                &mut sp.bargein_confirm_ms,
                false,
            ),
            (
                "start_speech_ms",
                s.start_speech_ms,
                &mut sp.start_speech_ms,
                false,
            ),
            (
                "end_silence_ms",
                s.end_silence_ms,
                &mut sp.end_silence_ms,
                false,
            ),
            (
                "max_utterance_ms",
                s.max_utterance_ms,
                &mut sp.max_utterance_ms,
                false,
            ),
            ("pre_roll_ms", s.pre_roll_ms, &mut sp.pre_roll_ms, true),
            (
                "partial_interval_ms",
                s.partial_interval_ms,
                &mut sp.partial_interval_ms,
                true,
            ),
        ] {
            let path = ["speech", key];
            let v = if may_be_zero {
                self.int(&path, value, 0, MAX_MS)
            } else {
                self.positive(&path, value, MAX_MS)
            };
            if let Some(v) = v {
                *slot = v;
            }
        }
        if s.start_speech_ms >= s.max_utterance_ms && s.max_utterance_ms > 0 {
            self.report(
                &["speech", "start_speech_ms"],
                Problem::NotBelowMaxUtterance {
                    value: s.start_speech_ms,
                    max: s.max_utterance_ms,
                },
            );
        }

        let a = &raw.asr;
        let model = self.choice(
            &["asr", "model"],
            &a.model,
            &AsrModel::ALL,
            AsrModel::as_str,
            "tiny.en, base, tiny.en-q8_0, base-q8_0",
        );
        let language = self.choice(
            &["asr", "language"],
            &a.language,
            &AsrLanguage::ALL,
            AsrLanguage::as_str,
            "en, zh",
        );
        if let Some(m) = model {
            c.asr.model = m;
        }
        if let Some(l) = language {
            if l == AsrLanguage::Zh && model.is_some_and(AsrModel::is_english_only) {
                self.report(
                    &["asr", "language"],
                    Problem::LanguageNeedsMultilingual {
                        language: l.as_str(),
                    },
                );
            }
            c.asr.language = l;
        }
        if let Some(p) = self.path(&["asr", "models_dir"], &a.models_dir, base) {
            c.asr.models_dir = p;
        }
        if let Some(v) = self.positive(&["asr", "workers"], a.workers, 64) {
            c.asr.workers = v;
        }
        if let Some(v) = self.positive(&["asr", "threads_per_worker"], a.threads_per_worker, 64) {
            c.asr.threads_per_worker = v;
        }
        if let Some(v) = self.positive(&["asr", "queue"], a.queue, 10_000) {
            c.asr.queue = v;
        }
        c.asr.initial_prompt = a.initial_prompt.clone();
        if let Some(v) = self.positive(&["asr", "max_decode_ms"], a.max_decode_ms, 600_000) {
            c.asr.max_decode_ms = v;
        }
        c.asr.enabled = a.enabled;
    }
}

impl Validator<'_> {
    fn dialog(&mut self, raw: &RawConfig, c: &mut Config, base: &Path) {
        let d = &raw.dialog;
        if let Some(p) = self.path(&["dialog", "flow"], &d.flow, base) {
            c.dialog.flow = p;
        }
        // Sorted by number (the raw map is a BTreeMap), so the typed list is deterministic.
        let mut seen: Vec<&str> = Vec::with_capacity(d.numbers.len());
        let mut numbers = Vec::with_capacity(d.numbers.len());
        for (number, flow) in &d.numbers {
            let at = [Seg::Key("dialog"), Seg::Key("numbers"), Seg::Key(number)];
            let digits = without_plus(number);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                self.report_in(
                    &at,
                    Problem::BadDialledNumber {
                        value: number.clone(),
                    },
                );
                continue;
            }
            // The binary matches the called party ignoring a leading '+': "+200" and "200" clash.
            if let Some(other) = seen.iter().find(|n| without_plus(n) == digits) {
                self.report_in(
                    &at,
                    Problem::DuplicateNumber {
                        value: number.clone(),
                        other: (*other).to_string(),
                    },
                );
                continue;
            }
            seen.push(number);
            if flow.is_empty() {
                self.report_in(&at, Problem::EmptyPath);
                continue;
            }
            numbers.push((number.clone(), base.join(flow)));
        }
        c.dialog.numbers = numbers;
        c.dialog.voiceprint = d.voiceprint;
        let t = d.voiceprint_threshold;
        let milli = (t * 1000.0).round();
        // NaN fails every comparison and lands in the error branch.
        if t > 0.0 && t < 1.0 && (1.0..=999.0).contains(&milli) && (t * 1000.0 - milli).abs() < 1e-6
        {
            c.dialog.voiceprint_threshold_milli = milli as u16;
        } else {
            self.report(
                &["dialog", "voiceprint_threshold"],
                Problem::BadThreshold {
                    value: toml::Value::Float(t).to_string(),
                },
            );
        }
        if let Some(v) = self.int(
            &["dialog", "voiceprint_enroll_secs"],
            d.voiceprint_enroll_secs,
            2,
            120,
        ) {
            c.dialog.voiceprint_enroll_secs = v;
        }
        if let Some(v) = self.positive(
            &["dialog", "voiceprint_min_secs"],
            d.voiceprint_min_secs,
            60,
        ) {
            c.dialog.voiceprint_min_secs = v;
        }
    }

    fn backend(&mut self, raw: &RawConfig, c: &mut Config, base: &Path) {
        const KIND: &[&str] = &["backend", "kind"];
        const URL: &[&str] = &["backend", "url"];
        let b = &raw.backend;
        let kind = self.choice(
            KIND,
            &b.kind,
            &BackendKind::ALL,
            BackendKind::as_str,
            "demo, webhook",
        );
        if let Some(k) = kind {
            c.backend.kind = k;
        }
        if let Some(p) = self.path(&["backend", "demo_db"], &b.demo_db, base) {
            c.backend.demo_db = p;
        }
        if let Some(v) = self.positive(&["backend", "max_pin_attempts"], b.max_pin_attempts, 10) {
            c.backend.max_pin_attempts = v;
        }
        if b.url.is_empty() {
            if kind == Some(BackendKind::Webhook) {
                let at = if self.present(URL) { URL } else { KIND };
                self.report(at, Problem::MissingWebhookUrl);
            }
        } else if valid_http_url(&b.url) {
            c.backend.url = b.url.clone();
        } else {
            // Checked even with kind = "demo": a typo should not wait for the switch to webhook.
            self.report(
                URL,
                Problem::BadUrl {
                    value: b.url.clone(),
                },
            );
        }
        if let Some(v) = self.int(&["backend", "timeout_ms"], b.timeout_ms, 100, 60_000) {
            c.backend.timeout_ms = v;
        }
        if let Some(v) = self.int(&["backend", "retries"], b.retries, 0, 5) {
            c.backend.retries = v;
        }
        if let Some(v) = self.int(&["backend", "backoff_ms"], b.backoff_ms, 0, 10_000) {
            c.backend.backoff_ms = v;
        }
        // It becomes an HTTP header: control characters would allow header injection.
        if b.bearer_token.chars().all(|ch| ch.is_ascii_graphic()) {
            c.backend.bearer_token = b.bearer_token.clone();
        } else {
            self.report(&["backend", "bearer_token"], Problem::BadBearerToken);
        }
    }

    fn handoff(&mut self, raw: &RawConfig, c: &mut Config, base: &Path) {
        let h = &raw.handoff;
        if let Some(v) = self.positive(&["handoff", "ring_timeout_secs"], h.ring_timeout_secs, 120)
        {
            c.handoff.ring_timeout_secs = v;
        }
        if let Some(v) = self.int(
            &["handoff", "queue_timeout_secs"],
            h.queue_timeout_secs,
            5,
            3600,
        ) {
            c.handoff.queue_timeout_secs = v;
        }
        if let Some(v) = self.int(
            &["handoff", "announce_every_secs"],
            h.announce_every_secs,
            5,
            600,
        ) {
            c.handoff.announce_every_secs = v;
        }
        c.handoff.hold_music = (!h.hold_music.is_empty()).then(|| base.join(&h.hold_music));
        c.handoff.refer_target = if h.refer_target.is_empty() {
            None
        } else if valid_sip_uri(&h.refer_target) {
            Some(h.refer_target.clone())
        } else {
            self.report(
                &["handoff", "refer_target"],
                Problem::BadSipUri {
                    value: h.refer_target.clone(),
                },
            );
            None
        };
        c.handoff.screen_pop_url =
            self.optional_url(&["handoff", "screen_pop_url"], &h.screen_pop_url);
        let mut names = HashSet::new();
        let mut agents = Vec::with_capacity(h.agents.len());
        for (i, a) in h.agents.iter().enumerate() {
            let before = self.diags.len();
            let at = |key| {
                [
                    Seg::Key("handoff"),
                    Seg::Key("agent"),
                    Seg::Index(i),
                    Seg::Key(key),
                ]
            };
            let at_element = |key, j| {
                [
                    Seg::Key("handoff"),
                    Seg::Key("agent"),
                    Seg::Index(i),
                    Seg::Key(key),
                    Seg::Index(j),
                ]
            };
            if a.name.is_empty() || a.name.chars().any(char::is_control) {
                self.report_in(
                    &at("name"),
                    Problem::BadAgentName {
                        value: a.name.clone(),
                    },
                );
            } else if !names.insert(a.name.as_str()) {
                self.report_in(
                    &at("name"),
                    Problem::DuplicateAgent {
                        name: a.name.clone(),
                    },
                );
            }
            if !valid_sip_uri(&a.uri) {
                self.report_in(
                    &at("uri"),
                    Problem::BadSipUri {
                        value: a.uri.clone(),
                    },
                );
            }
            if a.skills.is_empty() {
                self.report_in(&at("skills"), Problem::EmptyList);
            }
            for (j, skill) in a.skills.iter().enumerate() {
                if !valid_skill(skill) {
                    self.report_in(
                        &at_element("skills", j),
                        Problem::BadSkill {
                            value: skill.clone(),
                        },
                    );
                }
            }
            if a.languages.is_empty() {
                self.report_in(&at("languages"), Problem::EmptyList);
            }
            for (j, language) in a.languages.iter().enumerate() {
                if !valid_language(language) {
                    self.report_in(
                        &at_element("languages", j),
                        Problem::BadLanguage {
                            value: language.clone(),
                        },
                    );
                }
            }
            if self.diags.len() == before {
                agents.push(AgentConfig {
                    name: a.name.clone(),
                    uri: a.uri.clone(),
                    skills: a.skills.clone(),
                    languages: a.languages.clone(),
                });
            }
        }
        c.handoff.agents = agents;
    }
}

impl Validator<'_> {
    /// `""` = none; anything else must be an http(s) URL.
    fn optional_url(&mut self, path: &[&str], value: &str) -> Option<String> {
        if value.is_empty() {
            None
        } else if valid_http_url(value) {
            Some(value.to_string())
        } else {
            self.report(
                path,
                Problem::BadUrl {
                    value: value.to_string(),
                },
            );
            None
        }
    }

    fn qa(&mut self, raw: &RawConfig, c: &mut Config, base: &Path) {
        let q = &raw.qa;
        c.qa.enabled = q.enabled;
        if let Some(p) = self.path(&["qa", "scorecards"], &q.scorecards, base) {
            c.qa.scorecards = p;
        }
        c.qa.live_partials = q.live_partials;
        c.qa.alert_webhook = self.optional_url(&["qa", "alert_webhook"], &q.alert_webhook);
        if let Some(v) = self.positive(
            &["qa", "alert_webhook_timeout_ms"],
            q.alert_webhook_timeout_ms,
            60_000,
        ) {
            c.qa.alert_webhook_timeout_ms = v;
        }
    }

    fn auth(&mut self, raw: &RawConfig, c: &mut Config, base: &Path) {
        let a = &raw.auth;
        if let Some(v) = self.positive(&["auth", "session_hours"], a.session_hours, 24 * 30) {
            c.auth.session_hours = v;
        }
        if let Some(v) = self.positive(&["auth", "max_failures"], a.max_failures, 1000) {
            c.auth.max_failures = v;
        }
        if let Some(v) = self.int(&["auth", "lockout_secs"], a.lockout_secs, 0, 86_400) {
            c.auth.lockout_secs = v;
        }
        if let Some(p) = self.path(&["auth", "users_file"], &a.users_file, base) {
            c.auth.users_file = p;
        }
        let mut names = HashSet::new();
        for (i, u) in a.users.iter().enumerate() {
            let at = |key| {
                [
                    Seg::Key("auth"),
                    Seg::Key("user"),
                    Seg::Index(i),
                    Seg::Key(key),
                ]
            };
            let before = self.diags.len();
            if !valid_user_name(&u.name) {
                self.report_in(
                    &at("name"),
                    Problem::BadUserName {
                        value: u.name.clone(),
                    },
                );
            } else if !names.insert(u.name.as_str()) {
                self.report_in(
                    &at("name"),
                    Problem::DuplicateUser {
                        name: u.name.clone(),
                    },
                );
            }
            let role = self.role_at(&at("role"), &u.role);
            if !valid_password_hash(&u.password_hash) {
                self.report_in(&at("password_hash"), Problem::BadPasswordHash);
            }
            if let (Some(role), true) = (role, self.diags.len() == before) {
                c.auth.users.push(UserConfig {
                    name: u.name.clone(),
                    role,
                    password_hash: u.password_hash.clone(),
                });
            }
        }
        let mut token_names = HashSet::new();
        for (i, t) in a.tokens.iter().enumerate() {
            let at = |key| {
                [
                    Seg::Key("auth"),
                    Seg::Key("token"),
                    Seg::Index(i),
                    Seg::Key(key),
                ]
            };
            let before = self.diags.len();
            if !valid_user_name(&t.name) {
                self.report_in(
                    &at("name"),
                    Problem::BadUserName {
                        value: t.name.clone(),
                    },
                );
            } else if !token_names.insert(t.name.as_str()) {
                self.report_in(
                    &at("name"),
                    Problem::DuplicateUser {
                        name: t.name.clone(),
                    },
                );
            }
            let role = self.role_at(&at("role"), &t.role);
            let hex = t.sha256.len() == 64
                && t.sha256
                    .chars()
                    .all(|ch| ch.is_ascii_digit() || ('a'..='f').contains(&ch));
            if !hex {
                self.report_in(&at("sha256"), Problem::BadTokenHash);
            }
            if let (Some(role), true) = (role, self.diags.len() == before) {
                c.auth.tokens.push(TokenConfig {
                    name: t.name.clone(),
                    role,
                    sha256: t.sha256.clone(),
                });
            }
        }
    }

    fn role_at(&mut self, at: &[Seg<'_>], value: &str) -> Option<Role> {
        let role = Role::from_name(value);
        if role.is_none() {
            self.report_in(
                at,
                Problem::UnknownChoice {
                    value: value.to_string(),
                    expected: "admin, supervisor, qa_reviewer",
                },
            );
        }
        role
    }
}

/// A login name: 1..=64 characters, letters, digits, `.`, `_`, `-`, `@`.
pub fn valid_user_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-' | '@'))
}

/// The shape of an argon2 PHC string: `$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>` (the binary verifies
/// the rest when it parses it).
pub fn valid_password_hash(s: &str) -> bool {
    let parts: Vec<&str> = s.split('$').collect();
    parts.len() == 6
        && parts[0].is_empty()
        && matches!(parts[1], "argon2id" | "argon2i" | "argon2d")
        && parts[2].starts_with("v=")
        && parts[3].contains("m=")
        && parts[4..].iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '+' || ch == '/')
        })
}

/// `postgres://` or `postgresql://` and something after it, printable ASCII.
fn valid_postgres_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("postgres://")
        .or_else(|| s.strip_prefix("postgresql://"));
    rest.is_some_and(|r| !r.is_empty()) && s.chars().all(|ch| ch.is_ascii_graphic())
}

fn without_plus(number: &str) -> &str {
    number.strip_prefix('+').unwrap_or(number)
}

/// A prompt-set style language tag; also keeps `..` and `/` out of paths it is joined onto.
fn valid_language(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
}

fn valid_skill(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_')
}

/// `http://` or `https://`, a host, printable ASCII only (no spaces).
fn valid_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
        && s.chars().all(|ch| ch.is_ascii_graphic())
}

/// `sip:` or `sips:` and something after it, printable ASCII only: it goes into SIP headers
/// (Request-URI, Refer-To), where spaces or line breaks would break or inject headers.
fn valid_sip_uri(s: &str) -> bool {
    let rest = s.strip_prefix("sips:").or_else(|| s.strip_prefix("sip:"));
    rest.is_some_and(|r| !r.is_empty()) && s.chars().all(|ch| ch.is_ascii_graphic())
}

/// A bare IP address or an RFC 1123 host name (no port: that comes from the listener).
fn valid_host(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
        })
}
