"""A real HTTP file server with Range support on 127.0.0.1, counting the body bytes it sends."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.sent = 0
        self.requests = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self, n: int) -> None:
        with self.lock:
            self.sent += n
            self.requests += 1


class _Handler(BaseHTTPRequestHandler):
    server: RangeServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall per range request

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _target(self) -> Path | None:
        path = self.server.root / self.path.split("?", 1)[0].lstrip("/")
        return path if path.is_file() else None

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        target = self._target()
        if target is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(target.stat().st_size))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{target.stat().st_mtime_ns}"')
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        target = self._target()
        if target is None:
            self.send_error(404)
            return
        size = target.stat().st_size
        match = _RANGE.match(self.headers.get("Range", ""))
        if match:
            first, last = match.groups()
            if first == "":
                start, end = max(0, size - int(last)), size
            else:
                start, end = int(first), min(size, int(last) + 1 if last else size)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        else:
            start, end = 0, size
            self.send_response(200)
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        with open(target, "rb") as f:
            f.seek(start)
            remaining = end - start
            while remaining > 0:
                chunk = f.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    break
                remaining -= len(chunk)
                self.server.count(len(chunk))
        self.server.count(0)


@contextmanager
def serve(root: Path) -> Iterator[RangeServer]:
    server = RangeServer(root)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


__all__ = ["RangeServer", "serve"]
