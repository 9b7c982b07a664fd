//! One storage suite, run against SQLite and against a real PostgreSQL server started for the test.

use super::pg_server::PgServer;
use super::*;
use crate::record::{DialogEvent, Handoff, IntentResult, SlotValue, TurnSegment};
use crate::scorecard::{Evidence, RuleResult, SectionResult};

fn sample(call_id: &str, started: i64) -> CallRecord {
    CallRecord {
        call_id: call_id.into(),
        from_uri: "sip:+15550100001@carrier".into(),
        to_uri: "sip:hotline@voxgate".into(),
        remote_addr: "127.0.0.1:5070".into(),
        transport: "udp".into(),
        started_at_ms: started,
        media_stats: serde_json::json!({}),
        language: "en".into(),
        ..Default::default()
    }
}

fn finished(mut rec: CallRecord, intent: &str, contained: bool, agent: Option<&str>) -> CallRecord {
    rec.codec = "PCMU".into();
    rec.answered_at_ms = Some(rec.started_at_ms + 40);
    rec.ended_at_ms = Some(rec.started_at_ms + 60_040);
    rec.end_reason = Some("remote_bye".into());
    rec.dialog.intent = Some(IntentResult {
        name: intent.into(),
        confidence: 0.9,
        margin: 0.5,
    });
    rec.dialog.contained = Some(contained);
    rec.dialog.handoff = agent.map(|a| Handoff {
        skill: "fraud".into(),
        reason: "caller asked".into(),
        priority: true,
        agent: Some(a.into()),
        tags: Vec::new(),
    });
    rec
}

fn rule(id: &str, outcome: Outcome, weight: f32, critical: bool) -> RuleResult {
    RuleResult {
        rule: id.into(),
        title: format!("Rule {id}"),
        section: "main".into(),
        kind: "phrase".into(),
        outcome,
        weight,
        critical,
        evidence: vec![Evidence {
            turn: Some(1),
            speaker: Some(Speaker::Caller),
            quote: "safe account".into(),
            start_ms: 1800,
            end_ms: 2600,
        }],
        note: String::new(),
    }
}

/// A result made the way the scorecard makes it: recomputed from its rules.
fn result(card: &str, rules: Vec<RuleResult>, pass_mark: f32) -> ScoreResult {
    let mut r = ScoreResult {
        scorecard: card.into(),
        version: "v1".into(),
        score: 0.0,
        raw_score: 0.0,
        passed: false,
        critical_failed: false,
        sections: vec![SectionResult {
            name: "main".into(),
            title: "Main".into(),
            score: None,
            earned: 0.0,
            possible: 0.0,
        }],
        rules,
    };
    r.recompute(pass_mark);
    r
}

fn alert(rule: &str, severity: Severity) -> Alert {
    Alert {
        scorecard: "bank".into(),
        rule: rule.into(),
        title: "Fraud indicator".into(),
        severity,
        speaker: Some(Speaker::Caller),
        quote: "safe account".into(),
        start_ms: 1800,
        end_ms: 2600,
        from_partial: true,
        note: String::new(),
    }
}

const DAY: i64 = 86_400_000;
const T0: i64 = 1_790_000_000_000;

/// Everything the store promises, on one backend.
fn suite(s: &mut Store) {
    records_round_trip(s);
    filters_scores_reviews_alerts_dashboard_and_retention(s);
}

fn records_round_trip(s: &mut Store) {
    let mut rec = sample("abc@10.0.0.1", T0 - 10 * DAY);
    rec.id = s.insert_call(&rec).unwrap();
    let active = s
        .list_calls(&CallFilter {
            active: Some(true),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(active.len(), 1);
    assert!(active[0].ended_at_ms.is_none());
    rec = finished(rec, "balance", true, None);
    rec.id = active[0].id;
    rec.digits = "1****".into();
    rec.media_stats = serde_json::json!({"packets_received": 400});
    rec.timeline = vec![
        TimelineEvent {
            at_ms: 40,
            kind: "answered".into(),
            detail: String::new(),
        },
        TimelineEvent {
            at_ms: 3000,
            kind: "dtmf".into(),
            detail: "1 rfc4733".into(),
        },
    ];
    rec.turns = vec![
        Turn {
            speaker: Speaker::Voxgate,
            start_ms: 60,
            end_ms: 2100,
            text: "Welcome to the demo bank.".into(),
            confidence: None,
            interrupted: true,
            segments: vec![],
            acoustics: None,
        },
        Turn {
            speaker: Speaker::Caller,
            start_ms: 1800,
            end_ms: 3200,
            text: "My balance, please.".into(),
            confidence: Some(0.75),
            interrupted: false,
            segments: vec![TurnSegment {
                start_ms: 1800,
                end_ms: 3200,
                text: "My balance, please.".into(),
            }],
            acoustics: Some(Acoustics {
                speech_ms: 1200,
                loudness_dbfs: -24.5,
                pitch_hz: Some(182.0),
                pitch_p10_hz: Some(150.0),
                pitch_p90_hz: Some(230.0),
                words_per_min: Some(150.0),
                arousal: Some(0.25),
            }),
        },
    ];
    rec.dialog.flow = "demo-bank".into();
    rec.dialog.slots.insert(
        "pin".into(),
        SlotValue {
            display: "****".into(),
            confidence: 1.0,
        },
    );
    rec.dialog.verification = Some("verified".into());
    rec.dialog.events.push(DialogEvent {
        at_ms: 2000,
        kind: "intent".into(),
        detail: "balance 0.90".into(),
    });
    s.save_call(&rec).unwrap();
    assert_eq!(s.get_call(rec.id).unwrap().as_ref(), Some(&rec));
    // Saving again replaces, never duplicates, events and turns.
    s.save_call(&rec).unwrap();
    assert_eq!(s.get_call(rec.id).unwrap().as_ref(), Some(&rec));
    let by_id = s
        .list_calls(&CallFilter {
            call_id: Some("abc@10.0.0.1".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[0].end_reason.as_deref(), Some("remote_bye"));
    assert_eq!(by_id[0].intent.as_deref(), Some("balance"));
    assert_eq!(by_id[0].contained, Some(true));
    assert!(s.get_call(rec.id + 1000).unwrap().is_none());
    // Orphans (a crash mid-call) are closed at start-up.
    let orphan = s.insert_call(&sample("orphan", T0 - 10 * DAY)).unwrap();
    assert_eq!(s.close_orphans(T0 - 9 * DAY).unwrap(), 1);
    let o = s.get_call(orphan).unwrap().unwrap();
    assert_eq!(o.end_reason.as_deref(), Some("interrupted"));
}

fn filters_scores_reviews_alerts_dashboard_and_retention(s: &mut Store) {
    // Three finished calls on two days; a fourth still going.
    let mut ids = Vec::new();
    for (i, (intent, contained, agent)) in [
        ("balance", true, None),
        ("fraud", false, Some("ann")),
        ("lost_card", true, None),
    ]
    .into_iter()
    .enumerate()
    {
        let mut rec = sample(&format!("call-{i}"), T0 + i as i64 * DAY / 2);
        rec.id = s.insert_call(&rec).unwrap();
        let rec = finished(rec, intent, contained, agent);
        s.save_call(&rec).unwrap();
        ids.push(rec.id);
    }
    let live = s.insert_call(&sample("live", T0 + 2 * DAY)).unwrap();

    // Scores: call 0 passes 100, call 1 fails a critical rule, call 2 scores 50 (below the 80 pass mark).
    let pass = |id| rule(id, Outcome::Pass, 10.0, false);
    s.save_scores(
        ids[0],
        &[(
            result("bank", vec![pass("greet"), pass("close")], 80.0),
            80.0,
        )],
        T0,
    )
    .unwrap();
    s.save_scores(
        ids[1],
        &[(
            result(
                "bank",
                vec![pass("greet"), rule("promise", Outcome::Fail, 10.0, true)],
                80.0,
            ),
            80.0,
        )],
        T0,
    )
    .unwrap();
    s.save_scores(
        ids[2],
        &[(
            result(
                "bank",
                vec![pass("greet"), rule("close", Outcome::Fail, 10.0, false)],
                80.0,
            ),
            80.0,
        )],
        T0,
    )
    .unwrap();
    let scores = s.get_scores(ids[1]).unwrap();
    assert_eq!(scores.len(), 1);
    assert!(scores[0].result.critical_failed);
    assert!(!scores[0].result.passed);
    assert_eq!(scores[0].result.rules[1].evidence[0].quote, "safe account");

    let count = |s: &mut Store, f: CallFilter| s.count_calls(&f).unwrap();
    assert_eq!(count(s, CallFilter::default()), 6);
    assert_eq!(
        count(
            s,
            CallFilter {
                active: Some(true),
                ..Default::default()
            }
        ),
        1
    );
    assert_eq!(
        count(
            s,
            CallFilter {
                from_ms: Some(T0),
                to_ms: Some(T0 + DAY),
                ..Default::default()
            }
        ),
        2
    );
    assert_eq!(
        count(
            s,
            CallFilter {
                min_score: Some(90.0),
                ..Default::default()
            }
        ),
        1
    );
    assert_eq!(
        count(
            s,
            CallFilter {
                max_score: Some(60.0),
                ..Default::default()
            }
        ),
        2,
        "the critical failure (0) and the 50"
    );
    assert_eq!(
        count(
            s,
            CallFilter {
                passed: Some(false),
                ..Default::default()
            }
        ),
        2
    );
    assert_eq!(
        count(
            s,
            CallFilter {
                rule_failed: Some("close".into()),
                ..Default::default()
            }
        ),
        1
    );
    assert_eq!(
        count(
            s,
            CallFilter {
                agent: Some("ann".into()),
                ..Default::default()
            }
        ),
        1
    );
    assert_eq!(
        count(
            s,
            CallFilter {
                intent: Some("lost_card".into()),
                ..Default::default()
            }
        ),
        1
    );

    // Alerts.
    let a1 = s
        .insert_alert(
            ids[1],
            "call-1",
            &alert("fraud", Severity::Critical),
            T0 + 5,
        )
        .unwrap();
    let a2 = s
        .insert_alert(
            live,
            "live",
            &alert("anger", Severity::Warning),
            T0 + 3_600_000,
        )
        .unwrap();
    assert!(a2.id > a1.id);
    let all = s.list_alerts(&AlertFilter::default()).unwrap();
    assert_eq!(all.iter().map(|a| a.id).collect::<Vec<_>>(), [a2.id, a1.id]);
    assert_eq!(all[1], a1);
    let after = s
        .list_alerts(&AlertFilter {
            after_id: Some(a1.id),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(after.len(), 1);
    let critical = s
        .list_alerts(&AlertFilter {
            severity: Some(Severity::Critical),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(critical.len(), 1);
    assert_eq!(
        count(
            s,
            CallFilter {
                alert: Some("any".into()),
                ..Default::default()
            }
        ),
        2
    );
    assert_eq!(
        count(
            s,
            CallFilter {
                alert: Some("fraud".into()),
                ..Default::default()
            }
        ),
        1
    );

    // Reviews: refused without a comment, for an unscored scorecard, an unknown rule, or no change.
    let draft = |rule: &str, outcome, comment: &str| ReviewDraft {
        scorecard: "bank".into(),
        rule: rule.into(),
        outcome,
        comment: comment.into(),
        reviewer: "quinn".into(),
        at_ms: T0 + 10,
    };
    assert!(matches!(
        s.add_review(ids[2], &draft("close", Outcome::Pass, "  ")),
        Err(StoreError::EmptyComment)
    ));
    assert!(matches!(
        s.add_review(live, &draft("close", Outcome::Pass, "x")),
        Err(StoreError::NotScored { .. })
    ));
    assert!(matches!(
        s.add_review(ids[2], &draft("nope", Outcome::Pass, "x")),
        Err(StoreError::UnknownRule { .. })
    ));
    assert!(matches!(
        s.add_review(ids[2], &draft("greet", Outcome::Pass, "x")),
        Err(StoreError::NoChange { .. })
    ));
    let review = s
        .add_review(
            ids[2],
            &draft("close", Outcome::Pass, "Closing was said; ASR missed it"),
        )
        .unwrap();
    assert_eq!(review.previous, Outcome::Fail);
    let scores = s.get_scores(ids[2]).unwrap();
    assert_eq!(scores[0].original.score, 50.0, "the original stays");
    assert_eq!(scores[0].result.score, 100.0);
    assert!(scores[0].result.passed);
    assert_eq!(scores[0].reviews, std::slice::from_ref(&review));
    let row = &s
        .list_calls(&CallFilter {
            call_id: Some("call-2".into()),
            ..Default::default()
        })
        .unwrap()[0];
    assert_eq!((row.score, row.passed), (Some(100.0), Some(true)));
    assert_eq!(
        count(
            s,
            CallFilter {
                rule_failed: Some("close".into()),
                ..Default::default()
            }
        ),
        0,
        "filters follow reviews"
    );
    // A second review goes back; the trail keeps both. Re-scoring keeps reviews applied.
    let back = s
        .add_review(
            ids[2],
            &draft("close", Outcome::Fail, "Listened again: no closing"),
        )
        .unwrap();
    assert_eq!(back.previous, Outcome::Pass);
    let stored = s.get_scores(ids[2]).unwrap();
    assert_eq!(stored[0].reviews.len(), 2);
    assert_eq!(stored[0].result.score, 50.0);
    let original = stored[0].original.clone();
    s.save_scores(ids[2], &[(original, 80.0)], T0 + 20).unwrap();
    assert_eq!(s.get_scores(ids[2]).unwrap()[0].result.score, 50.0);
    assert_eq!(s.failed_rules(ids[2]).unwrap(), ["close"]);

    // Dashboard over the three scored calls' days (the live call and the older calls excluded).
    let d = s.dashboard(Some(T0), Some(T0 + 2 * DAY)).unwrap();
    assert_eq!(d.calls, 3);
    assert_eq!(d.finished, 3);
    assert_eq!(d.scored, 3);
    assert_eq!(d.passed, 1);
    assert_eq!(d.average_score.map(|v| v.round()), Some(50.0));
    assert_eq!(d.score_histogram[9], 1);
    assert_eq!(d.score_histogram[5], 1);
    assert_eq!(d.score_histogram[0], 1);
    assert_eq!(d.contained, 2);
    assert_eq!(d.handed_off, 1);
    assert_eq!(d.containment_rate.map(|r| (r * 100.0).round()), Some(67.0));
    assert_eq!(d.average_handle_ms, Some(60_000.0));
    assert_eq!(d.intents.len(), 3);
    let failed: Vec<&str> = d.top_failed_rules.iter().map(|r| r.rule.as_str()).collect();
    assert_eq!(failed, ["close", "promise"]);
    assert_eq!(d.top_failed_rules[0].title, "Rule close");
    assert_eq!(d.alerts, 1);
    assert_eq!(d.alerts_per_hour.len(), 1);
    assert_eq!(d.alerts_per_hour[0].hour_ms % 3_600_000, 0);

    // Retention: calls ended before the cutoff go, with their scores, reviews and alerts.
    let purged = s.purge_ended_before(T0 - 5 * DAY, 1).unwrap();
    assert_eq!(purged.len(), 1, "one per batch");
    let purged2 = s.purge_ended_before(T0 - 5 * DAY, 500).unwrap();
    assert_eq!(purged.len() + purged2.len(), 2, "the two old calls");
    assert_eq!(count(s, CallFilter::default()), 4);
    let gone = s.purge_ended_before(T0 + 10 * DAY, 500).unwrap();
    assert_eq!(gone.len(), 3, "the live call stays");
    assert!(s.get_scores(ids[1]).unwrap().is_empty());
    assert_eq!(
        s.list_alerts(&AlertFilter::default())
            .unwrap()
            .iter()
            .map(|a| a.call)
            .collect::<Vec<_>>(),
        [live]
    );
}

#[test]
fn sqlite_backend_passes_the_storage_suite() {
    let mut s = Store::open_in_memory().unwrap();
    suite(&mut s);
}

#[test]
fn sqlite_file_is_wal_survives_reopen_and_refuses_a_newer_schema() {
    let dir = std::env::temp_dir().join(format!("voxgate-store-{}", std::process::id()));
    let path = dir.join("nested").join("calls.db");
    let _ = std::fs::remove_dir_all(&dir);
    let id = {
        let mut s = Store::open(&path).unwrap();
        s.insert_call(&sample("x", T0)).unwrap()
    };
    let mut s = Store::open(&path).unwrap();
    assert_eq!(s.get_call(id).unwrap().map(|r| r.call_id), Some("x".into()));
    drop(s);
    let db = SqliteDb::open(&path).unwrap();
    assert_eq!(db.journal_mode().unwrap(), "wal");
    drop(db);
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn postgres_backend_passes_the_storage_suite() {
    let server = match PgServer::start("suite") {
        Ok(s) => s,
        Err(e) if std::env::var_os("VOXGATE_SKIP_PG").is_some() => {
            eprintln!("skipped (VOXGATE_SKIP_PG): {e}");
            return;
        }
        Err(e) => panic!("{e} (set VOXGATE_SKIP_PG=1 to skip)"),
    };
    let location = StoreLocation::Postgres(server.url.clone());
    let mut s = Store::open_at(&location).unwrap();
    assert_eq!(s.dialect(), Dialect::Postgres);
    suite(&mut s);
    // A second box opening the same database finds the schema in place.
    let again = Store::open_at(&location).unwrap();
    assert_eq!(again.dialect(), Dialect::Postgres);
    // A wrong URL fails without echoing it.
    let bad = StoreLocation::Postgres("postgres://voxgate:hunter2@127.0.0.1:1/none".into());
    let err = Store::open_at(&bad)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        !err.contains("hunter2") && err.contains("PostgreSQL"),
        "{err}"
    );
}
