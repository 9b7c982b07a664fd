//! Dialog state (RFC 3261 §12): identity, CSeq spaces, remote target and route set.
//!
//! A [`Dialog`] does not know whether it was created by the UAS or the UAC side;
//! only the constructors differ, so the endpoint can reuse it for outgoing legs.

use crate::header::{CSeq, Method, NameAddr, Via};
use crate::message::{ParseError, Request, Response};
use crate::uri::{Param, Uri};

/// `(Call-ID, local tag, remote tag)` — the dialog identity (RFC 3261 §12).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// Identity of the dialog an incoming request belongs to, seen from our side
    /// (our tag is in To). `None` for requests outside a dialog (no To tag).
    pub fn for_incoming_request(req: &Request) -> Result<Option<DialogId>, ParseError> {
        let to = req.headers.to()?;
        let Some(local) = to.tag() else {
            return Ok(None);
        };
        let from = req.headers.from()?;
        Ok(Some(DialogId {
            call_id: req.headers.call_id()?.to_string(),
            local_tag: local.to_string(),
            remote_tag: from.tag().unwrap_or_default().to_string(),
        }))
    }

    /// Identity of the dialog a response to our request belongs to.
    pub fn for_incoming_response(resp: &Response) -> Result<Option<DialogId>, ParseError> {
        let to = resp.headers.to()?;
        let Some(remote) = to.tag() else {
            return Ok(None);
        };
        let from = resp.headers.from()?;
        Ok(Some(DialogId {
            call_id: resp.headers.call_id()?.to_string(),
            local_tag: from.tag().unwrap_or_default().to_string(),
            remote_tag: remote.to_string(),
        }))
    }
}

/// Why a dialog could not be created or a request was refused by it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("response creating a dialog has no To tag")]
    MissingRemoteTag,
    #[error("request CSeq {got} is lower than the last one ({last})")]
    CSeqOutOfOrder { got: u32, last: u32 },
}

/// Dialog state shared by UAS- and UAC-created dialogs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub id: DialogId,
    /// Last CSeq we used; the next request uses `local_seq + 1`.
    pub local_seq: u32,
    /// Last CSeq received from the peer; `None` until it sends a request.
    pub remote_seq: Option<u32>,
    /// Our From (UAC) / To (UAS) identity, without tag.
    pub local_uri: NameAddr,
    /// The peer's identity, without tag.
    pub remote_uri: NameAddr,
    /// Where in-dialog requests go (the peer's Contact).
    pub remote_target: Uri,
    /// Ordered routes for in-dialog requests (first = next hop).
    pub route_set: Vec<NameAddr>,
    /// Always false here: voxgate does not use SIPS.
    pub secure: bool,
}

fn without_tag(mut na: NameAddr) -> NameAddr {
    na.params.retain(|p| !p.name.eq_ignore_ascii_case("tag"));
    na
}

fn with_tag(na: &NameAddr, tag: &str) -> NameAddr {
    let mut na = na.clone();
    if !tag.is_empty() {
        na.params.push(Param::new("tag", Some(tag.to_string())));
    }
    na
}

impl Dialog {
    /// UAS side (RFC 3261 §12.1.1): from the INVITE we answer with `local_tag`.
    ///
    /// `local_seq` is the starting point of our own CSeq space. Without a Contact
    /// (a broken peer) the remote target falls back to the From URI.
    pub fn new_uas(invite: &Request, local_tag: &str, local_seq: u32) -> Result<Self, DialogError> {
        let h = &invite.headers;
        let from = h.from()?;
        let to = h.to()?;
        let remote_target = match h.contacts()?.into_iter().next() {
            Some(c) => c.uri,
            None => from.uri.clone(),
        };
        Ok(Dialog {
            id: DialogId {
                call_id: h.call_id()?.to_string(),
                local_tag: local_tag.to_string(),
                remote_tag: from.tag().unwrap_or_default().to_string(),
            },
            local_seq,
            remote_seq: Some(h.cseq()?.seq),
            local_uri: without_tag(to),
            remote_uri: without_tag(from),
            remote_target,
            route_set: h.record_routes()?,
            secure: false,
        })
    }

    /// UAC side (RFC 3261 §12.1.2): from our INVITE and the 1xx/2xx that created the dialog.
    pub fn new_uac(invite: &Request, resp: &Response) -> Result<Self, DialogError> {
        let to = resp.headers.to()?;
        let remote_tag = to.tag().ok_or(DialogError::MissingRemoteTag)?.to_string();
        let from = invite.headers.from()?;
        let remote_target = match resp.headers.contacts()?.into_iter().next() {
            Some(c) => c.uri,
            None => invite.uri.clone(),
        };
        let mut route_set = resp.headers.record_routes()?;
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id: invite.headers.call_id()?.to_string(),
                local_tag: from.tag().unwrap_or_default().to_string(),
                remote_tag,
            },
            local_seq: invite.headers.cseq()?.seq,
            remote_seq: None,
            local_uri: without_tag(from),
            remote_uri: without_tag(to),
            remote_target,
            route_set,
            secure: false,
        })
    }

    /// Checks and records the CSeq of an incoming in-dialog request other than
    /// ACK/CANCEL (RFC 3261 §12.2.2: lower numbers are rejected with 500).
    pub fn accept_remote_cseq(&mut self, seq: u32) -> Result<(), DialogError> {
        if let Some(last) = self.remote_seq {
            if seq < last {
                return Err(DialogError::CSeqOutOfOrder { got: seq, last });
            }
        }
        self.remote_seq = Some(seq);
        Ok(())
    }

    /// Target refresh from a re-INVITE or its 2xx (RFC 3261 §12.2).
    pub fn refresh_target(&mut self, msg_headers: &crate::message::Headers) {
        if let Ok(Some(c)) = msg_headers.contacts().map(|c| c.into_iter().next()) {
            self.remote_target = c.uri;
        }
    }

    /// Request-URI and Route values per RFC 3261 §12.2.1.1 (loose and strict routing).
    pub fn request_target(&self) -> (Uri, Vec<String>) {
        let Some(first) = self.route_set.first() else {
            return (self.remote_target.clone(), Vec::new());
        };
        let loose = first.uri.as_sip().is_some_and(|u| u.is_loose_route());
        if loose {
            let routes = self.route_set.iter().map(|r| r.to_string()).collect();
            (self.remote_target.clone(), routes)
        } else {
            let mut routes: Vec<String> = self
                .route_set
                .iter()
                .skip(1)
                .map(|r| r.to_string())
                .collect();
            routes.push(format!("<{}>", self.remote_target));
            (first.uri.clone(), routes)
        }
    }

    /// Builds an in-dialog request (BYE, re-INVITE, INFO, ...). Takes the next local
    /// CSeq except for ACK/CANCEL, which reuse the current one.
    pub fn create_request(&mut self, method: Method, via: &Via) -> Request {
        if method != Method::Ack && method != Method::Cancel {
            self.local_seq = self.local_seq.wrapping_add(1) & 0x7fff_ffff;
        }
        let seq = self.local_seq;
        self.build(method, seq, via)
    }

    /// ACK for a 2xx to our INVITE with CSeq `invite_seq` (RFC 3261 §13.2.2.4).
    pub fn create_ack(&self, invite_seq: u32, via: &Via) -> Request {
        self.build(Method::Ack, invite_seq, via)
    }

    fn build(&self, method: Method, seq: u32, via: &Via) -> Request {
        let (uri, routes) = self.request_target();
        let mut req = Request::new(method.clone(), uri);
        let h = &mut req.headers;
        h.push("Via", via.to_string());
        h.push("Max-Forwards", "70");
        h.push(
            "From",
            with_tag(&self.local_uri, &self.id.local_tag).to_string(),
        );
        h.push(
            "To",
            with_tag(&self.remote_uri, &self.id.remote_tag).to_string(),
        );
        h.push("Call-ID", self.id.call_id.clone());
        h.push("CSeq", CSeq { seq, method }.to_string());
        for r in routes {
            h.push("Route", r);
        }
        req
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::ViaTransport;
    use crate::message::SipMessage;
    use crate::uri::Host;

    fn request(text: &str) -> Request {
        match SipMessage::parse(text.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("bad fixture: {other:?}"),
        }
    }

    const INVITE: &str = "INVITE sip:hotline@voxgate SIP/2.0\r\n\
Via: SIP/2.0/UDP sbc.bank.example:5060;branch=z9hG4bK1\r\n\
Record-Route: <sip:rr1.bank.example;lr>, <sip:rr2.bank.example;lr>\r\n\
From: \"Caller\" <sip:+4912345@bank.example>;tag=from1\r\n\
To: <sip:hotline@voxgate>\r\n\
Call-ID: call-1\r\nCSeq: 10 INVITE\r\n\
Contact: <sip:+4912345@10.0.0.5:5070>\r\nContent-Length: 0\r\n\r\n";

    fn via() -> Via {
        Via::new(
            ViaTransport::Udp,
            Host::Domain("voxgate".into()),
            Some(5060),
            "z9hG4bKx",
        )
    }

    #[test]
    fn uas_dialog_builds_bye_with_loose_routes() {
        let invite = request(INVITE);
        let mut d = Dialog::new_uas(&invite, "mytag", 1).unwrap();
        assert_eq!(d.id.remote_tag, "from1");
        assert_eq!(d.remote_seq, Some(10));
        assert_eq!(d.route_set.len(), 2);
        let bye = d.create_request(Method::Bye, &via());
        assert_eq!(bye.uri.to_string(), "sip:+4912345@10.0.0.5:5070");
        let routes: Vec<&str> = bye.headers.get_all("Route").collect();
        assert_eq!(
            routes,
            vec!["<sip:rr1.bank.example;lr>", "<sip:rr2.bank.example;lr>"]
        );
        let cseq = bye.headers.cseq().unwrap();
        assert_eq!((cseq.seq, cseq.method), (2, Method::Bye));
        assert_eq!(bye.headers.from().unwrap().tag(), Some("mytag"));
        assert_eq!(bye.headers.to().unwrap().tag(), Some("from1"));
        assert_eq!(
            bye.headers.to().unwrap().display_name.as_deref(),
            Some("Caller")
        );
        assert!(bye.validate().is_ok());
        // The incoming request for this dialog maps to the same id.
        let info = request(
            "INFO sip:hotline@voxgate SIP/2.0\r\nVia: SIP/2.0/UDP s;branch=z9hG4bK2\r\n\
From: <sip:+4912345@bank.example>;tag=from1\r\nTo: <sip:hotline@voxgate>;tag=mytag\r\n\
Call-ID: call-1\r\nCSeq: 11 INFO\r\n\r\n",
        );
        assert_eq!(
            DialogId::for_incoming_request(&info).unwrap(),
            Some(d.id.clone())
        );
        assert!(DialogId::for_incoming_request(&invite).unwrap().is_none());
    }

    #[test]
    fn strict_route_puts_target_last() {
        let text = INVITE.replace(
            "Record-Route: <sip:rr1.bank.example;lr>, <sip:rr2.bank.example;lr>",
            "Record-Route: <sip:strict.bank.example>, <sip:rr2.bank.example;lr>",
        );
        let mut d = Dialog::new_uas(&request(&text), "t", 100).unwrap();
        let bye = d.create_request(Method::Bye, &via());
        assert_eq!(bye.uri.to_string(), "sip:strict.bank.example");
        let routes: Vec<&str> = bye.headers.get_all("Route").collect();
        assert_eq!(
            routes,
            vec!["<sip:rr2.bank.example;lr>", "<sip:+4912345@10.0.0.5:5070>"]
        );
        assert_eq!(bye.headers.cseq().unwrap().seq, 101);
    }

    #[test]
    fn remote_cseq_ordering() {
        let mut d = Dialog::new_uas(&request(INVITE), "t", 1).unwrap();
        assert!(d.accept_remote_cseq(11).is_ok());
        assert_eq!(
            d.accept_remote_cseq(9),
            Err(DialogError::CSeqOutOfOrder { got: 9, last: 11 })
        );
        assert_eq!(d.remote_seq, Some(11));
    }

    #[test]
    fn uac_dialog_from_2xx() {
        let invite = request(
            "INVITE sip:agent@pbx SIP/2.0\r\nVia: SIP/2.0/UDP voxgate;branch=z9hG4bKa\r\n\
From: <sip:voxgate@voxgate>;tag=ours\r\nTo: <sip:agent@pbx>\r\nCall-ID: out-1\r\nCSeq: 5 INVITE\r\n\r\n",
        );
        let ok = match SipMessage::parse(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP voxgate;branch=z9hG4bKa\r\n\
Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\nFrom: <sip:voxgate@voxgate>;tag=ours\r\n\
To: <sip:agent@pbx>;tag=theirs\r\nCall-ID: out-1\r\nCSeq: 5 INVITE\r\n\
Contact: <sip:agent@192.0.2.50>\r\n\r\n",
        ) {
            Ok(SipMessage::Response(r)) => r,
            other => panic!("{other:?}"),
        };
        let mut d = Dialog::new_uac(&invite, &ok).unwrap();
        assert_eq!(
            DialogId::for_incoming_response(&ok).unwrap(),
            Some(d.id.clone())
        );
        let ack = d.create_ack(5, &via());
        assert_eq!(ack.headers.cseq().unwrap().to_string(), "5 ACK");
        assert_eq!(ack.uri.to_string(), "sip:agent@192.0.2.50");
        let routes: Vec<&str> = ack.headers.get_all("Route").collect();
        assert_eq!(routes, vec!["<sip:p2;lr>", "<sip:p1;lr>"]);
        let bye = d.create_request(Method::Bye, &via());
        assert_eq!(bye.headers.cseq().unwrap().seq, 6);
        let mut no_tag = ok.clone();
        no_tag.headers.set("To", "<sip:agent@pbx>");
        assert_eq!(
            Dialog::new_uac(&invite, &no_tag),
            Err(DialogError::MissingRemoteTag)
        );
    }
}
