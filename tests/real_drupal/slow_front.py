"""A small front for the real-Drupal tier, in the shape of a modest PHP-FPM site:

- `workers`: at most this many requests are in Drupal at once; the others wait in line, as
  in PHP-FPM's listen queue (Debian's `pm.max_children` is 5);
- `write_delay`: every write (not GET/HEAD) holds its worker this much longer, as on a slow
  or loaded site (the issue measured ~0.3 s);
- `keep_alive`: a client connection idle this long is closed, as Apache does after its
  `KeepAliveTimeout` (5 s).

Each request goes to Drupal on a connection of its own. `counts` says how many requests
arrived, by method."""

from __future__ import annotations

import http.client
import http.server
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class SlowFront:
    def __init__(self, upstream: str, *, workers: int = 5, write_delay: float = 0.3, keep_alive: float = 5.0):
        u = urlsplit(upstream)
        self.upstream = (u.hostname or "127.0.0.1", u.port or 80)
        self.pool = threading.BoundedSemaphore(workers)
        self.write_delay = write_delay
        self.counts: Counter = Counter()
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = keep_alive  # an idle connection is closed after this

            def log_message(self, *args):  # quiet
                pass

            def _relay(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                front.counts[self.command] += 1
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                with front.pool:
                    if self.command not in ("GET", "HEAD"):
                        time.sleep(front.write_delay)
                    conn = http.client.HTTPConnection(*front.upstream, timeout=120)
                    try:
                        conn.request(self.command, self.path, body=body, headers=headers)
                        resp = conn.getresponse()
                        data = resp.read()
                        status, reason, out = resp.status, resp.reason, resp.getheaders()
                    finally:
                        conn.close()
                try:
                    self.send_response(status, reason)
                    for k, v in out:
                        if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                except OSError:
                    # The client gave up (Envoy's timeout) while Drupal worked: as with PHP,
                    # the work is done and the answer is lost.
                    self.close_connection = True

            do_GET = do_HEAD = do_POST = do_PATCH = do_PUT = do_DELETE = _relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "SlowFront":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

