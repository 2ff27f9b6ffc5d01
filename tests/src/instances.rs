//! Several instances of one deployment on loopback (issue 13): folders
//! and configurations sharing the certificates, the dialback secret and
//! one PostgreSQL database, with Prosody as the partner.

use std::path::PathBuf;

use crate::postgres::Postgres;
use crate::prosody::{prosody_for_xfed, write_dialback_certs, ProsodyOptions};
use crate::sipp::{write_xfed_config_with, Credentials, XfedSip};
use crate::{free_port, temp_dir};

/// A deployment's instances, not started.
pub struct Deployment {
    /// Each instance's folder (`xfed.toml` and the certificates).
    pub dirs: Vec<PathBuf>,
    /// Each instance's SIP port (UDP and TCP) on 127.0.0.1.
    pub sip_ports: Vec<u16>,
    /// Prosody's options, to add to and start.
    pub prosody: ProsodyOptions,
}

/// `n` instances' folders and configurations (accounts alice, dave and
/// carol, passwords `USER-secret`), sharing the certificates, the
/// dialback secret and the database `xfed` of `pg`; Prosody (on
/// 127.0.0.`prosody_ip`) finds xfed.test at the second. With `paths`,
/// each has its `sip.path` and trusts the others (loopback, over TCP).
pub fn deployment(name: &str, n: usize, pg: &Postgres, prosody_ip: u8, paths: bool) -> Deployment {
    let dirs: Vec<PathBuf> = (0..n)
        .map(|i| temp_dir(&format!("instance-{}-{name}", i + 1)))
        .collect();
    write_dialback_certs(&dirs[0], "xfed.test", "prosody.test");
    for dir in &dirs[1..] {
        for file in [
            "cert.pem",
            "key.pem",
            "ca.pem",
            "prosody.crt",
            "prosody.key",
        ] {
            std::fs::copy(dirs[0].join(file), dir.join(file)).unwrap();
        }
    }
    let s2s: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let sip_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let prosody = prosody_for_xfed(&dirs[0], prosody_ip, s2s[1]);
    let accounts = ["alice", "dave", "carol"]
        .iter()
        .map(|u| (u.to_string(), format!("{u}-secret")))
        .collect::<Vec<_>>();
    for i in 0..n {
        let sip = XfedSip {
            domain: "xfed.test".into(),
            s2s_port: s2s[i],
            sip_port: sip_ports[i],
            accounts: accounts.clone(),
            trusted: if paths {
                vec!["127.0.0.1".into()]
            } else {
                Vec::new()
            },
            trust_udp: false,
            partners: vec![("prosody.test".into(), prosody.s2s_addr())],
            partner_sasl: "not-supported",
        };
        let path = write_xfed_config_with(
            &dirs[i],
            &sip,
            &Credentials::Password {
                digest_algorithms: None,
            },
        );
        // One store for all; the same dialback secret already.
        let toml = std::fs::read_to_string(&path).unwrap();
        let db = format!("sqlite://{}", dirs[i].join("xfed.db").display());
        let mut shared = toml.replace(&db, &pg.url("xfed"));
        assert_ne!(shared, toml);
        if paths {
            let with_path = shared.replace(
                "[sip]\nmode = \"registrar\"\n",
                &format!(
                    "[sip]\nmode = \"registrar\"\npath = \"sip:127.0.0.1:{};transport=tcp\"\n",
                    sip_ports[i]
                ),
            );
            assert_ne!(with_path, shared);
            shared = with_path;
        }
        std::fs::write(&path, shared).unwrap();
    }
    Deployment {
        dirs,
        sip_ports,
        prosody,
    }
}
