#!/usr/bin/python3
"""A minimal SIP user agent for trying xfed by hand (standard library only).

    sip_client.py AOR [--server 127.0.0.1:5060] [--password P] [--to URI --text TEXT]
                      [--listen SECS]

Over UDP: REGISTERs AOR (e.g. alice@localhost) with the server, answering
a digest challenge (MD5 or SHA-256) when --password is given; then sends
one MESSAGE to --to (e.g. sip:bob@xmpp.test) if asked; then prints every
MESSAGE it receives for --listen seconds, answering each with 200 OK.
Ends by unregistering. Enough to see xfed's registrar and translation
work; use a real softphone (Linphone, baresip, ...) for anything else.
"""

import argparse
import hashlib
import random
import re
import socket
import sys
import time


def rand(n=10):
    return "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


class Agent:
    def __init__(self, aor, server, password):
        self.aor = aor
        self.user, self.domain = aor.split("@", 1)
        host, port = server.rsplit(":", 1)
        self.server = (host, int(port))
        self.password = password
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.local = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.call_id = rand(16) + "@" + self.local
        self.cseq = 0
        self.tag = rand(8)

    def request(self, method, uri, to, extra=(), body=b""):
        self.cseq += 1
        lines = [
            "%s %s SIP/2.0" % (method, uri),
            "Via: SIP/2.0/UDP %s;branch=z9hG4bK%s;rport" % (self.local, rand()),
            "Max-Forwards: 70",
            "From: <sip:%s>;tag=%s" % (self.aor, self.tag),
            "To: <%s>" % to,
            "Call-ID: %s" % (self.call_id if method == "REGISTER" else rand(16)),
            "CSeq: %d %s" % (self.cseq, method),
            "User-Agent: xfed sip_client.py",
        ] + list(extra) + ["Content-Length: %d" % len(body), "", ""]
        return "\r\n".join(lines).encode() + body

    def exchange(self, method, uri, to, extra=(), body=b""):
        """Sends a request, answers one digest challenge; returns the final status."""
        auth = []
        for _ in range(2):
            self.sock.sendto(self.request(method, uri, to, list(extra) + auth, body), self.server)
            status, headers = self.final_response()
            if status in (401, 407) and self.password and not auth:
                auth = [self.authorization(method, uri, status, headers)]
                continue
            return status
        return status

    def final_response(self):
        self.sock.settimeout(5)
        while True:
            data, peer = self.sock.recvfrom(65535)
            text = data.decode("utf-8", "replace")
            if text.startswith("SIP/2.0 "):
                status = int(text.split()[1])
                print("<-", text.split("\r\n", 1)[0], flush=True)
                if status >= 200:
                    return status, text
            else:
                self.answer(text, peer)

    def authorization(self, method, uri, status, text):
        name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
        challenges = re.findall(r"(?im)^%s:\s*Digest (.*)$" % name, text)
        params = {}
        for c in challenges:
            p = dict(re.findall(r'(\w+)="?([^",]*)"?', c))
            if not params or p.get("algorithm", "MD5").upper() == "SHA-256":
                params = p
        algorithm = params.get("algorithm", "MD5")
        h = (lambda s: hashlib.sha256(s.encode()).hexdigest()) if algorithm.upper() == "SHA-256" \
            else (lambda s: hashlib.md5(s.encode()).hexdigest())
        ha1 = h("%s:%s:%s" % (self.user, params["realm"], self.password))
        ha2 = h("%s:%s" % (method, uri))
        cnonce, nc = rand(), "00000001"
        response = h("%s:%s:%s:%s:auth:%s" % (ha1, params["nonce"], nc, cnonce, ha2))
        header = "Authorization" if status == 401 else "Proxy-Authorization"
        return ('%s: Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
                'algorithm=%s, qop=auth, nc=%s, cnonce="%s"%s') % (
            header, self.user, params["realm"], params["nonce"], uri, response, algorithm, nc,
            cnonce, ', opaque="%s"' % params["opaque"] if "opaque" in params else "")

    def answer(self, text, peer):
        head, _, body = text.partition("\r\n\r\n")
        first = head.split("\r\n", 1)[0]
        if not first.startswith("MESSAGE "):
            return
        headers = head.split("\r\n")[1:]
        sender = next((h.split(":", 1)[1].strip() for h in headers
                       if h.lower().startswith(("from:", "f:"))), "?")
        print("MESSAGE from %s: %s" % (sender, body), flush=True)
        keep = [h for h in headers
                if h.lower().split(":", 1)[0] in ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq")]
        keep = [h + ";tag=" + rand(8) if h.lower().startswith(("to:", "t:")) and ";tag=" not in h else h
                for h in keep]
        reply = "\r\n".join(["SIP/2.0 200 OK"] + keep + ["Content-Length: 0", "", ""])
        self.sock.sendto(reply.encode(), peer)

    def register(self, expires):
        contact = "Contact: <sip:%s@%s>" % (self.user, self.local)
        return self.exchange("REGISTER", "sip:" + self.domain, "sip:" + self.aor,
                             [contact, "Expires: %d" % expires])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("aor")
    ap.add_argument("--server", default="127.0.0.1:5060")
    ap.add_argument("--password")
    ap.add_argument("--to")
    ap.add_argument("--text", default="Hello from SIP")
    ap.add_argument("--listen", type=float, default=30)
    a = ap.parse_args()
    ua = Agent(a.aor, a.server, a.password)
    status = ua.register(600)
    if status != 200:
        print("REGISTER failed: %d" % status)
        return 1
    print("registered %s at %s" % (a.aor, ua.local), flush=True)
    if a.to:
        body = a.text.encode()
        status = ua.exchange("MESSAGE", a.to, a.to, ["Content-Type: text/plain;charset=UTF-8"], body)
        print("MESSAGE to %s: %d" % (a.to, status), flush=True)
    end = time.time() + a.listen
    ua.sock.settimeout(0.5)
    while time.time() < end:
        try:
            data, peer = ua.sock.recvfrom(65535)
        except socket.timeout:
            continue
        ua.answer(data.decode("utf-8", "replace"), peer)
    ua.register(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
