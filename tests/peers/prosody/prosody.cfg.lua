-- Prosody 0.12 (Debian 12's package) as a loopback test peer of xfed.
--
-- A template: xfed-tests (tests/src/prosody.rs) replaces each placeholder (a
-- name in double braces) with a Lua value and writes the result into a fresh
-- temporary folder per instance.
-- Run by hand (as the harness does):  prosody -F --config $DIR/prosody.cfg.lua
-- Admin shell:  prosodyctl --config $DIR/prosody.cfg.lua shell "s2s:show()"

-- Tests run as root in CI. Without this, prosody refuses to start as root
-- (mod_posix) and prosodyctl switches to the 'prosody' user, which cannot
-- read the temporary folder. Harmless when not root.
run_as_root = true
data_path = {{DATA_PATH}}
pidfile = {{PID_FILE}}
admin_socket = {{ADMIN_SOCKET}}     -- for 'prosodyctl --config ... shell'
certificates = {{CERT_DIR}}         -- an empty folder: never /etc/prosody/certs
plugin_paths = { {{PLUGIN_DIR}} }   -- mod_xfed_guard.lua

-- mod_xfed_guard: shut down when the test process is gone (stdin pipe EOF)
-- or after xfed_max_lifetime seconds, so no test peer outlives its test.
xfed_watch_stdin = {{WATCH_STDIN}}
xfed_max_lifetime = {{MAX_LIFETIME}}

-- Loopback only, on ports chosen by the harness (never 5222/5269/5347).
interfaces = { {{IP}} }
c2s_ports = { {{C2S_PORT}} }
s2s_ports = { {{S2S_PORT}} }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { {{S2S_DIRECT_TLS_PORTS}} }
component_interfaces = { {{IP}} }
component_ports = { {{COMPONENT_PORTS}} }
use_ipv6 = {{USE_IPV6}}               -- on only when a route or the listener is IPv6

modules_enabled = {
  "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "posix";
  "admin_shell";                    -- xmpp:ping(), s2s:show(), s2s:close() through prosodyctl shell
  "xfed_guard";
  {{EXTRA_MODULES}}
}
-- Debian's stock config also loads mod_limits (rate limits); not here on purpose.

authentication = "internal_plain"
storage = "internal"
allow_registration = false
c2s_require_encryption = false      -- test clients may use plain TCP
allow_unencrypted_plain_auth = true

-- s2s policy under test
s2s_require_encryption = {{S2S_REQUIRE_ENCRYPTION}}
s2s_secure_auth = {{S2S_SECURE_AUTH}}
s2s_secure_domains = { {{S2S_SECURE_DOMAINS}} }
s2s_insecure_domains = { {{S2S_INSECURE_DOMAINS}} }
s2s_timeout = {{S2S_TIMEOUT}}       -- seconds for an outgoing connection to be set up

-- Certificates given by the test (PEM). cafile: whom we trust, e.g. the test
-- CA that signed xfed's certificate (for SASL EXTERNAL).
ssl = {
  {{SSL}}
}

-- DNS: libunbound (Debian package lua-unbound), forwarding every query to
-- the test's own DNS responder on loopback, which answers SRV/A for the
-- routes of this instance and NXDOMAIN for everything else. Never the
-- system resolver (resolvconf = false), never a hosts file (hoststxt = false).
unbound = {
  hoststxt = false;
  resolvconf = false;
  forward = {{DNS_FORWARD}};        -- "127.0.0.1@PORT"
  options = {
    -- libunbound answers every *.test name NXDOMAIN itself (a built-in
    -- static zone); 'transparent' lets queries for them reach the forwarder.
    ["local-zone:"] = "test. transparent";
    ["do-not-query-localhost:"] = "no";
  };
}

log = {
  { levels = { min = {{LOG_LEVEL}} }, to = "file", filename = {{LOG_FILE}} };
  { levels = { min = "error" }, to = "console" };
}

{{EXTRA_GLOBAL}}

VirtualHost {{DOMAIN}}
{{EXTRA_HOST}}

{{COMPONENTS}}
