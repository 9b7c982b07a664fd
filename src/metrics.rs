//! Process-wide counters for `/metrics` (Prometheus text format). Atomics only: the media threads bump
//! them without locks.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! metrics {
    ($( $name:ident : $kind:literal, $help:literal; )*) => {
        #[derive(Default)]
        pub struct Metrics { $( pub $name: AtomicU64, )* }

        impl Metrics {
            pub fn render(&self, extra: &[(&str, &str, u64)]) -> String {
                let mut out = String::new();
                $(
                    let _ = writeln!(out, "# HELP voxgate_{} {}", stringify!($name), $help);
                    let _ = writeln!(out, "# TYPE voxgate_{} {}", stringify!($name), $kind);
                    let _ = writeln!(out, "voxgate_{} {}", stringify!($name), self.$name.load(Ordering::Relaxed));
                )*
                for (name, help, value) in extra {
                    let _ = writeln!(out, "# HELP voxgate_{name} {help}");
                    let _ = writeln!(out, "# TYPE voxgate_{name} gauge");
                    let _ = writeln!(out, "voxgate_{name} {value}");
                }
                out
            }
        }
    };
}

metrics! {
    calls_total: "counter", "Calls offered (INVITEs that passed the capacity guard).";
    calls_answered_total: "counter", "Calls answered with 200 OK.";
    calls_rejected_total: "counter", "Calls rejected by voxgate (488, 480, port exhaustion...).";
    calls_active: "gauge", "Calls in progress (ringing or answered), as the signalling task last saw them.";
    media_ticks_total: "counter", "20 ms media ticks processed, summed over media threads.";
    media_late_ticks_total: "counter", "Media ticks that started more than 5 ms late.";
    media_skipped_ticks_total: "counter", "Media ticks skipped because a thread fell too far behind.";
    rtp_packets_sent_total: "counter", "RTP packets sent.";
    rtp_send_errors_total: "counter", "RTP packets the OS refused to send.";
    recording_frames_dropped_total: "counter", "Recording frames replaced by silence because the writer fell behind.";
    dtmf_digits_total: "counter", "DTMF digits received, all sources.";
    barge_ins_total: "counter", "Prompts stopped by caller speech.";
    utterances_total: "counter", "Caller utterances found by the endpointer.";
    asr_overloaded_total: "counter", "Utterances the saturated ASR pool refused or shed (callers were offered the keypad).";
    asr_partials_shed_total: "counter", "Streaming partial decodes not queued because the ASR pool was busy.";
    asr_results_total: "counter", "Final recognition results with text.";
    asr_failed_total: "counter", "Final recognitions without text (nothing recognised or decode error).";
    asr_decode_ms_total: "counter", "Milliseconds spent decoding, all ASR workers, partials included.";
    asr_partials_total: "counter", "Streaming partial results decoded.";
    store_errors_total: "counter", "Failed writes to the call store.";
    backend_calls_total: "counter", "Backend operations run for call flows.";
    backend_failures_total: "counter", "Backend operations that found the backend down, slow or answering garbage.";
    voiceprint_turns_dropped_total: "counter", "Caller turns the busy voiceprint worker could not take (verification then has less speech).";
    voiceprint_verifications_total: "counter", "Caller voiceprints compared with an enrolled template.";
    voiceprint_enrolments_total: "counter", "Voiceprint templates stored after consented enrolment.";
    flow_reloads_total: "counter", "Successful call-flow reloads (SIGHUP).";
    flow_reload_errors_total: "counter", "Call-flow reloads refused because a flow or its prompts were invalid.";
    sip_requests_total: "counter", "SIP requests received, retransmissions included.";
    sip_responses_sent_total: "counter", "SIP responses sent, retransmissions included.";
    sip_parse_errors_total: "counter", "SIP messages that could not be parsed or lacked mandatory headers.";
    sip_rejected_503_total: "counter", "INVITEs refused with 503 by the capacity guard.";
    sip_retransmissions_total: "counter", "SIP retransmissions sent (timers or retransmitted requests).";
    qa_calls_scored_total: "counter", "Finished calls scored by their scorecards.";
    qa_rules_evaluated_total: "counter", "Scorecard rules evaluated post-call.";
    qa_alerts_total: "counter", "Live alerts raised (realtime rules that failed during a call).";
    qa_alert_webhook_posts_total: "counter", "Alerts the alert webhook accepted (2xx).";
    qa_alert_webhook_failures_total: "counter", "Alerts the alert webhook did not accept (error, timeout or full queue).";
    qa_retention_purged_total: "counter", "Calls deleted by the retention setting (with their recordings and transcripts).";
    http_logins_total: "counter", "Successful web UI logins.";
    http_login_failures_total: "counter", "Refused web UI logins (wrong password, locked out or busy).";
    screen_pops_total: "counter", "Screen-pop POSTs accepted by the CRM when an agent's phone rang.";
    screen_pop_failures_total: "counter", "Screen-pop POSTs that failed (error, timeout, full queue).";
    queue_waiting: "gauge", "Callers waiting in the hand-off queue.";
    queued_total: "counter", "Callers who joined the hand-off queue.";
    queue_timeouts_total: "counter", "Callers who waited queue_timeout_secs and were offered options.";
    handoffs_total: "counter", "Hand-offs requested by call flows.";
    refers_total: "counter", "Blind transfers by REFER that the far end accepted.";
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    /// Mirrors a counter owned elsewhere (e.g. by the sans-IO SIP endpoint).
    pub fn set(counter: &AtomicU64, value: u64) {
        counter.store(value, Ordering::Relaxed);
    }

    pub fn publish_sip(&self, s: &voxgate_sip::endpoint::EndpointStats) {
        Self::set(&self.sip_requests_total, s.requests);
        Self::set(&self.sip_responses_sent_total, s.responses_sent);
        Self::set(&self.sip_parse_errors_total, s.parse_errors);
        Self::set(&self.sip_rejected_503_total, s.rejected_503);
        Self::set(&self.sip_retransmissions_total, s.retransmissions);
    }
}
