"""A look-alike of the Hugging Face Hub, a GitHub archive route and a plain file server, on
127.0.0.1, with faults injected on demand.

Routes (the parts provision uses):
  GET /api/models/<org>/<name>/revision/<rev>?blobs=true   -> {"sha", "siblings": [...]}
  GET /<org>/<name>/resolve/<rev>/<path>                   -> the file (Range supported)
  GET /gh/<owner>/<repo>/archive/<commit>.zip              -> a zip of the repo, like GitHub's
  GET /files/<path>                                        -> plain files
Faults: server.fault(path_suffix, kind, times=1) with kind in drop (half the body, then the
connection closes), 500, 429 (Retry-After: 0), 401, truncate (a shorter body, honest length),
wrong (same length, wrong bytes), stall (sleeps past the client's read timeout before it
answers), hang (half the body, then nothing for `hang_seconds` on an open connection: a stall
mid-transfer, longer than any stall timeout), norange (answers 200 with the whole file to a
Range request), slow (64 KB every 20 ms).
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import time
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class FakeRepo:
    repo: str
    commit: str
    files: dict[str, bytes]
    lfs_over: int = 100  # files larger than this are "LFS" (sha256), others carry a git blob id
    gated: bool = False

    def sibling(self, path: str) -> dict:
        data = self.files[path]
        s = {"rfilename": path, "size": len(data),
             "blobId": hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()}
        if len(data) > self.lfs_over:
            s["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return s


@dataclass
class State:
    repos: dict[str, FakeRepo] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    archives: dict[str, dict[str, bytes]] = field(default_factory=dict)  # "owner/repo@commit" -> files
    faults: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    hits: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bytes_sent: int = 0
    token: str | None = None  # gated repos need this bearer token
    stall_seconds: float = 3.0
    hang_seconds: float = 120.0
    stop: threading.Event = field(default_factory=threading.Event)  # set when the server shuts down
    lock: threading.Lock = field(default_factory=threading.Lock)


def archive_zip(repo: str, commit: str, files: dict[str, bytes]) -> bytes:
    top = f"{repo.split('/')[1]}-{commit}"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p, d in sorted(files.items()):
            z.writestr(zipfile.ZipInfo(f"{top}/{p}", date_time=(2024, 1, 1, 0, 0, 0)), d)
    return buf.getvalue()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: State

    def log_message(self, *a: object) -> None:
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (stall, kill): fine
            pass

    def _fault(self, path: str) -> str | None:
        with self.state.lock:
            self.state.hits[path] += 1
            for key, queue in self.state.faults.items():
                if path.endswith(key) and queue:
                    return queue.pop(0)
        return None

    def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with self.state.lock:
            self.state.bytes_sent += len(body)

    def do_GET(self) -> None:  # noqa: C901 - a router
        path = urlsplit(self.path).path
        fault = self._fault(path)
        if fault in ("500", "429", "401"):
            hdr = {"Retry-After": "0"} if fault == "429" else {}
            return self._send(int(fault), b'{"error": "injected"}', hdr)
        if fault == "stall":
            time.sleep(self.state.stall_seconds)
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and "revision" in parts:
            i = parts.index("revision")
            repo = self.state.repos.get("/".join(parts[2:i]))
            if repo is None:
                return self._send(404, b'{"error": "Repository not found"}')
            if repo.gated and self.headers.get("Authorization") != f"Bearer {self.state.token}":
                return self._send(401, b'{"error": "Access to model is restricted"}')
            info = {"id": repo.repo, "sha": repo.commit, "siblings": [repo.sibling(p) for p in sorted(repo.files)]}
            return self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})
        if "resolve" in parts:
            i = parts.index("resolve")
            repo = self.state.repos.get("/".join(parts[:i]))
            fname = "/".join(parts[i + 2:])
            if repo is None or fname not in repo.files:
                return self._send(404, b"Entry not found")
            if repo.gated and self.headers.get("Authorization") != f"Bearer {self.state.token}":
                return self._send(401, b"Access restricted")
            return self._file(repo.files[fname], fault)
        if parts[0] == "gh" and len(parts) == 5 and parts[3] == "archive":
            key = f"{parts[1]}/{parts[2]}@{parts[4].removesuffix('.zip')}"
            if key not in self.state.archives:
                return self._send(404, b"Not Found")
            return self._file(archive_zip(f"{parts[1]}/{parts[2]}", parts[4].removesuffix(".zip"), self.state.archives[key]), fault)
        if parts[0] == "files":
            data = self.state.files.get("/".join(parts[1:]))
            if data is None:
                return self._send(404, b"Not Found")
            return self._file(data, fault)
        return self._send(404, b"Not Found")

    def _file(self, data: bytes, fault: str | None) -> None:
        start = 0
        rng = self.headers.get("Range")
        if rng and fault != "norange" and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
        body = data[start:]
        if fault == "wrong":
            body = bytes(b ^ 0xFF for b in body[:16]) + body[16:]
        if fault == "truncate":
            body = body[: len(body) // 2]
        code = 206 if start else 200
        headers = {"Accept-Ranges": "bytes", "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault in ("drop", "hang"):
            half = body[: len(body) // 2]
            self.wfile.write(half)
            self.wfile.flush()
            with self.state.lock:
                self.state.bytes_sent += len(half)
            if fault == "hang":  # the connection stays open and silent; the client must notice
                self.state.stop.wait(self.state.hang_seconds)
            self.close_connection = True
            import socket

            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:  # the client hung up first
                pass
            return
        view = memoryview(body)
        step = 1 << 16 if fault == "slow" else 1 << 20
        for i in range(0, len(body), step):
            self.wfile.write(view[i:i + step])
            with self.state.lock:
                self.state.bytes_sent += len(view[i:i + step])
            if fault == "slow":
                time.sleep(0.02)


class FakeServer:
    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        """`tls`: (certificate, key) files: serve HTTPS with them."""
        self.state = State()
        handler = type("H", (Handler,), {"state": self.state})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls is not None:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FakeServer":
        self.thread.start()
        return self

    def __exit__(self, *a: object) -> None:
        self.state.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def fault(self, path_suffix: str, kind: str, times: int = 1) -> None:
        self.state.faults[path_suffix].extend([kind] * times)

    def add_repo(self, repo: str, commit: str, files: dict[str, bytes], gated: bool = False) -> FakeRepo:
        r = FakeRepo(repo, commit, files, gated=gated)
        self.state.repos[repo] = r
        return r
