//! The byte pipeline of one connection: plain TCP, or TLS through rustls'
//! unbuffered API driven sans-IO (`process_tls_records` and its states).
//! The session puts plaintext in and takes plaintext out; the runtime only
//! moves what [`Pipe::take_output`] gives it. Unbuffered, because then the
//! ciphertext not yet processed is ours to hold: a partial record waits in
//! `incoming`, released once processed, where rustls' buffered connection
//! keeps a 4 KiB receive buffer for the life of every link.

use std::sync::Arc;

use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
    WriteTraffic,
};
use rustls::{ClientConfig, CommonState, ServerConfig};

/// Why TLS failed; the connection is unusable afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFailure(pub String);

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS: {}", self.0)
    }
}

/// Either side's unbuffered connection.
enum Tls {
    Client(UnbufferedClientConnection),
    Server(UnbufferedServerConnection),
}

impl Tls {
    fn common(&self) -> &CommonState {
        match self {
            Tls::Client(c) => c,
            Tls::Server(c) => c,
        }
    }
}

/// Plain or TLS transport of one connection.
#[derive(Default)]
pub struct Pipe {
    /// Boxed: a rustls connection is over a kilobyte, and plain links
    /// need none.
    tls: Option<Box<Tls>>,
    /// Ciphertext received and not yet processed (a partial record).
    incoming: Vec<u8>,
    /// Bytes for the network.
    out: Vec<u8>,
    /// Decrypted (or plain) bytes for the XML reader.
    plain: Vec<u8>,
    /// Plaintext that cannot be encrypted yet (during the handshake);
    /// encrypted, in order, as soon as it can be.
    pending: Vec<u8>,
    /// `close` was asked: close_notify follows what is pending.
    close: bool,
    /// A TLS error ended the connection.
    failed: bool,
    /// The peer sent close_notify: nothing it sends later is read (nor
    /// kept).
    peer_closed: bool,
}

impl std::fmt::Debug for Pipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipe")
            .field("tls", &self.tls_version())
            .field("incoming", &self.incoming.len())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// What the pipe does after one state.
enum Next {
    /// Ask rustls again.
    Again,
    /// Nothing to do until more bytes arrive.
    Wait,
    /// The peer sent close_notify.
    PeerClosed,
    Fail(String),
}

impl Pipe {
    /// Starts TLS as the accepting side (after `<proceed/>`, or at once on a
    /// direct TLS listener).
    pub fn start_server(&mut self, config: Arc<ServerConfig>) -> Result<(), TlsFailure> {
        let conn =
            UnbufferedServerConnection::new(config).map_err(|e| TlsFailure(e.to_string()))?;
        self.tls = Some(Box::new(Tls::Server(conn)));
        Ok(())
    }

    /// Starts TLS as the connecting side, naming `domain` in SNI.
    pub fn start_client(
        &mut self,
        config: Arc<ClientConfig>,
        domain: &str,
    ) -> Result<(), TlsFailure> {
        let name =
            ServerName::try_from(domain.to_owned()).map_err(|e| TlsFailure(e.to_string()))?;
        let conn =
            UnbufferedClientConnection::new(config, name).map_err(|e| TlsFailure(e.to_string()))?;
        self.tls = Some(Box::new(Tls::Client(conn)));
        self.drive().map_err(TlsFailure)
    }

    /// Whether TLS protects this connection (or is being negotiated).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether the TLS handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|t| t.common().is_handshaking())
    }

    /// The negotiated TLS version (e.g. `TLSv1_3`), once the handshake is
    /// done: what operators check a partner against.
    pub fn tls_version(&self) -> Option<&'static str> {
        let version = self.tls.as_ref()?.common().protocol_version()?;
        version.as_str()
    }

    /// The peer's certificate chain, once the handshake is done.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.tls.as_ref()?.common().peer_certificates()
    }

    /// Bytes from the network. Plaintext becomes available to
    /// [`Pipe::take_plain`].
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), TlsFailure> {
        if self.tls.is_none() {
            self.plain.extend_from_slice(bytes);
            return Ok(());
        }
        if self.failed {
            return Err(TlsFailure("connection failed earlier".into()));
        }
        if !self.peer_closed {
            self.incoming.extend_from_slice(bytes);
        }
        self.drive().map_err(TlsFailure)
    }

    /// Plaintext for the network (encrypted first when TLS is on). Nothing
    /// is ever cut: what cannot be encrypted yet waits, in order.
    pub fn send(&mut self, plain: &[u8]) {
        if self.tls.is_none() {
            self.out.extend_from_slice(plain);
            return;
        }
        self.pending.extend_from_slice(plain);
        // A failure is reported by the next receive.
        let _ = self.drive();
    }

    /// Sends TLS close_notify (RFC 6120 section 4.4 step 4) after what is
    /// pending, once the handshake allows it.
    pub fn close(&mut self) {
        if self.tls.is_some() {
            self.close = true;
            let _ = self.drive();
        }
    }

    /// Takes the plaintext received so far.
    pub fn take_plain(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.plain)
    }

    /// Puts back plaintext that arrived before a switch to TLS: on a
    /// STARTTLS boundary those bytes are the first TLS records.
    pub fn push_back_as_ciphertext(&mut self, rest: &[u8]) -> Result<(), TlsFailure> {
        self.receive(rest)
    }

    /// Bytes to send on the network.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Whether bytes wait for the network.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Runs rustls until it waits for the peer: records in are processed,
    /// handshake records and pending plaintext go out. The processed
    /// ciphertext is dropped, and `incoming` released once empty.
    fn drive(&mut self) -> Result<(), String> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        if self.failed {
            return Ok(());
        }
        let mut result = Ok(());
        // Each round handles one state; a handshake takes a few dozen.
        for _ in 0..10_000 {
            let bufs = (
                &mut self.out,
                &mut self.plain,
                &mut self.pending,
                &mut self.close,
            );
            let (discard, next) = match tls.as_mut() {
                Tls::Client(c) => handle(c.process_tls_records(&mut self.incoming), bufs),
                Tls::Server(c) => handle(c.process_tls_records(&mut self.incoming), bufs),
            };
            self.incoming.drain(..discard.min(self.incoming.len()));
            match next {
                Next::Again => {}
                Next::Wait => break,
                Next::PeerClosed => {
                    self.peer_closed = true;
                    self.incoming = Vec::new();
                }
                Next::Fail(e) => {
                    self.failed = true;
                    // Let the alert rustls queued reach the peer first.
                    match tls.as_mut() {
                        Tls::Client(c) => alert(c.process_tls_records(&mut []), &mut self.out),
                        Tls::Server(c) => alert(c.process_tls_records(&mut []), &mut self.out),
                    }
                    result = Err(e);
                    break;
                }
            }
        }
        if self.incoming.is_empty() {
            self.incoming = Vec::new();
        }
        if self.pending.is_empty() {
            self.pending = Vec::new();
        }
        result
    }
}

/// The pipe's buffers as [`handle`] fills them: out, plain, pending, and
/// whether close_notify is asked.
type Bufs<'a> = (
    &'a mut Vec<u8>,
    &'a mut Vec<u8>,
    &'a mut Vec<u8>,
    &'a mut bool,
);

/// Handles one state of either side's connection; returns the bytes of
/// `incoming` done with and what to do next.
fn handle<D>(status: UnbufferedStatus<'_, '_, D>, bufs: Bufs<'_>) -> (usize, Next) {
    let next = match status.state {
        Ok(state) => handle_state(state, bufs),
        Err(e) => Next::Fail(e.to_string()),
    };
    (status.discard, next)
}

/// After an error: the alert rustls queued, if any, goes out.
fn alert<D>(status: UnbufferedStatus<'_, '_, D>, out: &mut Vec<u8>) {
    if let Ok(ConnectionState::EncodeTlsData(mut e)) = status.state {
        let _ = encode(out, |buf| e.encode(buf));
    }
}

fn handle_state<D>(
    state: ConnectionState<'_, '_, D>,
    (out, plain, pending, close): Bufs<'_>,
) -> Next {
    match state {
        ConnectionState::ReadTraffic(mut read) => {
            while let Some(record) = read.next_record() {
                match record {
                    Ok(record) => plain.extend_from_slice(record.payload),
                    Err(e) => return Next::Fail(e.to_string()),
                }
            }
            Next::Again
        }
        ConnectionState::EncodeTlsData(mut e) => match encode(out, |buf| e.encode(buf)) {
            Ok(()) => Next::Again,
            Err(e) => Next::Fail(e),
        },
        ConnectionState::TransmitTlsData(mut t) => {
            // Application data may follow our Finished (0.5-RTT).
            if let Some(mut w) = t.may_encrypt_app_data() {
                if let Err(e) = write(&mut w, out, pending, close) {
                    return Next::Fail(e);
                }
            }
            t.done();
            Next::Again
        }
        ConnectionState::WriteTraffic(mut w) => match write(&mut w, out, pending, close) {
            Ok(()) => Next::Wait,
            Err(e) => Next::Fail(e),
        },
        ConnectionState::ReadEarlyData(_) => Next::Fail("unexpected early data".into()),
        ConnectionState::PeerClosed => Next::PeerClosed,
        // Closed, BlockedHandshake and any later state.
        _ => Next::Wait,
    }
}

/// Encrypts what is pending, then close_notify if asked.
fn write<D>(
    w: &mut WriteTraffic<'_, D>,
    out: &mut Vec<u8>,
    pending: &mut Vec<u8>,
    close: &mut bool,
) -> Result<(), String> {
    if !pending.is_empty() {
        let data = std::mem::take(pending);
        encrypt(out, |buf| w.encrypt(&data, buf))?;
    }
    if std::mem::take(close) {
        encrypt(out, |buf| w.queue_close_notify(buf))?;
    }
    Ok(())
}

/// Appends what `f` writes to `out`, growing `out` to the size rustls asks.
fn encode(
    out: &mut Vec<u8>,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> Result<(), String> {
    grow_into(out, |buf| match f(buf) {
        Ok(n) => Ok(Ok(n)),
        Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
            Ok(Err(required_size))
        }
        // Encoded already: nothing more to write.
        Err(EncodeError::AlreadyEncoded) => Ok(Ok(0)),
    })
}

/// [`encode`] for encryption.
fn encrypt(
    out: &mut Vec<u8>,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> Result<(), String> {
    grow_into(out, |buf| match f(buf) {
        Ok(n) => Ok(Ok(n)),
        Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
            Ok(Err(required_size))
        }
        Err(e) => Err(e.to_string()),
    })
}

/// Calls `f` on the spare end of `out`; `f` answers the bytes written, or
/// the room it needs (then it is called again with that room).
fn grow_into(
    out: &mut Vec<u8>,
    mut f: impl FnMut(&mut [u8]) -> Result<Result<usize, usize>, String>,
) -> Result<(), String> {
    let start = out.len();
    let mut room = 0;
    for _ in 0..2 {
        out.resize(start + room, 0);
        match f(&mut out[start..]) {
            Ok(Ok(n)) => {
                out.truncate(start + n);
                return Ok(());
            }
            Ok(Err(needed)) => room = needed,
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
    out.truncate(start);
    Err("rustls asked for more room than it said".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testing::{LeafSpec, TestCert};
    use crate::tls::{client_config, server_config, CallerClock};

    /// A client and a server pipe with TLS started, nothing exchanged.
    fn started() -> (Pipe, Pipe) {
        let id = TestCert::self_signed(&LeafSpec::xmpp_server("a.test")).identity();
        let clock = Arc::new(CallerClock::new(1_800_000_000));
        let (mut client, mut server) = (Pipe::default(), Pipe::default());
        server
            .start_server(server_config(&id, clock.clone()))
            .unwrap();
        client
            .start_client(client_config(&id, clock), "a.test")
            .unwrap();
        (client, server)
    }

    /// Moves bytes both ways until neither side has any.
    fn pump(a: &mut Pipe, b: &mut Pipe) {
        for _ in 0..1000 {
            let (to_b, to_a) = (a.take_output(), b.take_output());
            if to_a.is_empty() && to_b.is_empty() {
                return;
            }
            b.receive(&to_b).unwrap();
            a.receive(&to_a).unwrap();
        }
        panic!("pipes never went quiet");
    }

    #[test]
    fn large_writes_over_tls_arrive_whole_during_and_after_the_handshake() {
        let (mut client, mut server) = started();
        // 200 KB before the handshake is done (rustls holds 64 KiB there),
        // in two writes, then 300 KB in one write after it.
        let early: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        client.send(&early[..150_000]);
        client.send(&early[150_000..]);
        pump(&mut client, &mut server);
        assert!(!server.is_handshaking());
        let got = server.take_plain();
        assert!(
            got == early,
            "{} of {} bytes arrived intact",
            got.len(),
            early.len()
        );
        // Idle after the exchange: no ciphertext or plaintext held.
        for p in [&client, &server] {
            assert_eq!((p.incoming.capacity(), p.pending.capacity()), (0, 0));
        }
        let late: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
        server.send(&late);
        pump(&mut client, &mut server);
        let got = client.take_plain();
        assert!(
            got == late,
            "{} of {} bytes arrived intact",
            got.len(),
            late.len()
        );
    }

    #[test]
    fn records_split_across_reads_byte_by_byte_are_reassembled() {
        let (mut client, mut server) = started();
        client.send(b"<stream:stream>");
        for _ in 0..100 {
            let (to_b, to_a) = (client.take_output(), server.take_output());
            if to_a.is_empty() && to_b.is_empty() {
                break;
            }
            for b in to_b {
                server.receive(&[b]).unwrap();
            }
            for b in to_a {
                client.receive(&[b]).unwrap();
            }
        }
        assert!(!server.is_handshaking() && !client.is_handshaking());
        assert_eq!(server.take_plain(), b"<stream:stream>");
        // A record cut short is kept until its end arrives.
        server.send(b"<message/>");
        let record = server.take_output();
        client.receive(&record[..record.len() - 1]).unwrap();
        assert!(client.take_plain().is_empty());
        assert!(client.incoming.capacity() > 0);
        client.receive(&record[record.len() - 1..]).unwrap();
        assert_eq!(client.take_plain(), b"<message/>");
        assert_eq!(client.incoming.capacity(), 0);
    }
}
