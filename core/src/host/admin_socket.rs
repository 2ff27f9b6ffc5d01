//! The local admin socket: a Unix socket beside the store
//! (`xfed-admin.sock`, owner-only) through which `xfed contact ...` asks
//! the running instance (and `xfed partner|access|gateway` ask it to
//! reload). One blocking thread serves it, one connection at
//! a time (an operator's tool, not a service): it reads one request line,
//! hands it to the gateway task as [`Input::Admin`] and writes the answer
//! back. The same on both runtimes, since neither is involved.

use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use async_channel::Sender;
use tracing::{info, warn};

use super::driver::Input;
use crate::admin::{Reply, Request, MAX_REQUEST};

/// The socket's file name, in the store's directory.
pub const SOCKET_NAME: &str = "xfed-admin.sock";

/// How long one client may take to send its request or read the answer,
/// and how long the answer may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the admin socket of an instance keeping its files in
/// `state_dir` (`store.state_dir`, resolved) is.
pub fn path_for(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// Removes the socket file when the instance stops.
#[derive(Debug)]
pub struct Bound(PathBuf);

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Binds the socket at `path` (owner-only from the start: it is bound
/// under a temporary name, restricted, then renamed) and serves it on its
/// own thread. A socket left by an instance that died is replaced; one
/// that answers belongs to a running instance and is left alone (`Err`).
pub fn serve<S: Send + 'static>(path: &Path, tx: Sender<Input<S>>) -> io::Result<Bound> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} answers: another xfed runs here", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let temporary = path.with_extension("sock.new");
    let _ = std::fs::remove_file(&temporary);
    let listener = UnixListener::bind(&temporary)?;
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&temporary, path)?;
    let bound = Bound(path.to_path_buf());
    std::thread::Builder::new()
        .name("xfed-admin".into())
        .spawn(move || {
            for conn in listener.incoming() {
                if tx.is_closed() {
                    return;
                }
                match conn {
                    Ok(stream) => {
                        if let Err(e) = answer(stream, &tx) {
                            warn!("admin socket: {e}");
                        }
                    }
                    Err(e) => warn!("admin socket: accept failed: {e}"),
                }
            }
        })?;
    info!("admin socket on {}", path.display());
    Ok(bound)
}

/// One client: its request line, the gateway's answer.
fn answer<S>(mut stream: UnixStream, tx: &Sender<Input<S>>) -> io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut buf = Vec::new();
    (&mut stream)
        .take(MAX_REQUEST as u64 + 1)
        .read_to_end(&mut buf)?;
    let reply = match request_line(&buf) {
        Ok(line) => match Request::parse(line) {
            Ok(request) => ask_gateway(request, tx),
            Err(e) => Reply::error(e),
        },
        Err(e) => Reply::error(e),
    };
    stream.write_all(reply.to_string().as_bytes())
}

/// The request's one line: UTF-8, within [`MAX_REQUEST`].
fn request_line(buf: &[u8]) -> Result<&str, String> {
    if buf.len() > MAX_REQUEST {
        return Err(format!("request longer than {MAX_REQUEST} bytes"));
    }
    let text = std::str::from_utf8(buf).map_err(|_| "request is not UTF-8".to_owned())?;
    Ok(text.lines().next().unwrap_or(""))
}

fn ask_gateway<S>(request: Request, tx: &Sender<Input<S>>) -> Reply {
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    if tx.send_blocking(Input::Admin(request, reply_tx)).is_err() {
        return Reply::error("xfed is stopping");
    }
    reply_rx
        .recv_timeout(CLIENT_TIMEOUT)
        .unwrap_or_else(|_| Reply::error("no answer from the gateway"))
}

/// Asks the instance whose admin socket is `path` (the CLI's side).
pub fn ask(path: &Path, request: &Request) -> Result<Reply, String> {
    ask_line(path, &request.to_string())?.ok_or_else(|| {
        format!(
            "cannot reach a running xfed at {} (is it running with this configuration?)",
            path.display()
        )
    })
}

/// Sends one request line to the instance whose admin socket is `path`
/// and reads its answer; `Ok(None)` when no instance runs there (no
/// socket, or nobody listening on it), which the configuration editors
/// take as "the change applies at the next start".
pub fn ask_line(path: &Path, line: &str) -> Result<Option<Reply>, String> {
    let mut stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(format!("cannot reach {}: {e}", path.display())),
    };
    let io = |e: io::Error| format!("{}: {e}", path.display());
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT)).map_err(io)?;
    stream
        .write_all(format!("{line}\n").as_bytes())
        .map_err(io)?;
    stream.shutdown(std::net::Shutdown::Write).map_err(io)?;
    let mut text = String::new();
    stream.read_to_string(&mut text).map_err(io)?;
    Ok(Some(Reply::parse(&text)))
}
