//! A minimal SIP user agent for loopback tests: registers with digest,
//! sends MESSAGEs (answering 401/407 challenges) and answers the MESSAGEs it
//! receives, over UDP or TCP, with blocking sockets and timeouts. Requests
//! are written as text (as a phone would); what comes back is read with
//! xfed's own parser, which is tested on its own.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use xfed_core::registrar::digest::Challenge;
use xfed_core::sip::{parse_datagram, Frame, Limits, Message, Request, Response, StreamFramer};

enum Link {
    Udp(UdpSocket),
    Tcp(TcpStream, Box<StreamFramer>),
}

/// One SIP user (`user@domain`) talking to one xfed SIP listener.
pub struct SipUa {
    user: String,
    domain: String,
    password: String,
    server: SocketAddr,
    local: SocketAddr,
    link: Link,
    seq: u32,
    /// Requests that arrived while we waited for a response.
    pending: Vec<Request>,
}

impl SipUa {
    /// A user agent on a fresh loopback socket, UDP or TCP (connected now).
    pub fn new(user: &str, domain: &str, password: &str, server: SocketAddr, tcp: bool) -> SipUa {
        let link = if tcp {
            let s = TcpStream::connect(server).expect("connect to xfed's SIP TCP listener");
            s.set_nodelay(true).ok();
            Link::Tcp(s, Box::new(StreamFramer::new(Limits::default())))
        } else {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
            Link::Udp(s)
        };
        let local = match &link {
            Link::Udp(s) => s.local_addr(),
            Link::Tcp(s, _) => s.local_addr(),
        }
        .expect("local address");
        SipUa {
            user: user.into(),
            domain: domain.into(),
            password: password.into(),
            server,
            local,
            link,
            seq: 0,
            pending: Vec::new(),
        }
    }

    fn transport(&self) -> &'static str {
        match self.link {
            Link::Udp(_) => "UDP",
            Link::Tcp(..) => "TCP",
        }
    }

    /// This agent's Contact URI.
    pub fn contact(&self) -> String {
        let t = match self.link {
            Link::Udp(_) => "",
            Link::Tcp(..) => ";transport=tcp",
        };
        format!("sip:{}@{}{t}", self.user, self.local)
    }

    fn send(&mut self, bytes: &[u8]) {
        match &mut self.link {
            Link::Udp(s) => {
                s.send_to(bytes, self.server).expect("send datagram");
            }
            Link::Tcp(s, _) => s.write_all(bytes).expect("write to TCP"),
        }
    }

    /// The next message from xfed, or None after `timeout`.
    fn recv(&mut self, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            if let Link::Tcp(_, framer) = &mut self.link {
                while let Some(frame) = framer.poll() {
                    match frame.expect("xfed sent a malformed SIP stream") {
                        Frame::Message(m) => return Some(m),
                        Frame::Ping | Frame::Pong => {}
                    }
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let left = left.max(Duration::from_millis(1));
            match &mut self.link {
                Link::Udp(s) => {
                    s.set_read_timeout(Some(left)).ok();
                    match s.recv_from(&mut buf) {
                        Ok((n, _)) => {
                            let m = parse_datagram(&buf[..n], &Limits::default())
                                .expect("xfed sent a malformed datagram");
                            return Some(m);
                        }
                        Err(_) => continue,
                    }
                }
                Link::Tcp(s, framer) => {
                    s.set_read_timeout(Some(left)).ok();
                    match s.read(&mut buf) {
                        Ok(0) => panic!("xfed closed the SIP connection"),
                        Ok(n) => framer.feed(&buf[..n]),
                        Err(_) => continue,
                    }
                }
            }
        }
    }

    /// The final response to the request with `cseq`, keeping requests
    /// that arrive meanwhile; None on timeout.
    fn final_response(&mut self, cseq: u32, timeout: Duration) -> Option<Response> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.recv(left)? {
                Message::Response(r) => {
                    let ours = r.headers.cseq().map(|c| c.seq == cseq).unwrap_or(false);
                    if ours && r.status >= 200 {
                        return Some(r);
                    }
                }
                Message::Request(q) => self.pending.push(q),
            }
        }
    }

    fn request(
        &mut self,
        method: &str,
        uri: &str,
        to: &str,
        extra: &[String],
        body: &str,
    ) -> (u32, String) {
        self.seq += 1;
        let seq = self.seq;
        let mut text = format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/{} {};branch=z9hG4bK-ua-{seq}-{}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{}@{}>;tag=ua{seq}\r\n\
             To: <{to}>\r\n\
             Call-ID: {method}-{}-{}@{}\r\n\
             CSeq: {seq} {method}\r\n",
            self.transport(),
            self.local,
            std::process::id(),
            self.user,
            self.domain,
            self.user,
            seq,
            self.local.port(),
        );
        for h in extra {
            text.push_str(h);
            text.push_str("\r\n");
        }
        let typed = extra
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("content-type:"));
        if !body.is_empty() && !typed {
            text.push_str("Content-Type: text/plain;charset=UTF-8\r\n");
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        (seq, text)
    }

    /// Sends a request and returns its final response, answering one
    /// digest challenge (401 or 407) with our credentials.
    fn transact(
        &mut self,
        method: &str,
        uri: &str,
        to: &str,
        extra: &[String],
        body: &str,
    ) -> Response {
        let (seq, text) = self.request(method, uri, to, extra, body);
        let first = self
            .ask(seq, &text, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("no final response to {method} {uri}"));
        let (header, answer_name) = match first.status {
            401 => ("WWW-Authenticate", "Authorization"),
            407 => ("Proxy-Authenticate", "Proxy-Authorization"),
            _ => return first,
        };
        let mut challenged = first;
        // A stale challenge (the nonce aged or was taken for a replay) is
        // answered again with the new nonce, as RFC 7616 section 3.4.1
        // says; once.
        for _ in 0..2 {
            let challenge = challenged
                .headers
                .get_all(header)
                .find_map(|v| Challenge::parse(v).ok())
                .unwrap_or_else(|| panic!("{} without a usable {header}", challenged.status));
            let auth = challenge.answer(&self.user, &self.password, method, uri, "0a4f113b", 1);
            let mut extra = extra.to_vec();
            extra.push(format!("{answer_name}: {}", auth.header_value()));
            let (seq, text) = self.request(method, uri, to, &extra, body);
            let answer = self
                .ask(seq, &text, Duration::from_secs(20))
                .unwrap_or_else(|| panic!("no final response to authenticated {method} {uri}"));
            let stale = answer.status == challenged.status
                && answer
                    .headers
                    .get_all(header)
                    .any(|v| Challenge::parse(v).is_ok_and(|c| c.stale));
            if !stale {
                return answer;
            }
            challenged = answer;
        }
        challenged
    }

    /// Sends request `text` (CSeq `seq`) and waits for its final response;
    /// over UDP it is sent again as RFC 3261's Timer E says (500 ms,
    /// doubling to 4 s), since a datagram may be lost (a busy server's
    /// socket buffer drops it).
    fn ask(&mut self, seq: u32, text: &str, timeout: Duration) -> Option<Response> {
        let deadline = Instant::now() + timeout;
        let mut interval = Duration::from_millis(500);
        loop {
            self.send(text.as_bytes());
            let left = deadline.checked_duration_since(Instant::now())?;
            let wait = match self.link {
                Link::Udp(_) => interval.min(left),
                Link::Tcp(..) => left,
            };
            if let Some(r) = self.final_response(seq, wait) {
                return Some(r);
            }
            interval = (interval * 2).min(Duration::from_secs(4));
        }
    }

    /// REGISTERs this agent's contact for `expires` seconds; the final status.
    pub fn register(&mut self, expires: u32) -> u16 {
        let aor = format!("sip:{}@{}", self.user, self.domain);
        let uri = format!("sip:{}", self.domain);
        let extra = [
            format!("Contact: <{}>", self.contact()),
            format!("Expires: {expires}"),
        ];
        self.transact("REGISTER", &uri, &aor, &extra, "").status
    }

    /// Sends a text MESSAGE to `to` (an address `user@domain`); the final
    /// response.
    pub fn message(&mut self, to: &str, body: &str) -> Response {
        let uri = format!("sip:{to}");
        self.transact("MESSAGE", &uri, &uri, &[], body)
    }

    /// PUBLISHes presence (`Event: presence`) for this user for `expires`
    /// seconds: `pidf` (a PIDF document; empty: a refresh), `etag` as
    /// `SIP-If-Match` to refresh or modify an earlier publication. The
    /// final response; its `SIP-ETag` names the publication.
    pub fn publish(&mut self, pidf: &str, etag: Option<&str>, expires: u32) -> Response {
        let uri = format!("sip:{}@{}", self.user, self.domain);
        let mut extra = vec!["Event: presence".to_owned(), format!("Expires: {expires}")];
        if let Some(tag) = etag {
            extra.push(format!("SIP-If-Match: {tag}"));
        }
        if !pidf.is_empty() {
            extra.push("Content-Type: application/pidf+xml".to_owned());
        }
        self.transact("PUBLISH", &uri, &uri, &extra, pidf)
    }

    /// SUBSCRIBEs to the presence of `target` (`user@domain`) for
    /// `expires` seconds, accepting PIDF, with this agent's Contact; the
    /// final response. NOTIFYs come through [`notify`](Self::notify).
    pub fn subscribe(&mut self, target: &str, expires: u32) -> Response {
        let uri = format!("sip:{target}");
        let extra = [
            "Event: presence".to_owned(),
            "Accept: application/pidf+xml".to_owned(),
            format!("Expires: {expires}"),
            format!("Contact: <{}>", self.contact()),
        ];
        self.transact("SUBSCRIBE", &uri, &uri, &extra, "")
    }

    /// The next NOTIFY xfed sends us (answered 200), skipping (and
    /// answering 200) any other request; None on timeout. A retransmitted
    /// NOTIFY is answered again and returned again: callers compare CSeqs.
    pub fn notify(&mut self, timeout: Duration) -> Option<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let req = self.receive(200, left)?;
            if req.method.as_str() == "NOTIFY" {
                return Some(req);
            }
        }
    }

    /// Waits for the next request xfed sends us and answers it with
    /// `status`; None on timeout.
    pub fn receive(&mut self, status: u16, timeout: Duration) -> Option<Request> {
        let req = if self.pending.is_empty() {
            let deadline = Instant::now() + timeout;
            loop {
                let left = deadline.checked_duration_since(Instant::now())?;
                if let Message::Request(q) = self.recv(left)? {
                    break q;
                }
            }
        } else {
            self.pending.remove(0)
        };
        let answer = req.response(status, "uas1").to_bytes();
        self.send(&answer);
        Some(req)
    }
}
