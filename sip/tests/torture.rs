//! RFC 4475 torture tests: valid messages parse with the right values, invalid
//! ones are rejected (by the parser or by request validation), and the endpoint
//! answers each the way the RFC asks — never panicking.

mod rfc4475;

use std::net::SocketAddr;
use std::time::Instant;

use voxgate_sip::endpoint::{Endpoint, EndpointConfig, Event, Transport};
use voxgate_sip::header::ViaTransport;
use voxgate_sip::sdp::SessionDescription;
use voxgate_sip::{Host, Method, ParseError, Request, Response, SipMessage, Uri};

fn request(data: &[u8]) -> Request {
    match SipMessage::parse(data) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("expected request, got {other:?}"),
    }
}

fn response(data: &[u8]) -> Response {
    match SipMessage::parse(data) {
        Ok(SipMessage::Response(r)) => r,
        other => panic!("expected response, got {other:?}"),
    }
}

#[test]
fn wsinv_short_tortuous_invite() {
    let r = request(&rfc4475::wsinv());
    assert!(r.validate().is_ok());
    assert_eq!(r.method, Method::Invite);
    let uri = r.uri.as_sip().unwrap();
    assert_eq!(uri.user.as_deref(), Some("vivekg"));
    assert!(uri.param("unknownparam").is_some());
    let h = &r.headers;
    let to = h.to().unwrap();
    assert_eq!(to.tag(), Some("1918181833n"));
    assert_eq!(to.display_name, None);
    let from = h.from().unwrap();
    assert_eq!(from.display_name.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(h.max_forwards().unwrap(), Some(68));
    assert_eq!(h.call_id().unwrap(), "wsinv.ndaksdj@192.0.2.1");
    let cseq = h.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    let vias = h.vias().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].transport, ViaTransport::Udp);
    assert_eq!(vias[0].host, Host::Ip("192.0.2.2".parse().unwrap()));
    assert_eq!(vias[0].branch(), Some("390skdjuw"));
    assert!(vias[0].rfc3261_branch().is_none());
    assert_eq!(vias[1].transport, ViaTransport::Tcp);
    assert_eq!(vias[1].host, Host::Domain("spindle.example.com".into()));
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(vias[2].host, Host::Ip("192.168.255.111".parse().unwrap()));
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(h.get("Subject"), Some(""));
    assert_eq!(
        h.get("newfangledheader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(h.get("UnknownHeaderWithUnusualValue"), Some(";;,,;;,;"));
    assert!(h.content_type().unwrap().unwrap().is("application", "sdp"));
    let routes = h.routes().unwrap();
    assert!(routes[0].uri.as_sip().unwrap().is_loose_route());
    let contacts = h.contacts().unwrap();
    assert_eq!(contacts.len(), 1);
    assert_eq!(
        contacts[0].display_name.as_deref(),
        Some("Quoted string \"\"")
    );
    assert_eq!(
        contacts[0].param("newparam").unwrap().value.as_deref(),
        Some("newvalue")
    );
    assert_eq!(contacts[0].param("secondparam").unwrap().value, None);
    assert_eq!(
        contacts[0].param("q").unwrap().value.as_deref(),
        Some("0.33")
    );
    assert_eq!(r.body.len(), 150);
    assert_eq!(SessionDescription::parse(&r.body).unwrap().media.len(), 2);
}

#[test]
fn intmeth_wide_range_of_characters() {
    let r = request(&rfc4475::intmeth());
    assert!(r.validate().is_ok());
    assert_eq!(
        r.method,
        Method::Other("!interesting-Method0123456789_*+`.%indeed'~".into())
    );
    let uri = r.uri.as_sip().unwrap();
    assert_eq!(
        uri.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        uri.password.as_deref(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(uri.host, Host::Domain("example.com".into()));
    let h = &r.headers;
    assert_eq!(
        h.to().unwrap().display_name.as_deref(),
        Some("BEL:\x07 NUL:\x00 DEL:\x7F")
    );
    let from = h.from().unwrap();
    assert_eq!(
        from.display_name.as_deref(),
        Some("token1~` token2'+_ token3*%!.-")
    );
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        from.param("fromParam''~+*_!.-%").unwrap().value.as_deref(),
        Some("\"работающий\"")
    );
    assert_eq!(
        h.call_id().unwrap(),
        "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    );
    assert_eq!(h.max_forwards().unwrap(), Some(255));
    assert_eq!(h.top_via().unwrap().branch(), Some("z9hG4bK-.!%66*_+`'~"));
    assert_eq!(h.get("extensionHeader-!.%*+_`'~"), Some("\u{feff}大停電"));
}

#[test]
fn esc01_percent_escapes() {
    let r = request(&rfc4475::esc01());
    assert!(r.validate().is_ok());
    assert_eq!(
        r.uri.as_sip().unwrap().user.as_deref(),
        Some("sips%3Auser%40example.com")
    );
    let to = r.headers.to().unwrap();
    assert_eq!(to.uri.as_sip().unwrap().user.as_deref(), Some("%75se%72"));
    let contact = &r.headers.contacts().unwrap()[0];
    let cu = contact.uri.as_sip().unwrap();
    assert_eq!(cu.params.len(), 2);
    assert_eq!(
        cu.param("n%61me").unwrap().value.as_deref(),
        Some("v%61lue%25%34%31")
    );
    assert_eq!(r.body.len(), 150);
}

#[test]
fn escnull_and_esc02() {
    let r = request(&rfc4475::escnull());
    assert!(r.validate().is_ok());
    assert_eq!(r.headers.contacts().unwrap().len(), 2);
    assert_eq!(
        r.headers
            .to()
            .unwrap()
            .uri
            .as_sip()
            .unwrap()
            .user
            .as_deref(),
        Some("null-%00-null")
    );
    let r = request(&rfc4475::esc02());
    assert!(r.validate().is_ok());
    assert_eq!(r.method, Method::Other("RE%47IST%45R".into()));
    assert_eq!(
        r.headers.to().unwrap().display_name.as_deref(),
        Some("%Z%45")
    );
    // C%6Fntact is an unknown header, not Contact.
    assert_eq!(r.headers.contacts().unwrap().len(), 2);
    assert!(r.headers.get("C%6Fntact").is_some());
    assert_eq!(
        r.headers.top_via().unwrap().branch(),
        Some("z9hG4bK209%fzsnel234")
    );
}

#[test]
fn lwsdisp_longreq_semiuri_transports() {
    let r = request(&rfc4475::lwsdisp());
    assert!(r.validate().is_ok());
    assert_eq!(
        r.headers.from().unwrap().display_name.as_deref(),
        Some("caller")
    );

    let r = request(&rfc4475::longreq());
    assert!(r.validate().is_ok());
    assert_eq!(r.headers.vias().unwrap().len(), 33);
    assert_eq!(r.headers.from().unwrap().tag().unwrap().len(), 400);
    assert_eq!(
        r.headers.to().unwrap().uri.as_sip().unwrap().port,
        Some(6000)
    );
    assert_eq!(r.body.len(), 150);

    let r = request(&rfc4475::semiuri());
    assert!(r.validate().is_ok());
    let uri = r.uri.as_sip().unwrap();
    assert_eq!(uri.user.as_deref(), Some("user;par=u%40example.net"));
    assert!(uri.params.is_empty());
    assert_eq!(r.headers.list("Accept").count(), 6);

    let r = request(&rfc4475::transports());
    let transports: Vec<ViaTransport> = r
        .headers
        .vias()
        .unwrap()
        .into_iter()
        .map(|v| v.transport)
        .collect();
    assert_eq!(
        transports,
        vec![
            ViaTransport::Udp,
            ViaTransport::Sctp,
            ViaTransport::Tls,
            ViaTransport::Other("UNKNOWN".into()),
            ViaTransport::Tcp
        ]
    );
}

#[test]
fn dblreq_extra_octets_ignored() {
    let r = request(&rfc4475::dblreq());
    assert_eq!(r.method, Method::Register);
    assert!(r.body.is_empty());
    assert!(r.validate().is_ok());
}

#[test]
fn mpart01_binary_body() {
    let data = rfc4475::mpart01();
    let r = request(&data);
    assert_eq!(r.method, Method::Message);
    let ct = r.headers.content_type().unwrap().unwrap();
    assert!(ct.is("multipart", "mixed"));
    assert_eq!(ct.param_unquoted("boundary"), Some("7a9cbec02ceef655"));
    assert!(
        r.body.windows(3).any(|w| w == [2, 1, 0]),
        "binary kept intact"
    );
    let reparsed = request(&r.to_bytes());
    assert_eq!(reparsed.body, r.body);
}

#[test]
fn unusual_and_empty_reason_phrases() {
    let r = response(&rfc4475::unreason());
    assert_eq!(r.status, 200);
    assert!(r.reason.contains("2**3 * 5**2 но сто"));
    assert_eq!(r.body.len(), 150);
    let r = response(&rfc4475::noreason());
    assert_eq!(r.status, 100);
    assert_eq!(r.reason, "");
    let r = response(&rfc4475::bcast());
    assert_eq!(r.headers.vias().unwrap().len(), 2);
}

#[test]
fn invalid_messages_are_rejected() {
    assert_eq!(
        request(&rfc4475::badinv01()).validate(),
        Err(ParseError::InvalidHeader("Via"))
    );
    assert!(request(&rfc4475::badinv01()).headers.contacts().is_err());
    assert!(matches!(
        SipMessage::parse(&rfc4475::clerr()),
        Err(ParseError::BodyTruncated { declared: 9999, .. })
    ));
    assert_eq!(
        SipMessage::parse(&rfc4475::ncl()),
        Err(ParseError::InvalidContentLength)
    );
    let s = request(&rfc4475::scalar02());
    assert_eq!(s.validate(), Err(ParseError::InvalidHeader("CSeq")));
    assert_eq!(
        s.headers.max_forwards(),
        Err(ParseError::InvalidHeader("Max-Forwards"))
    );
    assert!(response(&rfc4475::scalarlg()).headers.cseq().is_err());
    assert_eq!(
        request(&rfc4475::quotbal()).validate(),
        Err(ParseError::InvalidHeader("To"))
    );
    assert!(matches!(
        SipMessage::parse(&rfc4475::ltgtruri()),
        Err(ParseError::InvalidRequestUri(_))
    ));
    for data in [rfc4475::lwsruri(), rfc4475::lwsstart(), rfc4475::trws()] {
        assert_eq!(SipMessage::parse(&data), Err(ParseError::InvalidStartLine));
    }
    assert_eq!(
        SipMessage::parse(&rfc4475::escruri()),
        Err(ParseError::HeadersInRequestUri)
    );
    assert_eq!(
        SipMessage::parse(&rfc4475::badvers()),
        Err(ParseError::UnsupportedVersion("SIP/7.0".into()))
    );
    assert_eq!(
        request(&rfc4475::mismatch01()).validate(),
        Err(ParseError::InvalidHeader("CSeq"))
    );
    assert_eq!(
        request(&rfc4475::mismatch02()).validate(),
        Err(ParseError::InvalidHeader("CSeq"))
    );
    assert_eq!(
        SipMessage::parse(&rfc4475::bigcode()),
        Err(ParseError::InvalidStatusCode)
    );
    assert_eq!(
        request(&rfc4475::insuf()).validate(),
        Err(ParseError::MissingHeader("From"))
    );
    assert_eq!(
        request(&rfc4475::multi01()).validate(),
        Err(ParseError::DuplicateHeader("From"))
    );
    assert_eq!(
        SipMessage::parse(&rfc4475::mcl01()),
        Err(ParseError::ConflictingContentLength)
    );
    let b = request(&rfc4475::badbranch());
    assert!(b.headers.top_via().unwrap().rfc3261_branch().is_none());
    assert!(matches!(request(&rfc4475::unkscm()).uri, Uri::Other { .. }));
}

/// Feeds every fixture to an endpoint and checks the status it answers with
/// (`None` = silently dropped).
#[test]
fn endpoint_answers_torture_messages_per_rfc() {
    let expected: &[(&str, Option<u16>)] = &[
        ("wsinv", Some(481)), // To tag of a dialog we do not know
        ("intmeth", Some(501)),
        ("esc01", Some(100)),
        ("escnull", Some(405)),
        ("esc02", Some(501)),
        ("lwsdisp", Some(200)),
        ("longreq", Some(100)),
        ("dblreq", Some(405)),
        ("semiuri", Some(200)),
        ("transports", Some(200)),
        ("mpart01", Some(405)),
        ("unreason", None),
        ("noreason", None),
        ("badinv01", Some(400)),
        ("clerr", Some(400)),
        ("ncl", Some(400)),
        ("scalar02", Some(400)),
        ("scalarlg", None),
        ("quotbal", Some(400)),
        ("ltgtruri", Some(400)),
        ("lwsruri", Some(400)),
        ("lwsstart", Some(400)),
        ("trws", Some(400)),
        ("escruri", Some(400)),
        ("badvers", Some(505)),
        ("mismatch01", Some(400)),
        ("mismatch02", Some(400)),
        ("bigcode", None),
        ("badbranch", Some(200)),
        ("insuf", Some(400)),
        ("unkscm", Some(416)),
        ("multi01", Some(400)),
        ("mcl01", Some(400)),
        ("bcast", None),
        ("zeromf", Some(483)),
        ("inv2543", Some(100)),
    ];
    let fixtures = rfc4475::all();
    assert_eq!(fixtures.len(), expected.len());
    let local: SocketAddr = "192.0.2.200:5060".parse().unwrap();
    let remote: SocketAddr = "192.0.2.15:5060".parse().unwrap();
    for ((name, data), (exp_name, status)) in fixtures.iter().zip(expected) {
        assert_eq!(name, exp_name);
        let mut ep = Endpoint::new(EndpointConfig::default());
        ep.handle_input(Instant::now(), Transport::Udp, local, remote, data);
        let sent: Vec<u16> = std::iter::from_fn(|| ep.poll_transmit())
            .map(|t| match SipMessage::parse(&t.payload) {
                Ok(SipMessage::Response(r)) => r.status,
                other => panic!("{name}: we sent {other:?}"),
            })
            .collect();
        assert_eq!(sent.first().copied(), *status, "{name}");
        assert!(sent.len() <= 1, "{name}: {sent:?}");
        let events: Vec<Event> = std::iter::from_fn(|| ep.poll_event()).collect();
        let expect_call = *status == Some(100);
        assert_eq!(
            matches!(events.as_slice(), [Event::IncomingCall(_)]),
            expect_call,
            "{name}: {events:?}"
        );
    }
}
