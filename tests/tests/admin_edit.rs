//! `xfed partner|access|gateway` and `xfed import-lync` (issue 12 items 2
//! and 8), run as an operator runs them, on both binaries: edits of a
//! commented file keep the comments and pass `xfed check`; an edit that
//! would not pass is refused with the file untouched; a Lync export
//! becomes a configuration `xfed check` accepts; after a change a running
//! instance is asked to reload through its admin socket.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use xfed_core::tls::testing::{LeafSpec, TestCert};
use xfed_tests::sip_pair::{deployments, start};
use xfed_tests::{run_to_end, temp_dir, BINARIES};

const WAIT: Duration = Duration::from_secs(20);

const FILE: &str = r#"# The deployment of example.com.
[gateway]
domains = ["example.com"]  # our SIP domain
connection_limit = 1000    # Lync's default

# Jabber.org: agreed in 2012.
[[partner]]
domain = "jabber.org"
type = "federated"   # trusted
sasl = "optional"

# Sales may federate.
[[access]]
users = ["*@sales.example.com"]
xmpp = true

[store]
# Beside the configuration.
url = "sqlite://xfed.db"
"#;

const COMMENTS: [&str; 7] = [
    "# The deployment of example.com.",
    "# our SIP domain",
    "# Jabber.org: agreed in 2012.",
    "type = \"federated\"   # trusted",
    "# Sales may federate.",
    "# Beside the configuration.",
    "# Lync's default",
];

/// A directory with a certificate for example.com and `FILE`, mode 0640.
fn deployment(name: &str) -> std::path::PathBuf {
    let dir = temp_dir(name);
    let cert = TestCert::self_signed(&LeafSpec::xmpp_server("example.com"));
    std::fs::write(dir.join("cert.pem"), cert.chain_pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.key_pem()).unwrap();
    std::fs::write(dir.join("xfed.toml"), FILE).unwrap();
    std::fs::set_permissions(
        dir.join("xfed.toml"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    dir
}

/// Runs `bin args` in `dir`; whether it succeeded, and what it printed.
fn xfed(bin: &str, dir: &Path, args: &[&str]) -> (bool, String) {
    run_to_end(bin, args, dir, WAIT)
}

fn ok(bin: &str, dir: &Path, args: &[&str]) -> String {
    let (ok, out) = xfed(bin, dir, args);
    assert!(ok, "xfed {args:?} failed:\n{out}");
    out
}

fn read(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("xfed.toml")).unwrap()
}

fn edits_keep_comments_and_pass_check(bin: &str) {
    let dir = deployment(&format!("admin-edit-{bin}"));
    let c = ["--config", "xfed.toml"];
    let edits: [&[&str]; 6] = [
        &[
            "partner",
            "add",
            "--domain",
            "example.org",
            "--partner-type",
            "PublicVerified",
            "--tls",
            "required",
            "--sasl",
            "optional",
            "--dialback",
            "true",
            "--additional-domains",
            "a.example.org,b.example.org",
        ],
        &[
            "partner",
            "set",
            "--domain",
            "jabber.org",
            "--connection-limit",
            "5",
            "--description",
            "Jabber.org, since 2012",
            "--add-additional-domains",
            "muc.jabber.org",
        ],
        &[
            "access",
            "add",
            "--users",
            "mallory@sales.example.com",
            "--xmpp",
            "false",
            "--position",
            "1",
        ],
        &[
            "gateway",
            "set",
            "--connection-limit",
            "500",
            "--keepalive-interval",
            "5m",
        ],
        &["access", "remove", "2"],
        &["partner", "remove", "--domain", "example.org"],
    ];
    let mut sales_rule_removed = false;
    for args in edits {
        let out = ok(bin, &dir, &[args, &c].concat());
        assert!(out.contains("xfed.toml: written"), "{args:?}: {out}");
        assert!(
            out.contains("no running instance: the change applies at the next start"),
            "{args:?}: {out}"
        );
        let text = read(&dir);
        // The removed rule takes its comment with it.
        sales_rule_removed |= args[..2] == ["access", "remove"];
        for comment in COMMENTS {
            if comment == "# Sales may federate." && sales_rule_removed {
                assert!(!text.contains(comment), "{text}");
                continue;
            }
            assert!(text.contains(comment), "{args:?} lost {comment:?}:\n{text}");
        }
        let check = ok(bin, &dir, &["check", "--config", "xfed.toml"]);
        assert!(check.contains("xfed.toml: OK"), "{check}");
        // Written atomically with the file's mode.
        let mode = std::fs::metadata(dir.join("xfed.toml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640, "{args:?}");
        if args[1] == "add" && args[0] == "partner" {
            let list = ok(bin, &dir, &[&["partner", "list"][..], &c].concat());
            let row = list
                .lines()
                .find(|l| l.starts_with("example.org "))
                .unwrap_or_else(|| panic!("no example.org row:\n{list}"));
            for cell in [
                "public-verified",
                "required",
                "optional",
                "a.example.org, b.example.org",
            ] {
                assert!(row.contains(cell), "{cell}: {row}");
            }
        }
    }
    let text = read(&dir);
    assert!(!text.contains("example.org\""), "{text}");
    assert!(text.contains("keepalive_interval = \"5m\""), "{text}");
    assert!(
        text.contains("connection_limit = 500    # Lync's default"),
        "{text}"
    );
    let show = ok(
        bin,
        &dir,
        &[&["partner", "show", "--domain", "jabber.org"][..], &c].concat(),
    );
    assert!(
        show.lines()
            .any(|l| l.starts_with("connection_limit") && l.ends_with(" 5")),
        "{show}"
    );
    assert!(show.contains("Jabber.org, since 2012"), "{show}");
    assert!(
        show.lines()
            .any(|l| l.starts_with("additional_domains") && l.ends_with(" muc.jabber.org")),
        "{show}"
    );
    let access = ok(bin, &dir, &[&["access", "list"][..], &c].concat());
    assert!(
        access.contains("1  mallory@sales.example.com  false"),
        "{access}"
    );
    assert!(!access.contains("*@sales"), "{access}");
    let gateway = ok(bin, &dir, &[&["gateway", "show"][..], &c].concat());
    assert!(
        gateway
            .lines()
            .any(|l| l.starts_with("connection_limit ") && l.ends_with(" 500")),
        "{gateway}"
    );
}

fn invalid_edits_leave_the_file_untouched(bin: &str) {
    let dir = deployment(&format!("admin-edit-refused-{bin}"));
    let c = ["--config", "xfed.toml"];
    let refused: [(&[&str], &str); 4] = [
        // Lync's matrix: no way to authenticate.
        (
            &[
                "partner",
                "set",
                "--domain",
                "jabber.org",
                "--sasl",
                "not-supported",
                "--dialback",
                "false",
            ],
            "no way to authenticate",
        ),
        (
            &["gateway", "set", "--keepalive-interval", "soon"],
            "not a duration",
        ),
        (
            &["gateway", "set", "--connection-limit", "0"],
            "positive number",
        ),
        (
            &["partner", "add", "--domain", "jabber.org"],
            "partner already",
        ),
    ];
    for (args, why) in refused {
        let (success, out) = xfed(bin, &dir, &[args, &c].concat());
        assert!(!success, "{args:?} was accepted:\n{out}");
        assert!(out.contains(why), "{args:?}: {why}:\n{out}");
        assert!(out.contains("xfed.toml is unchanged"), "{args:?}: {out}");
        assert_eq!(read(&dir), FILE, "{args:?}");
    }
    // A certificate that does not name a new local domain fails `xfed check`, so the edit too.
    let (success, out) = xfed(
        bin,
        &dir,
        &[
            &["gateway", "set", "--domains", "example.com,other.example"][..],
            &c,
        ]
        .concat(),
    );
    assert!(
        !success && out.contains("does not name other.example"),
        "{out}"
    );
    assert_eq!(read(&dir), FILE);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("xfed-edit"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// `Get-CsXmppAllowedPartner | Format-List` and
/// `Get-CsXmppGatewayConfiguration | Format-List` as saved from a Lync
/// 2013 Management Shell with `>`: UTF-16LE with a byte order mark.
const LYNC: &str = "
Identity                   : jabber.org
Domain                     : jabber.org
AdditionalDomains          : {conference.jabber.org, muc.jabber.org,
                             chat.jabber.org}
PartnerType                : Federated
ProxyFqdn                  :
TlsNegotiation             : Required
SaslNegotiation            : Optional
SupportDialbackNegotiation : True
EnableKeepAlive            : True
ConnectionLimit            : 0
Description                : Our partner since 2012

Identity                   : gmail.com
Domain                     : gmail.com
AdditionalDomains          : {}
PartnerType                : PublicUnverified
ProxyFqdn                  : xmpp-server.l.google.com
TlsNegotiation             : NotSupported
SaslNegotiation            : NotSupported
SupportDialbackNegotiation : True
EnableKeepAlive            : False
ConnectionLimit            : 10
Description                :



Identity                      : Global
ConnectionLimit               : 1200
PartnerConnectionLimit        : 20
StreamEstablishmentTimeout    : 60
StreamInactivityTimeout       : 600
KeepAliveInterval             : 300
SubscriptionRefreshInterval   : 28800
DialbackPassphrase            : ********
EnableLoggingAllMessageBodies : False
";

fn import_lync_passes_check(bin: &str) {
    let dir = deployment(&format!("admin-edit-lync-{bin}"));
    let mut bytes = vec![0xFF, 0xFE];
    for unit in LYNC.replace('\n', "\r\n").encode_utf16() {
        bytes.extend(unit.to_le_bytes());
    }
    std::fs::write(dir.join("lync.txt"), bytes).unwrap();
    let out = ok(
        bin,
        &dir,
        &[
            "import-lync",
            "lync.txt",
            "--domains",
            "example.com",
            "--output",
            "imported.toml",
        ],
    );
    assert!(out.contains("imported 2 partner(s)"), "{out}");
    let toml = std::fs::read_to_string(dir.join("imported.toml")).unwrap();
    // It may hold the dialback secret: not for everyone's eyes.
    let mode = std::fs::metadata(dir.join("imported.toml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o007, 0, "{mode:o}");
    for expected in [
        "domain = \"jabber.org\"",
        "additional_domains = [\"conference.jabber.org\", \"muc.jabber.org\", \"chat.jabber.org\"]",
        "tls = \"not-supported\"",
        "connect = \"xmpp-server.l.google.com\"",
        "connection_limit = 1200",
        // What could not be carried over, and why.
        "# Not carried over: partner jabber.org: ConnectionLimit \"0\" would refuse every stream",
        "DialbackPassphrase is not in the output (masked)",
    ] {
        assert!(toml.contains(expected), "{expected}:\n{toml}");
    }
    let check = ok(bin, &dir, &["check", "--config", "imported.toml"]);
    assert!(check.contains("imported.toml: OK"), "{check}");
    let list = ok(bin, &dir, &["partner", "list", "--config", "imported.toml"]);
    assert!(list.contains("2 partner(s)"), "{list}");
    // An existing file is not overwritten.
    let (success, out) = xfed(
        bin,
        &dir,
        &[
            "import-lync",
            "lync.txt",
            "--domains",
            "example.com",
            "-o",
            "xfed.toml",
        ],
    );
    assert!(!success && out.contains("must be a new file"), "{out}");
    assert_eq!(read(&dir), FILE);
}

/// A change to a running instance's file sends it `reload` through its
/// admin socket, and the command reports the instance's answer.
fn running_instance_is_asked_to_reload(bin: &str) {
    let (a, _b) = deployments(&format!("admin-edit-reload-{bin}"));
    let mut xa = start(bin, &a);
    let (success, out) = xfed(
        bin,
        &a.dir,
        &[
            "partner",
            "set",
            "--config",
            "xfed.toml",
            "--domain",
            "b.test",
            "--description",
            "the other lab",
        ],
    );
    assert!(out.contains("xfed.toml: written"), "{out}");
    assert!(!out.contains("no running instance"), "{out}");
    // The instance reloads and says what changed.
    assert!(success, "{out}\n{}", xa.log_text());
    assert!(
        out.contains("reloaded") && out.contains("partner b.test changed"),
        "{out}"
    );
    xa.wait_log("configuration reloaded: partner b.test changed", WAIT);
    let text = std::fs::read_to_string(a.dir.join("xfed.toml")).unwrap();
    assert!(text.contains("description = \"the other lab\""), "{text}");
}

#[test]
fn edits_keep_comments_and_pass_check_both_runtimes() {
    for bin in BINARIES {
        edits_keep_comments_and_pass_check(bin);
    }
}

#[test]
fn invalid_edits_leave_the_file_untouched_both_runtimes() {
    for bin in BINARIES {
        invalid_edits_leave_the_file_untouched(bin);
    }
}

#[test]
fn import_lync_passes_check_both_runtimes() {
    for bin in BINARIES {
        import_lync_passes_check(bin);
    }
}

#[test]
fn running_instance_is_asked_to_reload_tokio() {
    running_instance_is_asked_to_reload("xfed");
}

#[test]
fn running_instance_is_asked_to_reload_async_std() {
    running_instance_is_asked_to_reload("xfed-async-std");
}
