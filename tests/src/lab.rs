//! The set-up the SIP ⇄ XMPP interop suites share: xfed in registrar mode
//! (account alice@xfed.test) federated with Debian's Prosody serving
//! prosody.test (a `federated` partner, dialback over TLS with
//! self-signed certificates), and bob@prosody.test logged in through
//! slixmpp; all on loopback, in a fresh directory.

use std::path::PathBuf;
use std::time::Duration;

use crate::prosody::{prosody_for_xfed, write_dialback_certs, Prosody, Skip};
use crate::sipp::{self, Credentials, XfedSip};
use crate::xmpp_client::XmppClient;
use crate::{free_port, temp_dir, Instance};

/// Bob's address.
pub const BOB: &str = "bob@prosody.test";
/// Alice's address (the xfed account).
pub const ALICE: &str = "alice@xfed.test";
/// Alice's password.
pub const ALICE_SECRET: &str = "alice-secret";

/// xfed, Prosody and bob, all running.
pub struct ProsodyLab {
    /// The test's name, for failure messages.
    pub name: String,
    /// The xfed binary.
    pub bin: String,
    /// bob's client. Declared first: dropped (killed) first.
    pub bob: XmppClient,
    /// `None` only while restarting.
    xfed: Option<Instance>,
    /// What earlier runs of this instance logged.
    earlier_log: String,
    /// Prosody.
    pub prosody: Prosody,
    /// xfed's SIP side as configured.
    pub sip: XfedSip,
    /// The directory of everything (xfed.toml, the store, Prosody's).
    pub dir: PathBuf,
}

impl ProsodyLab {
    /// Starts Prosody on 127.0.0.`prosody_ip` with user bob, xfed (`bin`)
    /// in `dir` named `name` with alice's account as an MD5 `ha1` (for
    /// sipp), and logs bob in for `bob_lifetime`.
    /// `Err`: a peer is missing (the caller skips, or fails under CI).
    pub fn start(
        bin: &str,
        name: &str,
        prosody_ip: u8,
        bob_lifetime: Duration,
    ) -> Result<ProsodyLab, Skip> {
        Self::start_with(bin, name, prosody_ip, bob_lifetime, &Credentials::Md5Ha1)
    }

    /// [`ProsodyLab::start`] with alice's account written as `credentials`
    /// says (a plain password and `[sip] digest_algorithms`, say).
    pub fn start_with(
        bin: &str,
        name: &str,
        prosody_ip: u8,
        bob_lifetime: Duration,
        credentials: &Credentials,
    ) -> Result<ProsodyLab, Skip> {
        let dir = temp_dir(name);
        write_dialback_certs(&dir, "xfed.test", "prosody.test");
        let s2s_port = free_port();
        let options = prosody_for_xfed(&dir, prosody_ip, s2s_port);
        let sip = XfedSip {
            domain: "xfed.test".into(),
            s2s_port,
            sip_port: free_port(),
            accounts: vec![("alice".into(), ALICE_SECRET.into())],
            trusted: Vec::new(),
            trust_udp: false,
            partners: vec![("prosody.test".into(), options.s2s_addr())],
            partner_sasl: "not-supported",
        };
        sipp::write_xfed_config_with(&dir, &sip, credentials);
        let prosody = Prosody::start(options)?;
        let xfed = Instance::start(bin, &["run", "--config", "xfed.toml"], &dir);
        let bob = XmppClient::connect(BOB, "bob-secret", prosody.c2s_addr(), bob_lifetime)?;
        Ok(ProsodyLab {
            name: name.to_owned(),
            bin: bin.to_owned(),
            bob,
            xfed: Some(xfed),
            earlier_log: String::new(),
            prosody,
            sip,
            dir,
        })
    }

    /// The running xfed.
    pub fn xfed(&mut self) -> &mut Instance {
        self.xfed.as_mut().expect("xfed is running")
    }

    /// Waits (at most `wait`) for an xfed log line containing `needle`.
    pub fn xfed_log(&mut self, needle: &str, wait: Duration) -> String {
        self.xfed().wait_log(needle, wait)
    }

    /// Stops xfed (SIGTERM) and starts it again on the same directory,
    /// configuration and SQLite store.
    pub fn restart_xfed(&mut self) {
        let mut old = self.xfed.take().expect("xfed is running");
        self.earlier_log
            .push_str(&format!("{}\n--- (restart)\n", old.log_text()));
        assert!(
            old.terminate(),
            "xfed did not stop cleanly on SIGTERM\n{}",
            self.earlier_log
        );
        self.xfed = Some(Instance::start(
            &self.bin,
            &["run", "--config", "xfed.toml"],
            &self.dir,
        ));
    }

    /// Everything xfed, Prosody and bob logged, for a failure message.
    pub fn diagnostics(&mut self) -> String {
        let xfed = self
            .xfed
            .as_mut()
            .map(Instance::log_text)
            .unwrap_or_default();
        format!(
            "--- {} xfed:\n{}{}\n{}\n{}",
            self.name,
            self.earlier_log,
            xfed,
            self.prosody.diagnostics(),
            self.bob.diagnostics()
        )
    }
}
