//! An XMPP client for interop tests: `tests/peers/xmpp_client.py`
//! (slixmpp) as a child process, driven with JSON lines on its stdin and
//! read through the JSON lines it prints.
//!
//! The script logs in over plain TCP to an IP literal (it never resolves
//! anything), so the server must allow unencrypted PLAIN (Prosody:
//! `c2s_require_encryption = false`, `allow_unencrypted_plain_auth = true`,
//! which the Prosody harness sets). It always ends by itself: after its
//! lifetime, when its stdin closes (this process is gone), or on `quit`;
//! [`XmppClient`] also kills it when dropped.
//!
//! Python: `XFED_PYTHON`, else `/usr/bin/python3` (Debian's, which has
//! `python3-slixmpp`; a `python3` first on `PATH` may be another one),
//! else `python3`. Without slixmpp, [`XmppClient::connect`] gives a
//! [`Skip`].

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::prosody::Skip;

/// The script, from the source tree.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/xmpp_client.py");

/// The Python that runs the script.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("XFED_PYTHON") {
        return PathBuf::from(p);
    }
    let debian = PathBuf::from("/usr/bin/python3");
    if debian.is_file() {
        debian
    } else {
        PathBuf::from("python3")
    }
}

/// Whether [`python`] can import slixmpp: its version, or why not.
pub fn check_installed() -> Result<String, Skip> {
    let py = python();
    let out = Command::new(&py)
        .args(["-c", "import slixmpp; print(slixmpp.__version__)"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Skip(format!("cannot run {}: {e}", py.display())))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(Skip(format!(
            "slixmpp is not installed for {} (apt-get install python3-slixmpp): {}",
            py.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Member `key` of a JSON object as a string (absent, null or not a
/// string: `None`).
fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

// ---------------------------------------------------------------------------
// Events

/// A stanza error, as the client received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaError {
    /// `type` attribute: cancel, wait, modify, auth, continue.
    pub error_type: Option<String>,
    /// The defined condition's element name, e.g. `item-not-found`.
    pub condition: Option<String>,
    pub text: Option<String>,
}

impl StanzaError {
    /// The `error` object of a reported stanza, if it has one.
    fn of(stanza: &Value) -> Option<StanzaError> {
        stanza
            .get("error")
            .filter(|e| e.is_object())
            .map(|e| StanzaError {
                error_type: str_of(e, "type"),
                condition: str_of(e, "condition"),
                text: str_of(e, "text"),
            })
    }
}

/// A `<message/>` the client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub from: Option<String>,
    pub to: Option<String>,
    pub message_type: Option<String>,
    pub id: Option<String>,
    pub body: Option<String>,
    pub thread: Option<String>,
    pub subject: Option<String>,
    pub error: Option<StanzaError>,
    pub chatstate: Option<String>,
    /// When this process read it.
    pub at: Instant,
}

impl Received {
    fn of(m: &Value, at: Instant) -> Received {
        let error = StanzaError::of(m);
        Received {
            from: str_of(m, "from"),
            to: str_of(m, "to"),
            message_type: str_of(m, "type"),
            id: str_of(m, "id"),
            body: str_of(m, "body"),
            thread: str_of(m, "thread"),
            subject: str_of(m, "subject"),
            error,
            chatstate: str_of(m, "chatstate"),
            at,
        }
    }

    /// Whether it is `type='error'`.
    pub fn is_error(&self) -> bool {
        self.message_type.as_deref() == Some("error")
    }

    /// The bare JID of the sender.
    pub fn from_bare(&self) -> &str {
        let f = self.from.as_deref().unwrap_or("");
        f.split('/').next().unwrap_or(f)
    }
}

/// A `<presence/>` the client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceReceived {
    pub from: Option<String>,
    pub to: Option<String>,
    /// `None`: available.
    pub presence_type: Option<String>,
    pub id: Option<String>,
    pub show: Option<String>,
    pub status: Option<String>,
    pub priority: Option<String>,
    pub error: Option<StanzaError>,
    /// When this process read it.
    pub at: Instant,
}

impl PresenceReceived {
    fn of(p: &Value, at: Instant) -> PresenceReceived {
        let error = StanzaError::of(p);
        PresenceReceived {
            from: str_of(p, "from"),
            to: str_of(p, "to"),
            presence_type: str_of(p, "type"),
            id: str_of(p, "id"),
            show: str_of(p, "show"),
            status: str_of(p, "status"),
            priority: str_of(p, "priority"),
            error,
            at,
        }
    }

    /// The type, `available` when the stanza has none.
    pub fn kind(&self) -> &str {
        self.presence_type.as_deref().unwrap_or("available")
    }

    /// The bare JID of the sender.
    pub fn from_bare(&self) -> &str {
        let f = self.from.as_deref().unwrap_or("");
        f.split('/').next().unwrap_or(f)
    }
}

/// A presence to send: availability when `to` is `None` and `presence_type`
/// is `None` (broadcast by the server), else directed.
#[derive(Debug, Clone, Default)]
pub struct OutgoingPresence {
    pub to: Option<String>,
    /// `subscribe`, `subscribed`, `unavailable`, `probe`...; `None`:
    /// available.
    pub presence_type: Option<String>,
    pub show: Option<String>,
    pub status: Option<String>,
    pub priority: Option<i8>,
}

impl OutgoingPresence {
    fn command(&self) -> String {
        let mut fields = serde_json::Map::new();
        for (k, v) in [
            ("to", &self.to),
            ("type", &self.presence_type),
            ("show", &self.show),
            ("status", &self.status),
        ] {
            if let Some(v) = v {
                fields.insert(k.into(), v.clone().into());
            }
        }
        if let Some(p) = self.priority {
            fields.insert("priority".into(), p.into());
        }
        serde_json::json!({ "presence": fields }).to_string()
    }
}

/// What the script reported.
#[derive(Debug, Clone)]
pub enum Event {
    /// Logged in, initial presence sent; the full JID.
    Ready(String),
    /// A send command went out; the stanza id.
    Sent(Option<String>),
    Message(Box<Received>),
    Presence(Box<PresenceReceived>),
    /// Login or connection failure.
    Failed(String),
    Disconnected(Option<String>),
    /// Anything else (stream errors, bad commands, bye, timeout), as text.
    Other(String),
}

/// A message to send.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    pub to: String,
    pub body: Option<String>,
    /// Default `chat`.
    pub message_type: Option<String>,
    pub id: Option<String>,
    pub thread: Option<String>,
    pub subject: Option<String>,
}

impl Outgoing {
    /// A chat message with a body.
    pub fn chat(to: &str, body: &str) -> Outgoing {
        Outgoing {
            to: to.into(),
            body: Some(body.into()),
            ..Outgoing::default()
        }
    }

    fn command(&self) -> String {
        let mut fields = serde_json::Map::new();
        fields.insert("to".into(), self.to.clone().into());
        for (k, v) in [
            ("body", &self.body),
            ("type", &self.message_type),
            ("id", &self.id),
            ("thread", &self.thread),
            ("subject", &self.subject),
        ] {
            if let Some(v) = v {
                fields.insert(k.into(), v.clone().into());
            }
        }
        serde_json::json!({ "send": fields }).to_string()
    }
}

// ---------------------------------------------------------------------------
// The client

/// A logged-in XMPP client; the process is killed when dropped.
pub struct XmppClient {
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::Receiver<Event>,
    /// Every message received so far, in order.
    received: Vec<Received>,
    /// Every presence received so far, in order.
    presences: Vec<PresenceReceived>,
    /// Every event so far, for failure messages.
    log: Vec<String>,
    stderr: Arc<Mutex<String>>,
    /// The full JID the server bound.
    pub jid: String,
}

impl XmppClient {
    /// Logs `jid` (bare; the script adds a resource) in at the c2s listener
    /// `c2s` with `password` and waits (at most 20 s) until the session has
    /// started. The process ends by itself after `lifetime`. [`Skip`] when
    /// slixmpp is not installed; panics when the login fails.
    pub fn connect(
        jid: &str,
        password: &str,
        c2s: SocketAddr,
        lifetime: Duration,
    ) -> Result<XmppClient, Skip> {
        check_installed()?;
        let mut child = Command::new(python())
            .arg(SCRIPT)
            .arg(jid)
            .arg(password)
            .arg(c2s.ip().to_string())
            .arg(c2s.port().to_string())
            .arg("--timeout")
            .arg(lifetime.as_secs_f64().max(1.0).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Skip(format!("cannot run {}: {e}", python().display())))?;
        let stdin = child.stdin.take();
        let (tx, events) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout pipe");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let at = Instant::now();
                let event = match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if let Some(j) = str_of(&v, "jid").filter(|_| v.get("ready").is_some()) {
                            Event::Ready(j)
                        } else if let Some(m) = v.get("message") {
                            Event::Message(Box::new(Received::of(m, at)))
                        } else if let Some(p) = v.get("presence") {
                            Event::Presence(Box::new(PresenceReceived::of(p, at)))
                        } else if let Some(s) = v.get("sent") {
                            Event::Sent(str_of(s, "id"))
                        } else if let Some(f) = str_of(&v, "failed") {
                            Event::Failed(f)
                        } else if let Some(d) = v.get("disconnected") {
                            Event::Disconnected(d.as_str().map(str::to_string))
                        } else {
                            Event::Other(line)
                        }
                    }
                    Err(e) => Event::Other(format!("{line} (not JSON: {e})")),
                };
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                let mut pipe = pipe;
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    stderr
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let mut client = XmppClient {
            child,
            stdin,
            events,
            received: Vec::new(),
            presences: Vec::new(),
            log: Vec::new(),
            stderr,
            jid: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match client.next_event(deadline) {
                Some(Event::Ready(j)) => {
                    client.jid = j;
                    return Ok(client);
                }
                Some(Event::Failed(why)) => {
                    panic!("{jid}: login failed: {why}\n{}", client.diagnostics())
                }
                Some(_) => {}
                None => panic!(
                    "{jid}: not logged in within 20 s at {c2s}\n{}",
                    client.diagnostics()
                ),
            }
        }
    }

    /// The next event before `deadline` (recorded), or `None`.
    fn next_event(&mut self, deadline: Instant) -> Option<Event> {
        let left = deadline.checked_duration_since(Instant::now())?;
        let event = self.events.recv_timeout(left).ok()?;
        self.record(&event);
        Some(event)
    }

    /// Logs `event` and keeps what it received.
    fn record(&mut self, event: &Event) {
        self.log.push(format!("{event:?}"));
        match event {
            Event::Message(m) => self.received.push((**m).clone()),
            Event::Presence(p) => self.presences.push((**p).clone()),
            _ => {}
        }
    }

    /// Records every event that has arrived, without waiting.
    fn drain(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            self.record(&e);
        }
    }

    /// Events and stderr so far, for a failure message.
    pub fn diagnostics(&mut self) -> String {
        self.drain();
        format!(
            "--- xmpp client {} events:\n{}\n--- stderr:\n{}",
            self.jid,
            self.log.join("\n"),
            self.stderr.lock().unwrap()
        )
    }

    fn command(&mut self, line: &str) {
        let ok = self.stdin.as_mut().is_some_and(|s| {
            s.write_all(format!("{line}\n").as_bytes()).is_ok() && s.flush().is_ok()
        });
        if !ok {
            panic!(
                "xmpp client gone; cannot send {line}\n{}",
                self.diagnostics()
            );
        }
    }

    /// Sends a message; returns its id once the script has sent it.
    pub fn send(&mut self, msg: &Outgoing) -> String {
        self.command(&msg.command());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.next_event(deadline) {
                Some(Event::Sent(id)) => return id.unwrap_or_default(),
                Some(Event::Disconnected(why)) => panic!(
                    "xmpp client disconnected ({why:?}) while sending\n{}",
                    self.diagnostics()
                ),
                Some(_) => {}
                None => panic!("send not confirmed within 10 s\n{}", self.diagnostics()),
            }
        }
    }

    /// Sends a chat message with `body` to `to`; its id.
    pub fn send_chat(&mut self, to: &str, body: &str) -> String {
        self.send(&Outgoing::chat(to, body))
    }

    /// Sends `count` chat messages to `to` in one go, with ids and bodies
    /// `{prefix}0`, `{prefix}1`...; returns once the script has sent them.
    pub fn send_burst(&mut self, to: &str, prefix: &str, count: usize) {
        let cmd = serde_json::json!({ "burst": { "to": to, "prefix": prefix, "count": count } });
        self.command(&cmd.to_string());
        self.wait_sent("burst");
    }

    /// Sends a presence stanza; returns once the script has sent it.
    pub fn send_presence(&mut self, p: &OutgoingPresence) {
        self.command(&p.command());
        self.wait_sent("presence");
    }

    /// Sends `<presence type='ty'/>` to `to` (subscribe, subscribed,
    /// unsubscribe, probe...).
    pub fn presence_to(&mut self, to: &str, ty: &str) {
        self.send_presence(&OutgoingPresence {
            to: Some(to.into()),
            presence_type: Some(ty.into()),
            ..OutgoingPresence::default()
        });
    }

    /// Fetches the roster (RFC 6121 section 2.2), which makes this an
    /// interested resource: Prosody delivers `subscribed` and
    /// `unsubscribed` only to those; waits until the roster came.
    pub fn fetch_roster(&mut self) {
        self.command(r#"{"roster":true}"#);
        self.wait_sent("roster");
    }

    /// Whether slixmpp's roster answers subscription requests by itself
    /// (`true`, slixmpp's default: approve and subscribe back) or leaves
    /// them to the test.
    pub fn auto_subscriptions(&mut self, auto: bool) {
        let mode = if auto { "auto" } else { "manual" };
        self.command(&serde_json::json!({ "subscriptions": mode }).to_string());
        self.wait_sent("subscriptions");
    }

    /// Waits (10 s) for the script's `sent` event.
    fn wait_sent(&mut self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.next_event(deadline) {
                Some(Event::Sent(_)) => return,
                Some(Event::Disconnected(why)) => panic!(
                    "xmpp client disconnected ({why:?}) while sending {what}\n{}",
                    self.diagnostics()
                ),
                Some(_) => {}
                None => panic!("{what} not confirmed within 10 s\n{}", self.diagnostics()),
            }
        }
    }

    /// Every presence received so far, without waiting.
    pub fn presences(&mut self) -> &[PresenceReceived] {
        self.drain();
        &self.presences
    }

    /// Waits (at most `timeout`) for a presence matching `pred` received
    /// after the first `skip` presences; its index and itself, or `None`.
    pub fn wait_presence(
        &mut self,
        skip: usize,
        timeout: Duration,
        pred: impl Fn(&PresenceReceived) -> bool,
    ) -> Option<(usize, PresenceReceived)> {
        self.drain();
        if let Some((i, p)) = self
            .presences
            .iter()
            .enumerate()
            .skip(skip)
            .find(|(_, p)| pred(p))
        {
            return Some((i, p.clone()));
        }
        let deadline = Instant::now() + timeout;
        while let Some(e) = self.next_event(deadline) {
            if let Event::Presence(p) = e {
                if pred(&p) {
                    return Some((self.presences.len() - 1, *p));
                }
            }
        }
        None
    }

    /// [`wait_presence`](Self::wait_presence), panicking with `what` and
    /// the client's events on timeout.
    pub fn expect_presence(
        &mut self,
        what: &str,
        skip: usize,
        timeout: Duration,
        pred: impl Fn(&PresenceReceived) -> bool,
    ) -> (usize, PresenceReceived) {
        match self.wait_presence(skip, timeout, pred) {
            Some(found) => found,
            None => {
                let jid = self.jid.clone();
                panic!(
                    "{jid}: no {what} within {timeout:?}\n{}",
                    self.diagnostics()
                )
            }
        }
    }

    /// Sends raw XML.
    pub fn send_raw(&mut self, xml: &str) {
        self.command(&serde_json::json!({ "raw": xml }).to_string());
    }

    /// Waits (at most `timeout`) for a received message matching `pred`,
    /// among those received before too; `None` when none came.
    pub fn wait_message(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> Option<Received> {
        if let Some(m) = self.received.iter().find(|m| pred(m)) {
            return Some(m.clone());
        }
        let deadline = Instant::now() + timeout;
        while let Some(e) = self.next_event(deadline) {
            if let Event::Message(m) = e {
                if pred(&m) {
                    return Some(*m);
                }
            }
        }
        None
    }

    /// [`wait_message`](Self::wait_message), panicking with `what` and the
    /// client's events on timeout.
    pub fn expect_message(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> Received {
        match self.wait_message(timeout, pred) {
            Some(m) => m,
            None => {
                let jid = self.jid.clone();
                panic!(
                    "{jid}: no {what} within {timeout:?}\n{}",
                    self.diagnostics()
                )
            }
        }
    }

    /// The message whose `id` is `id` (the error coming back for a
    /// message sent with [`send_chat`](Self::send_chat)), panicking with
    /// `what` on timeout.
    pub fn expect_reply(&mut self, what: &str, id: &str, timeout: Duration) -> Received {
        self.expect_message(what, timeout, |m| m.id.as_deref() == Some(id))
    }

    /// Reads what has arrived without waiting; every message so far.
    pub fn received(&mut self) -> &[Received] {
        self.drain();
        &self.received
    }

    /// The messages received so far whose `id` is `id` (errors coming back
    /// for a message sent carry its id).
    pub fn received_with_id(&mut self, id: &str) -> Vec<Received> {
        self.received()
            .iter()
            .filter(|m| m.id.as_deref() == Some(id))
            .cloned()
            .collect()
    }

    /// Ends the session (`quit`, then the stream closes) and waits at most
    /// 5 s for the process; then kills it.
    pub fn quit(mut self) {
        self.finish(Duration::from_secs(5));
    }

    fn finish(&mut self, grace: Duration) {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.write_all(b"{\"quit\":true}\n");
            let _ = s.flush();
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for XmppClient {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
        self.finish(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_command_escapes_its_fields() {
        let mut m = Outgoing::chat("bob@example.com", "a\"b\\c\nd\u{1}é");
        m.id = Some("x1".into());
        let v: Value = serde_json::from_str(&m.command()).unwrap();
        let send = v.get("send").unwrap();
        assert_eq!(str_of(send, "body").as_deref(), m.body.as_deref());
        assert_eq!(str_of(send, "to").as_deref(), Some("bob@example.com"));
        assert_eq!(str_of(send, "id").as_deref(), Some("x1"));
        assert_eq!(send.get("thread"), None);
    }

    #[test]
    fn presence_command_carries_only_what_is_set() {
        let p = OutgoingPresence {
            show: Some("dnd".into()),
            status: Some("busy \"now\"".into()),
            priority: Some(-1),
            ..OutgoingPresence::default()
        };
        let v: Value = serde_json::from_str(&p.command()).unwrap();
        let pres = v.get("presence").unwrap();
        assert_eq!(str_of(pres, "show").as_deref(), Some("dnd"));
        assert_eq!(str_of(pres, "status").as_deref(), Some("busy \"now\""));
        assert_eq!(pres.get("priority").and_then(Value::as_i64), Some(-1));
        assert_eq!(pres.get("to"), None);
        assert_eq!(pres.get("type"), None);
    }
}
