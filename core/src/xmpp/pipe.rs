//! The byte pipeline of one connection: plain TCP, or TLS through rustls
//! driven sans-IO (`read_tls` / `process_new_packets` / `write_tls`). The
//! session puts plaintext in and takes plaintext out; the runtime only
//! moves what [`Pipe::take_output`] gives it.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

/// Why TLS failed; the connection is unusable afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFailure(pub String);

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS: {}", self.0)
    }
}

/// Plain or TLS transport of one connection.
#[derive(Debug, Default)]
pub struct Pipe {
    tls: Option<Connection>,
    /// Bytes for the network.
    out: Vec<u8>,
    /// Decrypted (or plain) bytes for the XML reader.
    plain: Vec<u8>,
    /// Plaintext that rustls could not buffer yet (its handshake-time
    /// limit); written as soon as it can take more.
    pending: Vec<u8>,
}

impl Pipe {
    /// Starts TLS as the accepting side (after `<proceed/>`, or at once on a
    /// direct TLS listener).
    pub fn start_server(&mut self, config: Arc<ServerConfig>) -> Result<(), TlsFailure> {
        let conn = ServerConnection::new(config).map_err(|e| TlsFailure(e.to_string()))?;
        self.tls = Some(conn.into());
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
        let conn = ClientConnection::new(config, name).map_err(|e| TlsFailure(e.to_string()))?;
        self.tls = Some(conn.into());
        self.flush();
        Ok(())
    }

    /// Whether TLS protects this connection (or is being negotiated).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether the TLS handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    /// The negotiated TLS version (e.g. `TLSv1_3`), once the handshake is
    /// done: what operators check a partner against.
    pub fn tls_version(&self) -> Option<&'static str> {
        let version = self.tls.as_ref()?.protocol_version()?;
        version.as_str()
    }

    /// The peer's certificate chain, once the handshake is done.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.tls.as_ref()?.peer_certificates()
    }

    /// Bytes from the network. Plaintext becomes available to
    /// [`Pipe::take_plain`].
    pub fn receive(&mut self, mut bytes: &[u8]) -> Result<(), TlsFailure> {
        let Some(tls) = self.tls.as_mut() else {
            self.plain.extend_from_slice(bytes);
            return Ok(());
        };
        while !bytes.is_empty() {
            let n = tls
                .read_tls(&mut bytes)
                .map_err(|e| TlsFailure(e.to_string()))?;
            let state = match tls.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    // Let the alert reach the peer before the connection closes.
                    let _ = tls.write_tls(&mut self.out);
                    return Err(TlsFailure(e.to_string()));
                }
            };
            let mut want = state.plaintext_bytes_to_read();
            while want > 0 {
                let start = self.plain.len();
                self.plain.resize(start + want, 0);
                let got = tls.reader().read(&mut self.plain[start..]).unwrap_or(0);
                self.plain.truncate(start + got);
                if got == 0 {
                    break;
                }
                want -= got;
            }
            if n == 0 {
                break;
            }
        }
        self.flush();
        self.write_pending();
        Ok(())
    }

    /// Plaintext for the network (encrypted first when TLS is on). Nothing
    /// is ever cut: what rustls cannot take yet waits, in order.
    pub fn send(&mut self, plain: &[u8]) {
        if self.tls.is_none() {
            self.out.extend_from_slice(plain);
        } else if self.pending.is_empty() {
            let taken = self.write_through(plain);
            self.pending.extend_from_slice(&plain[taken..]);
        } else {
            self.pending.extend_from_slice(plain);
            self.write_pending();
        }
    }

    /// Hands plaintext to rustls as far as it takes it, moving each batch
    /// of records out before the next (rustls buffers at most its limit,
    /// 64 KiB, at a time); returns how much it took. It refuses only
    /// during the handshake, when plaintext cannot be encrypted yet.
    fn write_through(&mut self, plain: &[u8]) -> usize {
        let mut taken = 0;
        while taken < plain.len() {
            let Some(tls) = self.tls.as_mut() else { break };
            let n = tls.writer().write(&plain[taken..]).unwrap_or(0);
            self.flush();
            if n == 0 {
                break;
            }
            taken += n;
        }
        taken
    }

    fn write_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let taken = self.write_through(&pending);
        self.pending = pending;
        self.pending.drain(..taken);
    }

    /// Sends TLS close_notify (RFC 6120 section 4.4 step 4).
    pub fn close(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            self.flush();
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

    fn flush(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            while tls.wants_write() {
                match tls.write_tls(&mut self.out) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testing::{LeafSpec, TestCert};
    use crate::tls::{client_config, server_config, CallerClock};

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
        let id = TestCert::self_signed(&LeafSpec::xmpp_server("a.test")).identity();
        let clock = Arc::new(CallerClock::new(1_800_000_000));
        let (mut client, mut server) = (Pipe::default(), Pipe::default());
        server
            .start_server(server_config(&id, clock.clone()))
            .unwrap();
        client
            .start_client(client_config(&id, clock), "a.test")
            .unwrap();
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
}
