#!/usr/bin/python3
"""A minimal, fast XMPP receiver for load runs (tests/benches/sip_e2e.rs):
a raw socket client with the standard library only (no slixmpp), so that
it is not the bottleneck.

    xmpp_count.py JID PASSWORD HOST PORT COUNT [--timeout SECS] [--idle SECS]

Logs in over plain TCP (SASL PLAIN without TLS: the server must allow it),
binds resource "bench", sends presence and prints "ready". Then it reads
<message/>s whose body is "bench RUN N DATE<TAB>TIME<TAB>UNIX" (what
tests/peers/sipp/uac_bench_message.xml sends): it prints "warm N" at once
for RUN "warmup", and records (N, UNIX, arrival time) for RUN "main" until
COUNT of them have arrived, the lifetime (--timeout, default 120 s) ends,
or none came for --idle seconds (default 10) after the first. Then it
prints one line "m N SENT RECEIVED" per message (unix seconds) and
"done COUNT", and exits. Other messages are counted ("other N" at the end).
Errors: "failed WHY" and exit status 1.
"""

import argparse
import base64
import socket
import sys
import time
import xml.etree.ElementTree as ET

NS_STREAM = "http://etherx.jabber.org/streams"
NS_CLIENT = "jabber:client"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Stream:
    """The server's side of one stream: top-level elements, in order."""

    def __init__(self, sock, deadline):
        self.sock = sock
        self.deadline = deadline
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.ready = []

    def restart(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.ready = []

    def feed(self, data):
        self.parser.feed(data)
        for event, el in self.parser.read_events():
            if event == "start":
                self.depth += 1
            else:
                self.depth -= 1
                if self.depth == 1:
                    self.ready.append(el)
                elif self.depth == 0:
                    raise EOFError("stream closed by the server")

    def next(self, timeout=None):
        """The next top-level element (None: timeout)."""
        end = self.deadline if timeout is None else min(self.deadline, time.time() + timeout)
        while not self.ready:
            left = end - time.time()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not data:
                raise EOFError("connection closed by the server")
            self.feed(data)
        return self.ready.pop(0)


def header(domain):
    return (
        "<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
        "xmlns:stream='%s' version='1.0'>" % (domain, NS_STREAM)
    ).encode()


def expect(stream, tag, what):
    el = stream.next(15)
    if el is None:
        raise RuntimeError("no %s within 15 s" % what)
    if el.tag != tag:
        raise RuntimeError("%s expected, got %s %s" % (what, el.tag, ET.tostring(el)[:300]))
    return el


def login(jid, password, host, port, deadline):
    """Connects and logs in as JID (SASL PLAIN, resource "bench", initial
    presence): the socket and its Stream. Raises on failure."""
    user, domain = jid.split("@", 1)
    sock = socket.create_connection((host, port), timeout=15)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s = Stream(sock, deadline)
    sock.sendall(header(domain))
    expect(s, "{%s}features" % NS_STREAM, "stream features")
    token = base64.b64encode(("\0%s\0%s" % (user, password)).encode()).decode()
    sock.sendall(("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token)).encode())
    expect(s, "{%s}success" % NS_SASL, "SASL success")
    s.restart()
    sock.sendall(header(domain))
    expect(s, "{%s}features" % NS_STREAM, "stream features after SASL")
    sock.sendall(
        (
            "<iq type='set' id='bind1'><bind xmlns='%s'><resource>bench</resource>"
            "</bind></iq>" % NS_BIND
        ).encode()
    )
    iq = expect(s, "{%s}iq" % NS_CLIENT, "bind result")
    if iq.get("type") != "result":
        raise RuntimeError("bind failed: %s" % ET.tostring(iq)[:300])
    sock.sendall(b"<presence/>")
    return sock, s


def main():
    p = argparse.ArgumentParser()
    p.add_argument("jid")
    p.add_argument("password")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("count", type=int)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--idle", type=float, default=10.0)
    a = p.parse_args()
    deadline = time.time() + a.timeout
    try:
        sock, s = login(a.jid, a.password, a.host, a.port, deadline)
    except (RuntimeError, EOFError, OSError) as e:
        out("failed %s" % e)
        return 1
    out("ready")

    got = []
    other = 0
    first = None
    body_tag = "{%s}body" % NS_CLIENT
    message_tag = "{%s}message" % NS_CLIENT
    try:
        while len(got) < a.count:
            idle = a.idle if first is not None else None
            el = s.next(idle)
            if el is None:
                break
            now = time.time()
            if el.tag != message_tag:
                continue
            body = el.findtext(body_tag) or ""
            parts = body.split(" ", 3)
            if len(parts) == 4 and parts[0] == "bench":
                if parts[1] == "warmup":
                    out("warm %s" % parts[2])
                    continue
                try:
                    sent = float(parts[3].rsplit("\t", 1)[-1])
                except ValueError:
                    sent = 0.0
                got.append((parts[2], sent, now))
                if first is None:
                    first = now
            else:
                other += 1
            el.clear()
    except (EOFError, OSError) as e:
        out("disconnected %s" % e)
    lines = ["m %s %.6f %.6f" % g for g in got]
    sys.stdout.write("\n".join(lines) + ("\n" if lines else ""))
    out("other %d" % other)
    out("done %d" % len(got))
    try:
        sock.sendall(b"</stream:stream>")
        sock.close()
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
