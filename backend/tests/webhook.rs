//! The webhook client against a scripted HTTP server on 127.0.0.1 (std only, one connection per reply).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use voxgate_backend::{Backend, BackendError, Request, Response, WebhookBackend, WebhookConfig};

/// What the server does with one connection.
#[derive(Clone)]
enum Reply {
    Status(u16, &'static str),
    /// Reads the request, then says nothing for this long.
    Hang(Duration),
}

#[derive(Debug)]
struct Seen {
    request_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves the replies in order, one connection each, then stops; also stops after 10 s regardless so a
    /// failing test cannot leave it running.
    fn start(replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/voxgate", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut replies = replies.into_iter();
            let mut next = replies.next();
            while let Some(reply) = next.take() {
                if Instant::now() > deadline {
                    return;
                }
                match listener.accept() {
                    Ok((stream, _)) => {
                        // Logged before replying, so a hanging reply still counts as a hit.
                        if let Some((seen, stream)) = read_request(stream) {
                            log.lock().unwrap().push(seen);
                            respond(stream, &reply);
                        }
                        next = replies.next();
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        next = Some(reply);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => return,
                }
            }
        });
        Self {
            url,
            seen,
            thread: Some(thread),
        }
    }

    fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Waits for the server to finish its script (for tests that expect every reply to be used).
    fn join(mut self) -> Vec<Seen> {
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn read_request(stream: TcpStream) -> Option<(Seen, TcpStream)> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let seen = Seen {
        request_line: request_line.trim_end().to_owned(),
        headers,
        body: String::from_utf8(body).ok()?,
    };
    Some((seen, stream))
}

fn respond(mut stream: TcpStream, reply: &Reply) {
    match reply {
        Reply::Status(status, body) => {
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
        Reply::Hang(d) => std::thread::sleep(*d),
    }
}

fn config(url: &str) -> WebhookConfig {
    WebhookConfig {
        timeout: Duration::from_millis(500),
        retries: 2,
        backoff: Duration::from_millis(20),
        ..WebhookConfig::new(url)
    }
}

fn balance_request() -> Request {
    Request::Balance {
        account: "12345678".into(),
    }
}

const BALANCE_OK: &str = r#"{"type":"balance","amount_minor":123456,"currency":"USD"}"#;

#[test]
fn success_posts_request_json_and_parses_response() {
    let server = Server::start(vec![Reply::Status(200, BALANCE_OK)]);
    let backend = WebhookBackend::new(config(&server.url)).unwrap();
    assert_eq!(backend.name(), "webhook");
    assert_eq!(
        backend.call(&balance_request()).unwrap(),
        Response::Balance {
            amount_minor: 123_456,
            currency: "USD".into()
        }
    );
    let seen = server.join();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].request_line, "POST /voxgate HTTP/1.1");
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    assert_eq!(seen[0].header("authorization"), None);
    let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"type": "balance", "account": "12345678"})
    );
}

#[test]
fn server_error_then_success_is_retried_with_same_key_and_token() {
    let server = Server::start(vec![
        Reply::Status(500, "oops"),
        Reply::Status(503, ""),
        Reply::Status(200, r#"{"type":"pin_wrong","attempts_left":2}"#),
    ]);
    let backend = WebhookBackend::new(WebhookConfig {
        bearer_token: Some("s3cret".into()),
        ..config(&server.url)
    })
    .unwrap();
    let req = Request::VerifyPin {
        account: "12345678".into(),
        pin: "0000".into(),
    };
    assert_eq!(
        backend.call(&req).unwrap(),
        Response::PinWrong { attempts_left: 2 }
    );
    let seen = server.join();
    assert_eq!(seen.len(), 3);
    let key = seen[0].header("idempotency-key").unwrap().to_owned();
    assert!(!key.is_empty());
    for s in &seen {
        assert_eq!(s.header("authorization"), Some("Bearer s3cret"));
        assert_eq!(s.header("idempotency-key"), Some(key.as_str()));
        // The PIN has to reach the bank's service.
        assert!(s.body.contains(r#""pin":"0000""#), "{}", s.body);
    }
    // A new call gets a new key.
    let server = Server::start(vec![Reply::Status(200, BALANCE_OK)]);
    let backend2 = WebhookBackend::new(config(&server.url)).unwrap();
    backend2.call(&balance_request()).unwrap();
    assert_ne!(
        server.join()[0].header("idempotency-key"),
        Some(key.as_str())
    );
    // The token stays out of Debug output.
    let dbg = format!("{backend:?}");
    assert!(!dbg.contains("s3cret"), "{dbg}");
}

#[test]
fn persistent_server_errors_end_unavailable_after_all_attempts() {
    let server = Server::start(vec![Reply::Status(502, ""); 3]);
    let backend = WebhookBackend::new(config(&server.url)).unwrap();
    match backend.call(&balance_request()) {
        Err(BackendError::Unavailable { attempts, reason }) => {
            assert_eq!(attempts, 3);
            assert!(reason.contains("502"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.join().len(), 3);
}

#[test]
fn client_errors_are_not_retried() {
    for status in [400, 401, 404, 429] {
        let server = Server::start(vec![
            Reply::Status(status, "{}"),
            Reply::Status(200, BALANCE_OK),
        ]);
        let backend = WebhookBackend::new(config(&server.url)).unwrap();
        assert_eq!(
            backend.call(&balance_request()),
            Err(BackendError::Rejected { status })
        );
        // Give a wrongly issued retry time to arrive before counting.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(server.hits(), 1, "HTTP {status} was retried");
    }
}

#[test]
fn redirects_are_rejected_not_followed() {
    let server = Server::start(vec![Reply::Status(307, "")]);
    let backend = WebhookBackend::new(config(&server.url)).unwrap();
    assert_eq!(
        backend.call(&balance_request()),
        Err(BackendError::Rejected { status: 307 })
    );
}

#[test]
fn timeout_is_retried_then_reported() {
    let server = Server::start(vec![Reply::Hang(Duration::from_millis(3000)); 2]);
    let backend = WebhookBackend::new(WebhookConfig {
        timeout: Duration::from_millis(300),
        retries: 1,
        ..config(&server.url)
    })
    .unwrap();
    let started = Instant::now();
    assert_eq!(backend.call(&balance_request()), Err(BackendError::Timeout));
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    // Well under the server's 3 s hang, with room for a loaded machine.
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
    // The second attempt waits in the listen backlog while the server hangs on the first.
    assert_eq!(server.hits(), 1);
}

#[test]
fn timeout_then_success() {
    let server = Server::start(vec![
        Reply::Hang(Duration::from_millis(400)),
        Reply::Status(200, BALANCE_OK),
    ]);
    let backend = WebhookBackend::new(WebhookConfig {
        timeout: Duration::from_millis(200),
        retries: 3,
        backoff: Duration::from_millis(300),
        ..config(&server.url)
    })
    .unwrap();
    assert!(matches!(
        backend.call(&balance_request()),
        Ok(Response::Balance { .. })
    ));
    assert_eq!(server.join().len(), 2);
}

#[test]
fn garbage_json_is_a_bad_response_without_retry() {
    for body in ["this is not json", r#"{"type":"no_such_type"}"#, ""] {
        let server = Server::start(vec![
            Reply::Status(200, body),
            Reply::Status(200, BALANCE_OK),
        ]);
        let backend = WebhookBackend::new(config(&server.url)).unwrap();
        assert!(
            matches!(
                backend.call(&balance_request()),
                Err(BackendError::BadResponse { .. })
            ),
            "{body:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(server.hits(), 1, "{body:?} was retried");
    }
}

#[test]
fn answer_that_does_not_fit_the_request_is_a_bad_response() {
    let server = Server::start(vec![Reply::Status(
        200,
        r#"{"type":"pin_ok","customer_id":"C1001"}"#,
    )]);
    let backend = WebhookBackend::new(config(&server.url)).unwrap();
    match backend.call(&balance_request()) {
        Err(BackendError::BadResponse { reason }) => assert!(reason.contains("pin_ok"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn connection_refused_is_retried_then_unavailable() {
    // A port that was just free: nothing listens there any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let backend = WebhookBackend::new(config(&format!("http://127.0.0.1:{port}/"))).unwrap();
    match backend.call(&balance_request()) {
        Err(BackendError::Unavailable { attempts, .. }) => assert_eq!(attempts, 3),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_configuration_fails_at_construction() {
    for url in ["", "not a url", "ftp://example.com/x", "/relative"] {
        assert!(
            matches!(
                WebhookBackend::new(WebhookConfig::new(url)),
                Err(BackendError::Invalid { .. })
            ),
            "{url:?}"
        );
    }
    let bad_token = WebhookConfig {
        bearer_token: Some("line\nbreak".into()),
        ..WebhookConfig::new("http://127.0.0.1:9/")
    };
    assert!(matches!(
        WebhookBackend::new(bad_token),
        Err(BackendError::Invalid { .. })
    ));
    let zero = WebhookConfig {
        timeout: Duration::ZERO,
        ..WebhookConfig::new("http://127.0.0.1:9/")
    };
    assert!(matches!(
        WebhookBackend::new(zero),
        Err(BackendError::Invalid { .. })
    ));
}

#[test]
fn demo_bank_answers_round_trip_through_the_webhook() {
    // The demo bank's answers, served as JSON, parse back identically: the types are the wire format.
    let bank = voxgate_backend::DemoBank::open_in_memory(3).unwrap();
    let req = Request::LookupCaller {
        phone: "+15550100001".into(),
    };
    let expected = bank.call(&req).unwrap();
    let json: &'static str = Box::leak(serde_json::to_string(&expected).unwrap().into_boxed_str());
    let server = Server::start(vec![Reply::Status(200, json)]);
    let backend = WebhookBackend::new(config(&server.url)).unwrap();
    assert_eq!(backend.call(&req).unwrap(), expected);
}
