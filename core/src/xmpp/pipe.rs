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
        Ok(())
    }

    /// Plaintext for the network (encrypted first when TLS is on).
    pub fn send(&mut self, plain: &[u8]) {
        match self.tls.as_mut() {
            Some(tls) => {
                // rustls buffers plaintext written during the handshake.
                let _ = tls.writer().write_all(plain);
                self.flush();
            }
            None => self.out.extend_from_slice(plain),
        }
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
