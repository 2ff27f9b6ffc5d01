//! A scripted XMPP server for one partner domain, on loopback and in the
//! clear (the partner's `tls = "not-supported"`), authenticated by Server
//! Dialback: what a hostile test needs to speak as a real, authenticated
//! domain without a Prosody behind it (a storm of thousands of stanzas
//! from one domain is sent here, not typed into a client).
//!
//! It listens where xfed's `[[partner]] connect` points: on each stream
//! xfed opens it answers with dialback features, says `valid` to every
//! `db:verify` (the keys of its own inbound streams) and to xfed's
//! `db:result`, and keeps every stanza xfed sends for the test to wait on.
//! [`Partner::connect`] opens a stream to xfed and authenticates it, over
//! which the test sends what the domain's users would.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use xfed_core::xml::{ns, Element, Event, Limits, Reader};

/// What xfed sent the partner, shared with the threads serving its streams.
#[derive(Default)]
struct Inbox {
    stanzas: Mutex<Vec<Element>>,
    arrived: Condvar,
}

/// One scripted partner domain.
pub struct Partner {
    /// The partner's domain.
    pub domain: String,
    /// xfed's domain.
    pub local: String,
    /// Where it listens (the partner's `connect`).
    pub addr: SocketAddr,
    inbox: Arc<Inbox>,
    stop: Arc<AtomicBool>,
    /// While set, the streams xfed opened are not read (a slow partner).
    paused: Arc<AtomicBool>,
}

fn header(from: &str, to: &str, id: Option<&str>) -> String {
    let id = id.map_or(String::new(), |i| format!(" id='{i}'"));
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
         xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
         from='{from}' to='{to}' version='1.0'{id}>"
    )
}

/// Reads what is there on `s` into `reader` (a read timeout counts as
/// nothing); `false` once the peer closed.
fn pump(s: &mut TcpStream, reader: &mut Reader) -> bool {
    let mut buf = [0u8; 16 * 1024];
    match s.read(&mut buf) {
        Ok(0) => false,
        Ok(n) => {
            reader.feed_all(&buf[..n]);
            true
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => true,
        Err(_) => false,
    }
}

impl Partner {
    /// Listens for xfed (serving `local`) as `domain`.
    pub fn start(domain: &str, local: &str) -> Partner {
        // Port 0: the kernel's choice cannot be taken between a probe and
        // the bind, as a port picked ahead could.
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind the partner's port");
        let addr = listener.local_addr().expect("the partner's address");
        listener.set_nonblocking(true).expect("nonblocking");
        let p = Partner {
            domain: domain.to_owned(),
            local: local.to_owned(),
            addr,
            inbox: Arc::default(),
            stop: Arc::default(),
            paused: Arc::default(),
        };
        let (inbox, stop, paused) = (p.inbox.clone(), p.stop.clone(), p.paused.clone());
        let (me, them) = (p.domain.clone(), p.local.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (inbox, stop, paused) = (inbox.clone(), stop.clone(), paused.clone());
                        let (me, them) = (me.clone(), them.clone());
                        thread::spawn(move || serve(s, &me, &them, &inbox, &stop, &paused));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        p
    }

    /// Opens a stream to xfed at `s2s` and authenticates it by dialback
    /// (xfed verifies the key with this partner's listener).
    pub fn connect(&self, s2s: SocketAddr) -> Stream {
        let tcp = TcpStream::connect(s2s).expect("connect to xfed's s2s port");
        tcp.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let mut s = Stream {
            tcp,
            reader: Reader::new(Limits::default()),
            closed: false,
        };
        s.send(&header(&self.domain, &self.local, None));
        let features = s.next(Duration::from_secs(10));
        assert!(
            features.as_ref().is_some_and(|f| f.name() == "features"),
            "no features from xfed: {features:?}"
        );
        s.send(&format!(
            "<db:result from='{}' to='{}'>a key of {}</db:result>",
            self.domain, self.local, self.domain
        ));
        let result = s.next(Duration::from_secs(10));
        assert!(
            result
                .as_ref()
                .is_some_and(|r| r.name() == "result" && r.attr("type") == Some("valid")),
            "{} not authenticated: {result:?}",
            self.domain
        );
        s
    }

    /// Stops reading the streams xfed opened (`true`), as a partner that
    /// reads slower than xfed sends, or reads them again.
    pub fn pause_reading(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    /// How many stanzas xfed has sent so far that `matches`.
    pub fn count(&self, matches: impl Fn(&Element) -> bool) -> usize {
        let got = self.inbox.stanzas.lock().expect("inbox");
        got.iter().filter(|e| matches(e)).count()
    }

    /// Waits until xfed has sent `n` stanzas that `matches` (or `timeout`
    /// passes); how many it sent.
    pub fn wait_for(
        &self,
        n: usize,
        timeout: Duration,
        matches: impl Fn(&Element) -> bool,
    ) -> usize {
        let deadline = Instant::now() + timeout;
        let mut got = self.inbox.stanzas.lock().expect("inbox");
        loop {
            let have = got.iter().filter(|e| matches(e)).count();
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return have;
            };
            if have >= n {
                return have;
            }
            got = self.inbox.arrived.wait_timeout(got, left).expect("inbox").0;
        }
    }
}

impl Drop for Partner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One stream xfed opened to the partner: dialback answered, stanzas kept.
fn serve(
    mut s: TcpStream,
    me: &str,
    them: &str,
    inbox: &Inbox,
    stop: &AtomicBool,
    paused: &AtomicBool,
) {
    s.set_read_timeout(Some(Duration::from_millis(50))).ok();
    let mut reader = Reader::new(Limits::default());
    let mut n = 0u32;
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if paused.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(10));
            continue;
        }
        if !pump(&mut s, &mut reader) {
            return;
        }
        while let Some(event) = reader.poll() {
            let reply = match event {
                Ok(Event::Header(_)) => {
                    n += 1;
                    let id = format!("{me}-stream-{n}");
                    format!(
                        "{}<stream:features><dialback xmlns='urn:xmpp:features:dialback'>\
                         <errors/></dialback></stream:features>",
                        header(me, them, Some(&id))
                    )
                }
                Ok(Event::Stanza(e)) if e.ns() == ns::DIALBACK && e.name() == "verify" => {
                    let id = e.attr("id").unwrap_or_default();
                    format!("<db:verify from='{me}' to='{them}' id='{id}' type='valid'/>")
                }
                Ok(Event::Stanza(e)) if e.ns() == ns::DIALBACK && e.name() == "result" => {
                    format!("<db:result from='{me}' to='{them}' type='valid'/>")
                }
                Ok(Event::Stanza(e)) => {
                    inbox.stanzas.lock().expect("inbox").push(e);
                    inbox.arrived.notify_all();
                    continue;
                }
                Ok(Event::End) | Err(_) => return,
            };
            if s.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// A stream the partner opened to xfed, authenticated.
pub struct Stream {
    tcp: TcpStream,
    reader: Reader,
    closed: bool,
}

impl Stream {
    /// Writes `text` (stanzas) on the stream; xfed may have closed it, which
    /// the test finds out by reading.
    pub fn send(&mut self, text: &str) {
        let _ = self.tcp.write_all(text.as_bytes());
    }

    /// The next element xfed sends on this stream (the stream header
    /// skipped), or `None` after `timeout` or once closed.
    pub fn next(&mut self, timeout: Duration) -> Option<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(event) = self.reader.poll() {
                match event {
                    Ok(Event::Stanza(e)) => return Some(e),
                    Ok(Event::Header(_)) => {}
                    Ok(Event::End) | Err(_) => {
                        self.closed = true;
                        return None;
                    }
                }
            }
            if self.closed || Instant::now() > deadline {
                return None;
            }
            if !pump(&mut self.tcp, &mut self.reader) {
                self.closed = true;
            }
        }
    }

    /// Reads until xfed closes the stream (or `timeout`): the elements it
    /// sent, and whether it closed.
    pub fn until_closed(&mut self, timeout: Duration) -> (Vec<Element>, bool) {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next(left) {
                Some(e) => got.push(e),
                None if self.closed => break,
                None => {}
            }
        }
        (got, self.closed)
    }
}
