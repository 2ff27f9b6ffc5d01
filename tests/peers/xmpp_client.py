#!/usr/bin/python3
"""A scriptable XMPP client for xfed's interop tests (slixmpp, Debian's
python3-slixmpp 1.8.3; also works with newer slixmpp).

    xmpp_client.py JID PASSWORD HOST PORT [--timeout SECS] [--resource R]

Logs in to the c2s listener at HOST:PORT (an IP literal; no DNS lookup is
ever made) over plain TCP: no STARTTLS, no direct TLS, SASL PLAIN or SCRAM
without encryption (the server must allow it: Prosody's
`c2s_require_encryption = false`, `allow_unencrypted_plain_auth = true`).

Commands, one JSON object per line on stdin:

    {"send": {"to": "...", "body": "...", "type": "chat", "id": "...",
              "thread": "...", "subject": "...", "lang": "...",
              "chatstate": "composing"}}      every field but "to" optional
    {"raw": "<message .../>"}                 any XML, sent as is
    {"presence": {"to": "...", "type": "subscribe", "show": "away",
                  "status": "...", "priority": 5}}  every field optional; no
                                              "to": broadcast (availability)
    {"roster": true}                          fetches the roster (RFC 6121
                                              section 2.2: only then is this
                                              an "interested resource", which
                                              Prosody gives subscribed and
                                              unsubscribed to)
    {"subscriptions": "manual" | "auto"}      slixmpp's roster answers
                                              subscription requests itself
                                              ("auto", the default: approve
                                              and subscribe back) or never
                                              ("manual": the test answers)
    {"quit": true}

Events, one JSON object per line on stdout (flushed at once):

    {"ready": true, "jid": "bob@prosody.test/res"}  session started, presence sent
    {"sent": {"id": "..."}}                         after each send
    {"message": {"from", "to", "type", "id", "body", "thread", "subject",
                 "lang", "error": {"type", "condition", "text"} | null,
                 "chatstate": "active" | ... | null}}   every received <message/>
    {"presence": {"from", "to", "type", "id", "show", "status", "priority",
                  "error": {...} | null}}        every received <presence/>
    {"failed": "why"}            login or connection failed (exit status 1)
    {"disconnected": "why"}      the server closed the stream
    {"timeout": SECS}            the lifetime ran out (exit status 2)
    {"bye": true}                after quit, or stdin closed (exit status 0)

The process always ends by itself: after --timeout seconds (default 60),
when stdin closes (the test process is gone), or after quit.
"""

import argparse
import asyncio
import json
import logging
import os
import sys
import threading
import xml.etree.ElementTree as ET

from slixmpp import ClientXMPP
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

NS_CLIENT = "jabber:client"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_XML = "http://www.w3.org/XML/1998/namespace"


def emit(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def child_text(xml, name):
    el = xml.find("{%s}%s" % (NS_CLIENT, name))
    return None if el is None else (el.text or "")


def describe_error(xml):
    """The <error/> child of a stanza as a dict, or None."""
    err = xml.find("{%s}error" % NS_CLIENT)
    if err is None:
        return None
    condition, text = None, None
    for c in err:
        if c.tag == "{%s}text" % NS_STANZAS:
            text = c.text or ""
        elif c.tag.startswith("{%s}" % NS_STANZAS) and condition is None:
            condition = c.tag.split("}", 1)[1]
    return {"type": err.get("type"), "condition": condition, "text": text}


def describe_presence(xml):
    """The event for one received <presence/> element."""
    return {
        "from": xml.get("from"),
        "to": xml.get("to"),
        "type": xml.get("type"),
        "id": xml.get("id"),
        "show": child_text(xml, "show"),
        "status": child_text(xml, "status"),
        "priority": child_text(xml, "priority"),
        "error": describe_error(xml),
    }


def describe(xml):
    """The event for one received <message/> element."""
    error = describe_error(xml)
    chatstate = None
    for c in xml:
        if c.tag.startswith("{%s}" % NS_CHATSTATES):
            chatstate = c.tag.split("}", 1)[1]
            break
    return {
        "from": xml.get("from"),
        "to": xml.get("to"),
        "type": xml.get("type"),
        "id": xml.get("id"),
        "lang": xml.get("{%s}lang" % NS_XML),
        "body": child_text(xml, "body"),
        "thread": child_text(xml, "thread"),
        "subject": child_text(xml, "subject"),
        "error": error,
        "chatstate": chatstate,
    }


class Client(ClientXMPP):
    def __init__(self, jid, password, host, port, done):
        # SASL PLAIN without TLS: off by default in slixmpp (1.8.3 and later).
        ClientXMPP.__init__(
            self,
            jid,
            password,
            plugin_config={"feature_mechanisms": {"unencrypted_plain": True}},
        )
        self.target = (host, port)
        self.done = done
        # Never resolve anything: 1.8.3 has no use_aiodns switch in
        # connect(); see get_dns_records below. Newer slixmpp reads these.
        self.use_aiodns = False
        self.use_ipv6 = ":" in host
        self.register_handler(
            Callback(
                "xfed-test any message",
                MatchXPath("{%s}message" % NS_CLIENT),
                lambda msg: emit({"message": describe(msg.xml)}),
            )
        )
        self.register_handler(
            Callback(
                "xfed-test any presence",
                MatchXPath("{%s}presence" % NS_CLIENT),
                lambda pres: emit({"presence": describe_presence(pres.xml)}),
            )
        )
        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("failed_auth", lambda _: self.finish(1, {"failed": "authentication failed"}))
        self.add_event_handler(
            "connection_failed", lambda e: self.finish(1, {"failed": "connection failed: %s" % e})
        )
        self.add_event_handler("disconnected", self.on_disconnected)
        self.add_event_handler("stream_error", lambda e: emit({"stream_error": str(e)}))

    async def get_dns_records(self, domain, port=None):
        # slixmpp 1.8.3 looks up the JID's domain (A/AAAA through the system
        # resolver) even when connect() is given an address: never do that,
        # always the IP literal we were given.
        host, port = self.target
        return [(host, host, port)]

    async def on_session_start(self, _event):
        self.send_presence()
        emit({"ready": True, "jid": str(self.boundjid)})

    def on_disconnected(self, reason):
        if not self.done.done():
            emit({"disconnected": str(reason) if reason else None})
            self.finish(1)

    def finish(self, code, event=None):
        """Ends the run with exit status `code` (the first call wins)."""
        if self.done.done():
            return
        if event is not None:
            emit(event)
        self.done.set_result(code)

    def start(self):
        host, port = self.target
        # 1.8.3: connect(address, use_ssl, force_starttls, disable_starttls).
        # Newer slixmpp (1.9+) dropped these for attributes:
        # enable_direct_tls, enable_starttls, enable_plaintext.
        self.enable_direct_tls = False
        self.enable_starttls = False
        self.enable_plaintext = True
        try:
            self.connect((host, port), use_ssl=False, force_starttls=False, disable_starttls=True)
        except TypeError:
            self.connect((host, port))

    def send_command(self, spec):
        to = spec["to"]
        msg = self.make_message(mto=to, mbody=spec.get("body"), mtype=spec.get("type", "chat"))
        if spec.get("id"):
            msg["id"] = spec["id"]
        if spec.get("thread"):
            msg["thread"] = spec["thread"]
        if spec.get("subject"):
            msg["subject"] = spec["subject"]
        if spec.get("lang"):
            msg["lang"] = spec["lang"]
        if spec.get("chatstate"):
            msg.xml.append(ET.Element("{%s}%s" % (NS_CHATSTATES, spec["chatstate"])))
        msg.send()
        emit({"sent": {"id": msg["id"]}})

    def burst_command(self, spec):
        """`count` chat messages to `to` at once, ids and bodies
        `{prefix}{n}`; one `sent` event (id `prefix`) when all are out."""
        prefix = spec["prefix"]
        for n in range(int(spec["count"])):
            msg = self.make_message(mto=spec["to"], mbody="%s%d" % (prefix, n), mtype="chat")
            msg["id"] = "%s%d" % (prefix, n)
            msg.send()
        emit({"sent": {"id": prefix}})

    def presence_command(self, spec):
        pres = self.make_presence(
            pshow=spec.get("show"),
            pstatus=spec.get("status"),
            ppriority=spec.get("priority"),
            pto=spec.get("to"),
            ptype=spec.get("type"),
        )
        if spec.get("id"):
            pres["id"] = spec["id"]
        pres.send()
        emit({"sent": {"id": pres["id"] or None, "presence": True}})

    async def roster_command(self):
        try:
            await self.get_roster()
            emit({"sent": {"id": None, "roster": len(self.client_roster)}})
        except Exception as e:
            emit({"bad_command": "roster", "why": repr(e)})

    def subscriptions_command(self, mode):
        # None: slixmpp's roster leaves subscription requests to us.
        auto = mode == "auto"
        self.auto_authorize = True if auto else None
        self.auto_subscribe = auto
        emit({"sent": {"id": None, "subscriptions": mode}})


def handle_line(client, line):
    """One command line from stdin (None: end of file)."""
    if client.done.done():
        return
    if line is None:
        client.finish(0, {"bye": True})
        return
    line = line.strip()
    if not line:
        return
    try:
        cmd = json.loads(line)
        if cmd.get("quit"):
            client.finish(0, {"bye": True})
        elif "send" in cmd:
            client.send_command(cmd["send"])
        elif "presence" in cmd:
            client.presence_command(cmd["presence"])
        elif "burst" in cmd:
            client.burst_command(cmd["burst"])
        elif cmd.get("roster"):
            asyncio.ensure_future(client.roster_command())
        elif "subscriptions" in cmd:
            client.subscriptions_command(cmd["subscriptions"])
        elif "raw" in cmd:
            client.send_raw(cmd["raw"])
            emit({"sent": {"raw": True}})
        else:
            emit({"bad_command": line})
    except Exception as e:  # a broken command must not end the client
        emit({"bad_command": line, "why": repr(e)})


def read_commands(client, loop):
    """A thread: stdin may be a pipe, a file or /dev/null, which asyncio's
    pipe reader does not all take."""
    for raw in sys.stdin.buffer:
        loop.call_soon_threadsafe(handle_line, client, raw.decode("utf-8", "replace"))
    loop.call_soon_threadsafe(handle_line, client, None)


async def main():
    p = argparse.ArgumentParser(description="scriptable XMPP client (JSON lines)")
    p.add_argument("jid")
    p.add_argument("password")
    p.add_argument("host", help="IP literal of the c2s listener")
    p.add_argument("port", type=int)
    p.add_argument("--timeout", type=float, default=60.0, help="lifetime in seconds")
    p.add_argument("--resource", default=None)
    p.add_argument("--debug", action="store_true", help="slixmpp's log on stderr")
    args = p.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    jid = args.jid if args.resource is None else "%s/%s" % (args.jid.split("/")[0], args.resource)
    client = Client(jid, args.password, args.host, args.port, done)
    client.start()
    threading.Thread(target=read_commands, args=(client, loop), daemon=True).start()
    try:
        code = await asyncio.wait_for(asyncio.shield(done), args.timeout)
    except asyncio.TimeoutError:
        client.finish(2, {"timeout": args.timeout})
        code = 2
    try:
        # Close the stream politely, but never wait long.
        client.disconnect(wait=0.5)
        await asyncio.wait_for(client.disconnected, 1.0)
    except Exception:
        pass
    return code


if __name__ == "__main__":
    try:
        code = asyncio.run(main())
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    # Skip interpreter clean-up of pending slixmpp tasks.
    os._exit(code)
