//! The HTTP API as its users meet it: logins, roles, reviews, exports, and calls stored in PostgreSQL.
//! Calls are placed with sipp (keypad only), so no speech model is needed.

mod common;

use common::{add_user, http, Reply, Voxgate};
use serde_json::Value;

struct Session<'a> {
    vg: &'a Voxgate,
    cookie: String,
}

impl Session<'_> {
    fn get(&self, path: &str) -> Reply {
        http(
            self.vg.http_addr(),
            "GET",
            path,
            &[("Cookie", self.cookie.clone())],
            None,
        )
        .expect("GET")
    }

    fn post(&self, path: &str, content_type: &str, body: &str) -> Reply {
        http(
            self.vg.http_addr(),
            "POST",
            path,
            &[("Cookie", self.cookie.clone())],
            Some((content_type, body)),
        )
        .expect("POST")
    }
}

fn login<'a>(vg: &'a Voxgate, user: &str, password: &str) -> Result<Session<'a>, Reply> {
    let body = serde_json::json!({ "username": user, "password": password }).to_string();
    let r = http(
        vg.http_addr(),
        "POST",
        "/api/v1/login",
        &[],
        Some(("application/json", &body)),
    )
    .expect("login");
    if r.status != 200 {
        return Err(r);
    }
    let set = r.header("set-cookie").expect("session cookie").to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap_or_default().to_string();
    Ok(Session { vg, cookie })
}

#[test]
fn roles_logins_reviews_and_exports() {
    let users = std::env::temp_dir().join(format!("voxgate-api-users-{}.toml", std::process::id()));
    let _ = std::fs::remove_file(&users);
    add_user(&users, "sam", "supervisor", "supervisor-pass-1");
    add_user(&users, "quinn", "qa_reviewer", "reviewer-pass-1");
    let text = std::fs::read_to_string(&users).expect("users file");
    assert!(text.contains("$argon2id$") && !text.contains("reviewer-pass-1"));
    let vg = Voxgate::start_with("api-roles", |c| {
        c.set(
            "auth",
            "users_file",
            &format!("{:?}", users.to_string_lossy()),
        );
        c.set("auth", "max_failures", "3");
    });
    // A caller keys 0; with no agents configured voxgate apologises and hangs up. The call gets scored.
    let rec = vg.one_call("uac_dtmf_info.xml", &[]);
    let id = rec["id"].as_i64().expect("id");

    // Nothing without credentials; the UI shell itself is public.
    let anon = http(vg.http_addr(), "GET", "/api/v1/calls", &[], None).expect("GET");
    assert_eq!(anon.status, 401);
    assert!(anon.header("www-authenticate").is_some());
    let page = http(vg.http_addr(), "GET", "/", &[], None).expect("GET /");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-security-policy")
        .is_some_and(|v| v.contains("default-src 'self'")));
    let bad_token = http(
        vg.http_addr(),
        "GET",
        "/api/v1/calls",
        &[("Authorization", "Bearer nope".to_string())],
        None,
    )
    .expect("GET");
    assert_eq!(bad_token.status, 401);

    // Wrong passwords lock the account after max_failures, even for the right password afterwards.
    assert_eq!(
        login(&vg, "sam", "wrong").err().map(|r| r.status),
        Some(401)
    );
    assert_eq!(login(&vg, "nobody", "x").err().map(|r| r.status), Some(401));
    let sup = login(&vg, "sam", "supervisor-pass-1").expect("supervisor login");
    assert_eq!(sup.get("/api/v1/me").json()["role"], "supervisor");

    // The supervisor sees calls, the live board and the alert stream, but may not review or export.
    let list = sup.get("/api/v1/calls").json();
    assert_eq!(list["total"], 1);
    let row = &list["calls"][0];
    assert!(row["score"].as_f64().is_some(), "{row:#}");
    assert_eq!(row["language"], "en");
    assert_eq!(sup.get("/api/v1/live").status, 200);
    assert_eq!(sup.get("/api/v1/export").status, 403);
    let review =
        serde_json::json!({"scorecard": "x", "rule": "y", "outcome": "fail", "comment": "z"})
            .to_string();
    assert_eq!(
        sup.post(
            &format!("/api/v1/calls/{id}/reviews"),
            "application/json",
            &review
        )
        .status,
        403
    );

    // The reviewer: the call with its scores, evidence and recording; no live board.
    let qa = login(&vg, "quinn", "reviewer-pass-1").expect("reviewer login");
    assert_eq!(qa.get("/api/v1/live").status, 403);
    assert_eq!(qa.get("/api/v1/alerts/stream").status, 403);
    let call = qa.get(&format!("/api/v1/calls/{id}")).json();
    let scores = call["scores"].as_array().expect("scores");
    assert!(!scores.is_empty(), "{call:#}");
    let card = scores[0]["result"]["scorecard"]
        .as_str()
        .expect("scorecard")
        .to_string();
    assert_eq!(
        call["recording_url"],
        format!("/api/v1/calls/{id}/recording")
    );
    let audio = qa.get(&format!("/api/v1/calls/{id}/recording"));
    assert_eq!(audio.status, 200);
    assert_eq!(&audio.body[..4], b"RIFF");
    let rules = scores[0]["result"]["rules"].as_array().expect("rules");
    let passed = rules
        .iter()
        .find(|r| r["outcome"] == "pass")
        .expect("a passing rule");
    let rule = passed["rule"].as_str().expect("rule id").to_string();
    let before = scores[0]["result"]["score"].as_f64().expect("score");

    // Overrides: JSON only, a comment required, a real change required; the original stays.
    let path = format!("/api/v1/calls/{id}/reviews");
    let body = |outcome: &str, comment: &str| {
        serde_json::json!({"scorecard": card, "rule": rule, "outcome": outcome, "comment": comment})
            .to_string()
    };
    assert_eq!(
        qa.post(&path, "application/x-www-form-urlencoded", "scorecard=x")
            .status,
        415
    );
    assert_eq!(
        qa.post(&path, "application/json", &body("fail", " "))
            .status,
        400
    );
    assert_eq!(
        qa.post(&path, "application/json", &body("pass", "same"))
            .status,
        409
    );
    let done = qa.post(
        &path,
        "application/json",
        &body("fail", "The caller was not greeted properly"),
    );
    assert_eq!(done.status, 201, "{}", done.text());
    let done = done.json();
    assert_eq!(done["review"]["reviewer"], "quinn");
    assert_eq!(done["review"]["previous"], "pass");
    let stored = &done["scores"][0];
    assert_eq!(stored["original"]["score"].as_f64(), Some(before));
    let after = stored["result"]["score"].as_f64().expect("score");
    assert!(after < before, "{before} -> {after}");
    let failed = qa.get(&format!("/api/v1/calls?rule_failed={rule}")).json();
    assert_eq!(failed["total"], 1, "the filter follows the review");

    // Export: CSV with the failed rule, formula-safe; JSON too.
    let csv = qa.get("/api/v1/export");
    assert_eq!(csv.status, 200);
    assert!(csv
        .header("content-type")
        .is_some_and(|v| v.starts_with("text/csv")));
    assert_eq!(csv.header("x-voxgate-truncated"), Some("false"));
    let text = csv.text();
    assert!(text.starts_with("id,call_id,"), "{text}");
    assert!(
        text.lines().nth(1).is_some_and(|l| l.contains(&rule)),
        "{text}"
    );
    let json: Value = qa.get("/api/v1/export?format=json").json();
    assert_eq!(json["calls"][0]["id"], id);
    assert_eq!(qa.get("/api/v1/export?format=xml").status, 400);

    // Dashboards and scorecards.
    let d = qa.get("/api/v1/dashboard").json();
    assert_eq!(d["scored"], 1);
    assert_eq!(
        d["score_histogram"].as_array().map(Vec::len),
        Some(10),
        "{d:#}"
    );
    let cards = qa.get("/api/v1/scorecards").json();
    assert!(cards["scorecards"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["name"] == card.as_str())));
    assert_eq!(qa.get("/api/v1/calls?from=2026-02-30").status, 400);

    // Logout ends the session.
    assert_eq!(
        qa.post("/api/v1/logout", "application/json", "{}").status,
        200
    );
    assert_eq!(qa.get("/api/v1/me").status, 401);

    // Lockout: three wrong passwords, then even the right one is refused for a while.
    for _ in 0..3 {
        assert_eq!(
            login(&vg, "sam", "wrong").err().map(|r| r.status),
            Some(401)
        );
    }
    let locked = login(&vg, "sam", "supervisor-pass-1")
        .err()
        .expect("locked out");
    assert_eq!(locked.status, 429);
    assert!(locked.header("retry-after").is_some());
    let _ = std::fs::remove_file(&users);
}

#[test]
fn calls_are_stored_and_scored_in_postgresql_when_configured() {
    let server = match voxgate_qa::store::pg_server::PgServer::start("api") {
        Ok(s) => s,
        Err(e) if std::env::var_os("VOXGATE_SKIP_PG").is_some() => {
            eprintln!("skipped (VOXGATE_SKIP_PG): {e}");
            return;
        }
        Err(e) => panic!("{e} (set VOXGATE_SKIP_PG=1 to skip)"),
    };
    let url = server.url.clone();
    let vg = Voxgate::start_with("api-pg", |c| {
        c.set("storage", "postgres_url", &format!("{url:?}"))
    });
    let rec = vg.one_call("uac_dtmf_info.xml", &[]);
    let id = rec["id"].as_i64().expect("id");
    let call = vg.get_json(&format!("/api/v1/calls/{id}"));
    assert!(!call["scores"].as_array().expect("scores").is_empty());
    // Read back directly from PostgreSQL; no SQLite file was made.
    let mut store =
        voxgate_qa::Store::open_at(&voxgate_qa::store::StoreLocation::Postgres(url)).expect("pg");
    let stored = store
        .get_call(id)
        .expect("query")
        .expect("call in PostgreSQL");
    assert_eq!(stored.call_id, rec["call_id"].as_str().unwrap_or_default());
    assert_eq!(stored.end_reason.as_deref(), Some("completed"));
    assert_eq!(
        store.get_scores(id).expect("scores").len(),
        call["scores"].as_array().map_or(0, Vec::len)
    );
    assert!(!vg.dir.join("voxgate.db").exists());
    drop(vg);
    drop(server);
}
