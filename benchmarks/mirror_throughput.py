"""Mirror throughput: provision's download core against curl, side by side in one run.

About 1 GB (3 large files and 200 small ones) is served from a loopback server in its own
process (sendfile, Range support). Measured, in this order, each into an empty directory:
  curl          curl --parallel (4 at a time) to files          (disk and network bound)
  curl+openssl  the same, then `openssl dgst -sha256` over them  (fastest two-pass pipeline)
  provision     provision.offline.mirror.run, 4 workers, sha256 computed while the bytes arrive
and the resume cost: provision is killed (SIGKILL) half way, then run again; we report the
bytes sent again beyond what was missing on disk at the kill.

    python benchmarks/mirror_throughput.py [--large-mb 300] [--small 200] [--small-kb 500] [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import shutil
import signal
import socketserver
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def serve(directory: str, port_file: str, stats_file: str) -> None:
    """Static files with sendfile and Range; /stats answers the bytes sent so far."""
    sent = [0]

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/stats":
                body = json.dumps({"sent": sent[0]}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            p = os.path.join(directory, self.path.lstrip("/"))
            size = os.path.getsize(p)
            start = 0
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0])
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.send_header("Content-Length", str(size - start))
            self.end_headers()
            self.wfile.flush()
            with open(p, "rb") as f:
                try:
                    offset = start
                    while offset < size:
                        n = os.sendfile(self.connection.fileno(), f.fileno(), offset, min(1 << 22, size - offset))
                        if n == 0:
                            break
                        offset += n
                        sent[0] += n
                except (BrokenPipeError, ConnectionResetError):
                    pass

    class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
            pass  # a client killed mid-transfer (the resume measurement) is expected

    httpd = S(("127.0.0.1", 0), H)
    Path(port_file).write_text(str(httpd.server_address[1]))
    httpd.serve_forever()


def make_files(d: Path, large_mb: int, small: int, small_kb: int) -> list[tuple[str, int, str]]:
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(3):
        p = d / f"large{i}.bin"
        with open(p, "wb") as f:
            for _ in range(large_mb):
                f.write(os.urandom(1 << 20))
        out.append((p.name, p.stat().st_size, ""))
    for i in range(small):
        p = d / f"small{i:03d}.bin"
        p.write_bytes(os.urandom(small_kb << 10))
        out.append((p.name, p.stat().st_size, ""))
    return [(n, s, hashlib.sha256((d / n).read_bytes()).hexdigest()) for n, s, _ in out]


def stats(url: str) -> int:
    with urllib.request.urlopen(f"{url}/stats") as r:
        return json.loads(r.read())["sent"]


def run_curl(url: str, files: list, out: Path) -> float:
    out.mkdir(parents=True)
    args = ["curl", "-s", "--no-progress-meter", "--parallel", "--parallel-max", "4"]
    for name, _, _ in files:
        args += ["-o", str(out / name), f"{url}/{name}"]
    t = time.perf_counter()
    subprocess.run(args, check=True)
    return time.perf_counter() - t


def run_openssl(files: list, out: Path) -> float:
    t = time.perf_counter()
    subprocess.run(["openssl", "dgst", "-sha256", *[str(out / n) for n, _, _ in files]], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


PROVISION = """
import sys, json
from pathlib import Path
from provision.offline.bundle import Bundle, Entry
from provision.offline import mirror as m
from provision.offline.download import session
url, bundle, files = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
b = Bundle.open(bundle, create=True)
entries = [Entry("url", n, f"{url}/{n}", f"files/{n}", sha256=h, size=s) for n, s, h in files]
r = m.run(b, entries, session(), None, m.Endpoints(), workers=4)
assert not r.failed, r.failed
"""


def run_provision(url: str, files: list, out: Path) -> tuple[float, subprocess.Popen | None]:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", PROVISION, url, str(out), json.dumps(files)], check=True, cwd=ROOT)
    return time.perf_counter() - t, None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--large-mb", type=int, default=300)
    ap.add_argument("--small", type=int, default=200)
    ap.add_argument("--small-kb", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mirror-bench-"))
    try:
        files = make_files(tmp / "src", a.large_mb, a.small, a.small_kb)
        total = sum(s for _, s, _ in files)
        port_file = tmp / "port"
        srv = subprocess.Popen([sys.executable, "-c",
                                f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                                f"from benchmarks.mirror_throughput import serve; "
                                f"serve({str(tmp / 'src')!r}, {str(port_file)!r}, '')"])
        while not port_file.exists():
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port_file.read_text()}"
        res: dict[str, list[float]] = {"curl": [], "curl+openssl": [], "provision": []}
        for i in range(a.runs):  # interleaved, so drift hits all three alike
            c = run_curl(url, files, tmp / f"curl{i}")
            o = run_openssl(files, tmp / f"curl{i}")
            shutil.rmtree(tmp / f"curl{i}")
            p, _ = run_provision(url, files, tmp / f"prov{i}")
            shutil.rmtree(tmp / f"prov{i}")
            res["curl"].append(c)
            res["curl+openssl"].append(c + o)
            res["provision"].append(p)
        med = {k: statistics.median(v) for k, v in res.items()}
        print(f"{len(files)} files, {total / 1e9:.2f} GB from a loopback server; median of {a.runs} runs")
        for k in res:
            print(f"  {k:<13} {med[k]:6.2f} s  {total / med[k] / 1e9:5.2f} GB/s")
        print(f"  provision / (curl + openssl dgst) = {med['provision'] / med['curl+openssl']:.2f}   (goal <= 1.0)")
        print(f"  provision / curl                  = {med['provision'] / med['curl']:.2f}   (goal <= 1.15)")

        # resume: kill -9 half way, run again
        out = tmp / "killed"
        before = stats(url)
        p = subprocess.Popen([sys.executable, "-c", PROVISION, url, str(out), json.dumps(files)], cwd=ROOT)
        while stats(url) - before < total // 2:
            time.sleep(0.01)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        at_kill = stats(url)
        on_disk = sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and f.parent.name in ("blobs", ".partial"))
        missing = total - on_disk
        run_provision(url, files, out)
        again = stats(url) - at_kill
        extra = again - missing
        print(f"  kill -9 at {(at_kill - before) / 1e9:.2f} GB sent: {on_disk / 1e9:.2f} GB on disk; the rerun sent "
              f"{again / 1e9:.3f} GB for {missing / 1e9:.3f} GB missing: {max(extra, 0) / total * 100:.2f}% extra "
              f"(goal < 5%)")
        srv.kill()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
