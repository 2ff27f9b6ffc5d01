//! The status page of `[listen] metrics` (issue 12) in a real browser:
//! Debian's Prosody serving prosody.test federates with xfed.test (dialback
//! over TLS, self-signed certificates; Prosody pings xfed, so the streams
//! both ways are authenticated), then Debian's headless Chromium loads
//! `http://127.0.0.1:PORT/` and the DOM it built must show prosody.test as
//! an up partner with an authenticated inbound stream; a screenshot is kept
//! under the target directory (`artifacts/status_page-BIN.png`). Both
//! runtimes. Fails under CI=true without Prosody or Chromium; skips
//! elsewhere.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xfed_tests::prosody::{
    find_peer_binary, prosody_for_xfed, write_dialback_certs, Prosody, Skip,
};
use xfed_tests::{free_port, require_peer, temp_dir, write_config, Instance, PartnerSpec};

/// How long Chromium may take to load and dump (or shoot) the page.
const BROWSER_TIME: Duration = Duration::from_secs(60);

/// Debian's Chromium (or `XFED_CHROMIUM`).
fn chromium() -> Result<PathBuf, Skip> {
    find_peer_binary("XFED_CHROMIUM", "chromium", &["/usr/bin"], "chromium")
}

/// Runs headless Chromium on `url` with `args` (`--dump-dom`,
/// `--screenshot=...`) in a fresh profile; its standard output.
fn browse(chromium: &Path, dir: &Path, url: &str, args: &[String]) -> String {
    let profile = dir.join(format!("chromium-profile-{}", free_port()));
    std::fs::create_dir_all(&profile).unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + BROWSER_TIME;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    let _ = std::fs::remove_dir_all(&profile);
    match status {
        Some(s) if s.success() => out,
        Some(s) => panic!("chromium {args:?} failed ({s}):\n{err}"),
        None => panic!("chromium {args:?} took more than {BROWSER_TIME:?}:\n{err}"),
    }
}

/// The target directory this test runs from (its executable is in
/// `TARGET/debug/deps`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .nth(3)
        .expect("the target directory")
        .to_path_buf()
}

/// The opening tag of the first element with `needle` in it, or `None`.
fn tag_with<'a>(dom: &'a str, needle: &str) -> Option<&'a str> {
    let at = dom.find(needle)?;
    let start = dom[..at].rfind('<')?;
    let end = at + dom[at..].find('>')?;
    Some(&dom[start..=end])
}

fn status_page(bin: &str, prosody_ip: u8) {
    let chromium = require_peer!(chromium());
    let name = format!("status-page-{bin}");
    let dir = temp_dir(&name);
    write_dialback_certs(&dir, "xfed.test", "prosody.test");
    let xfed_port = free_port();
    let options = prosody_for_xfed(&dir, prosody_ip, xfed_port);
    let partner = PartnerSpec {
        domain: "prosody.test",
        connect: options.s2s_addr().to_string(),
        tls: "required",
        sasl: "not-supported",
        dialback: true,
    };
    write_config(&dir, "xfed.test", xfed_port, free_port(), &[partner]);
    let page = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let path = dir.join("xfed.toml");
    let toml = std::fs::read_to_string(&path).unwrap();
    assert!(toml.contains("metrics = false\n"));
    std::fs::write(
        &path,
        toml.replace("metrics = false\n", &format!("metrics = \"{page}\"\n")),
    )
    .unwrap();

    let prosody = require_peer!(Prosody::start(options));
    let mut xfed = Instance::start(bin, &["run", "--config", "xfed.toml"], &dir);
    let url = format!("http://{page}/");

    // Before any stream: the partner is down.
    let dom = browse(&chromium, &dir, &url, &["--dump-dom".into()]);
    let row = tag_with(&dom, "data-domain=\"prosody.test\"")
        .unwrap_or_else(|| panic!("no partner row for prosody.test:\n{dom}"));
    assert!(row.contains("data-state=\"down\""), "{row}");

    prosody
        .ping("prosody.test", "xfed.test")
        .unwrap_or_else(|e| {
            panic!(
                "{e}\n--- xfed:\n{}\n--- prosody:\n{}",
                xfed.log_text(),
                prosody.diagnostics()
            )
        });
    xfed.wait_log(
        "inbound stream authenticated: prosody.test -> xfed.test by Dialback",
        Duration::from_secs(5),
    );

    let dom = browse(&chromium, &dir, &url, &["--dump-dom".into()]);
    let mut diag = || format!("{dom}\n--- xfed:\n{}", xfed.log_text());
    assert!(
        dom.contains("<meta http-equiv=\"refresh\" content=\"5\">"),
        "{dom}"
    );
    assert!(
        dom.contains("<p id=\"domains\">xfed.test</p>"),
        "{}",
        diag()
    );
    let row = tag_with(&dom, "data-domain=\"prosody.test\"").expect("partner row");
    assert!(row.contains("data-state=\"up\""), "{row}\n{}", diag());
    // Prosody's stream in, authenticated by dialback over TLS 1.3.
    let stream = tag_with(&dom, "data-direction=\"inbound\"")
        .unwrap_or_else(|| panic!("no inbound stream:\n{}", diag()));
    assert!(stream.contains("data-method=\"dialback\""), "{stream}");
    assert!(stream.contains("data-tls=\"TLSv1_3\""), "{stream}");
    assert!(stream.contains("data-established=\"true\""), "{stream}");
    assert!(
        dom.contains("<span class=\"pair\">prosody.test → xfed.test</span>"),
        "{}",
        diag()
    );
    // Our certificate's expiry is shown.
    let cert = tag_with(&dom, "id=\"certificate\"").expect("certificate card");
    assert!(cert.contains("data-expiry=\""), "{cert}");

    // The screenshot, kept for a look.
    let artifacts = target_dir().join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join(format!("status_page-{bin}.png"));
    let _ = std::fs::remove_file(&png);
    browse(
        &chromium,
        &dir,
        &url,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,900".into(),
        ],
    );
    let bytes = std::fs::read(&png).expect("the screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(bytes.len() > 10_000, "{} bytes: a blank page?", bytes.len());
    println!("status page screenshot: {}", png.display());
    assert!(xfed.terminate(), "{bin} did not exit cleanly on SIGTERM");
}

#[test]
fn status_page_tokio() {
    status_page("xfed", 121);
}

#[test]
fn status_page_async_std() {
    status_page("xfed-async-std", 122);
}
