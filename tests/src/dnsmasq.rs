//! A real dnsmasq (Debian's `dnsmasq-base`) on a loopback port, serving
//! the records a test writes and nothing else (`no-resolv`, `no-hosts`:
//! it never forwards), for `xfed plan --check`, which resolves through
//! it with `--resolver`. Started in the foreground as a child process,
//! waited for until its TCP port listens, killed when dropped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::prosody::{find_peer_binary, Skip};
use crate::{free_port_on, is_listening};

/// One running dnsmasq.
pub struct Dnsmasq {
    child: Child,
    /// Where it answers, UDP and TCP.
    pub addr: SocketAddr,
}

impl Dnsmasq {
    /// Starts dnsmasq on 127.0.0.1 with `records` (dnsmasq options such
    /// as `srv-host=...` and `host-record=...`), its configuration and
    /// log in `dir`. `Skip` when it is not installed (`XFED_DNSMASQ`
    /// names another binary).
    pub fn start(dir: &Path, records: &[String]) -> Result<Dnsmasq, Skip> {
        let bin = find_peer_binary("XFED_DNSMASQ", "dnsmasq", &["/usr/sbin"], "dnsmasq-base")?;
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let addr = SocketAddr::new(ip, free_port_on(ip));
        let conf = dir.join("dnsmasq.conf");
        let mut text = format!(
            "port={}\nlisten-address={ip}\nbind-interfaces\nno-resolv\nno-hosts\nno-poll\n\
             local=/test/\nlog-queries\nlog-facility={}\n",
            addr.port(),
            dir.join("dnsmasq.log").display()
        );
        for r in records {
            text.push_str(r);
            text.push('\n');
        }
        std::fs::write(&conf, text).expect("write dnsmasq.conf");
        let child = Command::new(&bin)
            .arg("--keep-in-foreground")
            .arg(format!("--conf-file={}", conf.display()))
            .arg("--pid-file")
            .arg("--user=root")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Skip(format!("cannot run {}: {e}", bin.display())))?;
        let mut d = Dnsmasq { child, addr };
        let end = Instant::now() + Duration::from_secs(10);
        while !is_listening(addr) {
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("dnsmasq exited at start ({status}); see {}", conf.display());
            }
            assert!(Instant::now() < end, "dnsmasq does not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(d)
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
