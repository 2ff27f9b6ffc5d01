#!/usr/bin/python3
"""A minimal, fast XMPP sender for load runs (tests/benches/compare.rs),
the counterpart of xmpp_count.py (whose login it uses):

    xmpp_send.py JID PASSWORD HOST PORT TO

Logs in over plain TCP, prints "ready", then for each line "RUN COUNT
RATE" on standard input sends COUNT <message type='chat'/>s to TO, RATE a
second (in 10 ms batches), each with the body "bench RUN N DATE<TAB>TIME
<TAB>UNIX" that xmpp_count.py and sipp's trace read, and prints "sent RUN
COUNT SECONDS". Stops at the end of standard input. What the server sends
meanwhile is read and dropped (errors are counted: "errors N" at the end).
Errors: "failed WHY" and exit status 1.
"""

import sys
import time

from xmpp_count import login, out


def escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def drain(sock):
    """Reads what is there without waiting; the number of errors in it."""
    sock.setblocking(False)
    errors = 0
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                raise EOFError("connection closed by the server")
            errors += data.count(b"type='error'") + data.count(b'type="error"')
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)
    return errors


def main():
    if len(sys.argv) != 6:
        out("failed usage: xmpp_send.py JID PASSWORD HOST PORT TO")
        return 1
    jid, password, host, port, to = sys.argv[1:]
    try:
        sock, _ = login(jid, password, host, int(port), time.time() + 3600)
    except (RuntimeError, EOFError, OSError) as e:
        out("failed %s" % e)
        return 1
    out("ready")
    errors = 0
    head = "<message type='chat' to='%s' id='b%%d'><body>" % escape(to)
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 3:
            continue
        run, count, rate = parts[0], int(parts[1]), max(1, int(parts[2]))
        start = time.time()
        n = 0
        while n < count:
            due = min(count, int((time.time() - start) * rate) + 1)
            batch = []
            while n < due:
                n += 1
                now = time.time()
                stamp = time.strftime("%Y-%m-%d\t%H:%M:%S", time.localtime(now))
                body = "bench %s %d %s\t%.6f" % (run, n, stamp, now)
                batch.append((head % n) + escape(body) + "</body></message>")
            try:
                sock.sendall("".join(batch).encode())
                errors += drain(sock)
            except (EOFError, OSError) as e:
                out("failed %s" % e)
                return 1
            time.sleep(0.01)
        out("sent %s %d %.3f" % (run, count, time.time() - start))
    out("errors %d" % errors)
    try:
        sock.sendall(b"</stream:stream>")
        sock.close()
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
