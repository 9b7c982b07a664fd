//! RFC 4475 torture messages, transcribed as fixtures.
//!
//! Lines are written with `\n` and converted to CRLF; `{CL}` is replaced by the
//! real body length for messages whose Content-Length is not under test.

pub const SDP150: &str =
    "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.4\r\n\
t=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n";

/// Builds a message from a `\n`-separated head and a raw body.
pub fn msg(head: &str, body: &[u8]) -> Vec<u8> {
    let head = head.replace("{CL}", &body.len().to_string());
    let mut out = head.replace('\n', "\r\n").into_bytes();
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// 3.1.1.1 A short tortuous INVITE.
pub fn wsinv() -> Vec<u8> {
    msg(
        "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0
TO :
 sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n
from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
Content-Length   : 150
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Content-Type: application/sdp
Route:
 <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
v:  SIP  / 2.0  / TCP     spindle.example.com   ;
  branch  =   z9hG4bK9ikj8  ,
 SIP  /    2.0   / UDP  192.168.255.111   ; branch=
 z9hG4bK30239
m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33
",
        SDP150.as_bytes(),
    )
}

/// 3.1.1.2 Wide range of valid characters.
pub fn intmeth() -> Vec<u8> {
    msg(
        "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0
Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~
To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7F\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>
From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\u{440}\u{430}\u{431}\u{43e}\u{442}\u{430}\u{44e}\u{449}\u{438}\u{439}\";tag=_token~1'+`*%!-.
Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{
CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~
Max-Forwards: 255
extensionHeader-!.%*+_`'~:\u{feff}\u{5927}\u{505c}\u{96fb}
Content-Length: 0
",
        b"",
    )
}

/// 3.1.1.3 Valid use of the % escaping mechanism.
pub fn esc01() -> Vec<u8> {
    msg(
        "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0
To: sip:%75se%72@example.com
From: <sip:I%20have%20spaces@example.net>;tag=938
Max-Forwards: 87
i: esc01.239409asdfakjkn23onasd0-3234
CSeq: 234234 INVITE
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw
C: application/sdp
Contact:
  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>
Content-Length: {CL}
",
        SDP150.as_bytes(),
    )
}

/// 3.1.1.4 Escaped nulls in URIs.
pub fn escnull() -> Vec<u8> {
    msg(
        "REGISTER sip:example.com SIP/2.0
To: sip:null-%00-null@example.com
From: sip:null-%00-null@example.com;tag=839923423
Max-Forwards: 70
Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd
CSeq: 14398234 REGISTER
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
Contact: <sip:%00@host5.example.com>
Contact: <sip:%00%00@host5.example.com>
L:0
",
        b"",
    )
}

/// 3.1.1.5 Use of % when it is not an escape.
pub fn esc02() -> Vec<u8> {
    msg(
        "RE%47IST%45R sip:registrar.example.com SIP/2.0
To: \"%Z%45\" <sip:resource@example.com>
From: \"%Z%45\" <sip:resource@example.com>;tag=f232jadfj23
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf
Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234
CSeq: 29344 RE%47IST%45R
Max-Forwards: 70
Contact: <sip:alias1@host1.example.com>
C%6Fntact: <sip:alias2@host2.example.com>
Contact: <sip:alias3@host3.example.com>
l: 0
",
        b"",
    )
}

/// 3.1.1.6 Message with no LWS between display name and <.
pub fn lwsdisp() -> Vec<u8> {
    msg(
        "OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: caller<sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID: lwsdisp.1234abcd@funky.example.com
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw
l: 0
",
        b"",
    )
}

/// 3.1.1.7 Long values in header fields (regenerated with the same shape).
pub fn longreq() -> Vec<u8> {
    let extreme = "extreme".repeat(10);
    let caller = "amazinglylongcallername".repeat(5);
    let tag = "1298298298".repeat(40);
    let name = "name".repeat(20);
    let value = "value".repeat(15);
    let long = "Long".repeat(20);
    let mut vias = String::new();
    for i in (1..=33).rev() {
        let prefix = ["Via", "v", "V"][i % 3];
        vias.push_str(&format!(
            "{prefix}: SIP/2.0/TCP sip{i}.example.com;branch=z9hG4bK{i}\n"
        ));
    }
    let head = format!(
        "INVITE sip:user@example.com SIP/2.0
To: \"I have a user name of {extreme} proportion\"<sip:user@example.com:6000;unknownparam1=very{value};unknownparam2=very{value};unknownparam3=very{value}>
F: sip:{caller}@example.net;tag={tag};unknownheaderparam{name}=unknowheaderparam{value};unknownValuelessparam{name}
Call-ID: longreq.one{}longcallid
CSeq: 3882340 INVITE
Unknown-{long}-Name: unknown-{}-value; unknown-{}-parameter-name = unknown-{}-parameter-value
{vias}Max-Forwards: 70
Contact: <sip:{caller}@host5.example.net>
Content-Type: application/sdp
l: {{CL}}
",
        "really".repeat(20),
        "long".repeat(20),
        "long".repeat(20),
        "long".repeat(20),
    );
    msg(&head, SDP150.as_bytes())
}

/// 3.1.1.8 Extra trailing octets in a UDP datagram.
pub fn dblreq() -> Vec<u8> {
    let second = msg(
        "INVITE sip:joe@example.com SIP/2.0
t: sip:joe@example.com
From: sip:caller@example.net;tag=141334
Max-Forwards: 8
Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234
Content-Type: application/sdp
Content-Length: {CL}
",
        SDP150.as_bytes(),
    );
    msg(
        "REGISTER sip:example.com SIP/2.0
To: sip:j.user@example.com
From: sip:j.user@example.com;tag=43251j3j324
Max-Forwards: 8
I: dblreq.0ha0isndaksdj99sdfafnl3lk233412
Contact: sip:j.user@host.example.com
l: 0
Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492
CSeq: 8 REGISTER
",
        &second,
    )
}

/// 3.1.1.9 Semicolon-separated parameters in URI user part.
pub fn semiuri() -> Vec<u8> {
    msg(
        "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Call-ID: semiuri.0ha0isndaksdj
CSeq: 8 OPTIONS
Accept: application/sdp, application/pkcs7-mime,
        multipart/mixed, multipart/signed,
        message/sip, message/sipfrag
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw
l: 0
",
        b"",
    )
}

/// 3.1.1.10 Varied and unknown transport types.
pub fn transports() -> Vec<u8> {
    msg(
        "OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: <sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID:  transports.kijh4akdnaqjkwendsasfdj
Accept: application/sdp
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee
l: 0
",
        b"",
    )
}

/// 3.1.1.11 Multipart MIME message with a binary part.
pub fn mpart01() -> Vec<u8> {
    let mut body = b"--7a9cbec02ceef655\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\n\r\nHello\r\n--7a9cbec02ceef655\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n".to_vec();
    body.extend((0u8..=255).rev());
    body.extend_from_slice(b"\r\n--7a9cbec02ceef655--\r\n");
    msg(
        "MESSAGE sip:kumiko@example.org SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport
Max-Forwards: 70
Route: <sip:127.0.0.1:5080>
Identity: r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hHuLIK0YWVKZhKv9Mj8UeXqkMVbnVq37CD+813gvYjcBUaZngQmXc9WNZSDNGCzA+fWl9MEUHWIZo1CeJebdY/XlgKeTa0Olvq0rt70Q5jiSfbqMJmQFteeivUhkMWYUA=
Contact: <sip:fluffy@127.0.0.1:5070>
To: <sip:kumiko@example.org>
From: <sip:fluffy@example.com>;tag=2fb0dcc9
Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..
CSeq: 1 MESSAGE
Content-Transfer-Encoding: binary
Content-Type: multipart/mixed;boundary=7a9cbec02ceef655
Date: Sat, 15 Oct 2005 04:44:56 GMT
User-Agent: SIPimp.org/0.2.5 (curses)
Content-Length: {CL}
",
        &body,
    )
}

/// 3.1.1.12 Unusual reason phrase.
pub fn unreason() -> Vec<u8> {
    msg(
        "SIP/2.0 200 = 2**3 * 5**2 \u{43d}\u{43e} \u{441}\u{442}\u{43e} \u{434}\u{435}\u{432}\u{44f}\u{43d}\u{43e}\u{441}\u{442}\u{43e} \u{434}\u{435}\u{432}\u{44f}\u{442}\u{44c} - \u{43f}\u{440}\u{43e}\u{441}\u{442}\u{43e}\u{435}
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923
Call-ID: unreason.1234ksdfak3j2erwedfsASdf
CSeq: 35 INVITE
From: sip:user@example.com;tag=11141343
To: sip:user@example.edu;tag=2229
Content-Length: {CL}
Content-Type: application/sdp
Contact: <sip:user@host198.example.com>
",
        SDP150.as_bytes(),
    )
}

/// 3.1.1.13 Empty reason phrase.
pub fn noreason() -> Vec<u8> {
    msg(
        "SIP/2.0 100 \nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: noreason.asndj203insdf99223ndf
CSeq: 35 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>
",
        b"",
    )
}

/// 3.1.2.1 Extraneous header field separators.
pub fn badinv01() -> Vec<u8> {
    msg(
        "INVITE sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=134161461246
Max-Forwards: 7
Call-ID: badinv01.0ha0isndaksdjasdf3234nas
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;;,;,,
Contact: \"Joe\" <sip:joe@example.org>;;;;
Content-Length: {CL}
Content-Type: application/sdp
",
        SDP150.as_bytes(),
    )
}

/// 3.1.2.2 Content-Length larger than message.
pub fn clerr() -> Vec<u8> {
    msg(
        "INVITE sip:user@example.com SIP/2.0
Max-Forwards: 80
To: sip:j.user@example.com
From: sip:caller@example.net;tag=93942939o2
Contact: <sip:caller@hungry.example.net>
Call-ID: clerr.0ha0isndaksdjweiafasdk3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523
Content-Type: application/sdp
Content-Length: 9999
",
        SDP150.as_bytes(),
    )
}

/// 3.1.2.3 Negative Content-Length.
pub fn ncl() -> Vec<u8> {
    msg(
        "INVITE sip:user@example.com SIP/2.0
Max-Forwards: 254
To: sip:j.user@example.com
From: sip:caller@example.net;tag=32394234
Call-ID: ncl.0ha0isndaksdj2193423r542w35
CSeq: 0 INVITE
Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw
Contact: <sip:caller@example53.example.net>
Content-Type: application/sdp
Content-Length: -999
",
        SDP150.as_bytes(),
    )
}

/// 3.1.2.4 Request scalar fields with overlarge values.
pub fn scalar02() -> Vec<u8> {
    msg(
        "REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3
To: <sip:user@example.com>
From: <sip:user@example.com>;tag=239232jh3
CSeq: 36893488147419103232 REGISTER
Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32
Max-Forwards: 300
Expires: 1000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
Contact: <sip:user@host129.example.com>
  ;expires=280297596632815
Content-Length: 0
",
        b"",
    )
}

/// 3.1.2.5 Response scalar fields with overlarge values.
pub fn scalarlg() -> Vec<u8> {
    msg(
        "SIP/2.0 503 Service Unavailable
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129
To: <sip:user@example.com>
From: <sip:other@example.net>;tag=2easdjfejw
CSeq: 9292394834772304023312 OPTIONS
Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r
Retry-After: 949302838503028349304023988
Warning: 1812 overture \"In Progress\"
Content-Length: 0
",
        b"",
    )
}

/// 3.1.2.6 Unterminated quoted string in display name.
pub fn quotbal() -> Vec<u8> {
    msg(
        "INVITE sip:user@example.com SIP/2.0
To: \"Mr. J. User <sip:j.user@example.com>
From: sip:caller@example.net;tag=93334
Max-Forwards: 10
Call-ID: quotbal.aksdj
Contact: <sip:caller@host59.example.net>
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234
Content-Type: application/sdp
Content-Length: {CL}
",
        SDP150.as_bytes(),
    )
}

fn invite_with_request_line(line: &str, call_id: &str) -> Vec<u8> {
    msg(
        &format!(
            "{line}
To: sip:user@example.com
From: sip:caller@example.net;tag=39291
Max-Forwards: 23
Call-ID: {call_id}
CSeq: 1 INVITE
Via: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK{call_id}
Contact: <sip:caller@host5.example.net>
Content-Type: application/sdp
Content-Length: {{CL}}
"
        ),
        SDP150.as_bytes(),
    )
}

/// 3.1.2.7 <> enclosing Request-URI.
pub fn ltgtruri() -> Vec<u8> {
    invite_with_request_line("INVITE <sip:user@example.com> SIP/2.0", "ltgtruri")
}

/// 3.1.2.8 Malformed SIP Request-URI (embedded LWS).
pub fn lwsruri() -> Vec<u8> {
    invite_with_request_line("INVITE sip:user@example.com; lr SIP/2.0", "lwsruri")
}

/// 3.1.2.9 Multiple SP separating Request-Line elements.
pub fn lwsstart() -> Vec<u8> {
    invite_with_request_line("INVITE  sip:user@example.com  SIP/2.0", "lwsstart")
}

/// 3.1.2.10 SP characters at end of Request-Line.
pub fn trws() -> Vec<u8> {
    invite_with_request_line("INVITE sip:user@example.com SIP/2.0  ", "trws")
}

/// 3.1.2.11 Escaped headers in SIP Request-URI.
pub fn escruri() -> Vec<u8> {
    invite_with_request_line(
        "INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0",
        "escruri",
    )
}

/// 3.1.2.16 Unknown protocol version.
pub fn badvers() -> Vec<u8> {
    msg(
        "OPTIONS sip:t.watson@example.org SIP/7.0
Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw
Max-Forwards:     70
From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe
To:      T. Watson <sip:t.watson@example.org>
Call-ID: badvers.31417@c.example.com
CSeq:    1 OPTIONS
l: 0
",
        b"",
    )
}

/// 3.1.2.17 Start line and CSeq method mismatch.
pub fn mismatch01() -> Vec<u8> {
    msg(
        "OPTIONS sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=34525
Max-Forwards: 6
Call-ID: mismatch01.dj0234sxdfl3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw
l: 0
",
        b"",
    )
}

/// 3.1.2.18 Unknown method with CSeq method mismatch.
pub fn mismatch02() -> Vec<u8> {
    msg(
        "NEWMETHOD sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=34525
Max-Forwards: 6
Call-ID: mismatch02.dj0234sxdfl3
CSeq: 8 INVITE
Contact: <sip:caller@host.example.net>
Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw
Content-Type: application/sdp
l: {CL}
",
        SDP150.as_bytes(),
    )
}

/// 3.1.2.19 Overlarge response code.
pub fn bigcode() -> Vec<u8> {
    msg(
        "SIP/2.0 4294967301 better not break the receiver
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i
CSeq: 353494 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>
",
        b"",
    )
}

/// 3.3.1 Missing transaction identifier (bare magic cookie).
pub fn badbranch() -> Vec<u8> {
    msg(
        "OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK
Accept: application/sdp
Call-ID: badbranch.sadonfo23i420jv0as0derf3j3n
CSeq: 8 OPTIONS
l: 0
",
        b"",
    )
}

/// 3.4.1 Missing required header fields.
pub fn insuf() -> Vec<u8> {
    msg(
        "INVITE sip:user@example.com SIP/2.0
CSeq: 193942 INVITE
Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf
Content-Type: application/sdp
l: {CL}
",
        SDP150.as_bytes(),
    )
}

/// 3.4.2 Request-URI with unknown scheme.
pub fn unkscm() -> Vec<u8> {
    msg(
        "OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=384
Max-Forwards: 3
Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34
CSeq: 3923423 OPTIONS
Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234
Content-Length: 0
",
        b"",
    )
}

/// 3.4.8 Multiple values in single-value required fields.
pub fn multi01() -> Vec<u8> {
    msg(
        "INVITE sip:user@company.com SIP/2.0
Contact: <sip:caller@host25.example.net>
Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw
Max-Forwards: 70
CSeq: 5 INVITE
Call-ID: multi01.98asdh@192.0.2.1
CSeq: 59 INVITE
Call-ID: multi01.98asdh@192.0.2.2
From: sip:caller@example.com;tag=3413415
To: sip:user@example.com
To: sip:other@example.net
From: sip:caller@example.net;tag=2923420123
Content-Type: application/sdp
l: {CL}
Contact: <sip:caller@host36.example.net>
Max-Forwards: 5
",
        SDP150.as_bytes(),
    )
}

/// 3.4.9 Multiple Content-Length values.
pub fn mcl01() -> Vec<u8> {
    msg(
        "OPTIONS sip:user@example.com SIP/2.0
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK293423
To: sip:user@example.com
From: sip:other@example.net;tag=3923942
Call-ID: mcl01.fhn2323orihawfdoa3o4r52o3irsdf
CSeq: 15932 OPTIONS
Content-Length: 13
Max-Forwards: 60
Content-Length: 5
Content-Type: text/plain

There's no way to know how many octets are supposed to be here.
",
        b"",
    )
}

/// 3.4.10 200 OK response with broadcast Via header field value.
pub fn bcast() -> Vec<u8> {
    msg(
        "SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923
Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23
Call-ID: bcast.0384840201234ksdfak3j2erwedfsASdf
CSeq: 35 INVITE
From: sip:user@example.com;tag=11141343
To: sip:user@example.edu;tag=2229
Content-Length: {CL}
Content-Type: application/sdp
Contact: <sip:user@host28.example.com>
",
        SDP150.as_bytes(),
    )
}

/// 3.4.11 Max-Forwards of zero.
pub fn zeromf() -> Vec<u8> {
    msg(
        "OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=3ghsd41
Call-ID: zeromf.jfasdlfnm2o2l43r5u0asdfas
CSeq: 39234321 OPTIONS
Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw2349i
Max-Forwards: 0
Content-Length: 0
",
        b"",
    )
}

/// 3.4.14 RFC 2543-style INVITE (no branch cookie).
pub fn inv2543() -> Vec<u8> {
    msg(
        "INVITE sip:UserB@example.com SIP/2.0
Via: SIP/2.0/UDP iftgw.example.com
From: <sip:+13035551111@ift.client.example.net;user=phone>
Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>
To: sip:+16505552222@ss1.example.net;user=phone
Call-ID: inv2543.1717@ift.client.example.com
CSeq: 56 INVITE
Content-Type: application/sdp

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
m=audio 49217 RTP/AVP 0
",
        b"",
    )
}

/// Every fixture, for the no-panic sweeps.
pub fn all() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("wsinv", wsinv()),
        ("intmeth", intmeth()),
        ("esc01", esc01()),
        ("escnull", escnull()),
        ("esc02", esc02()),
        ("lwsdisp", lwsdisp()),
        ("longreq", longreq()),
        ("dblreq", dblreq()),
        ("semiuri", semiuri()),
        ("transports", transports()),
        ("mpart01", mpart01()),
        ("unreason", unreason()),
        ("noreason", noreason()),
        ("badinv01", badinv01()),
        ("clerr", clerr()),
        ("ncl", ncl()),
        ("scalar02", scalar02()),
        ("scalarlg", scalarlg()),
        ("quotbal", quotbal()),
        ("ltgtruri", ltgtruri()),
        ("lwsruri", lwsruri()),
        ("lwsstart", lwsstart()),
        ("trws", trws()),
        ("escruri", escruri()),
        ("badvers", badvers()),
        ("mismatch01", mismatch01()),
        ("mismatch02", mismatch02()),
        ("bigcode", bigcode()),
        ("badbranch", badbranch()),
        ("insuf", insuf()),
        ("unkscm", unkscm()),
        ("multi01", multi01()),
        ("mcl01", mcl01()),
        ("bcast", bcast()),
        ("zeromf", zeromf()),
        ("inv2543", inv2543()),
    ]
}
