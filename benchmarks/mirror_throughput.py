"""Mirror throughput: provision's download core against curl, side by side in one run.

Three sets of files, each served from a loopback server in its own process (sendfile, Range):
  big    one file of --big-mb MiB (1024: the issue's "one 1 GiB file")
  small  --small files of --small-kb KiB
  mix    --mix-large files of --mix-mb MiB and --mix-small of --small-kb KiB
For each set, in one run, interleaved (--runs times; medians), each into an empty directory:
  curl              curl -o per file (--parallel --parallel-max 4 for several files)
  curl+openssl      the same, then `openssl dgst -sha256` over them: the fastest two-pass pipeline
  provision         provision.offline.mirror.run in a fresh Python, 4 workers: sha256 as the bytes
                    arrive, .part + rename, the manifest; the whole process, start-up included
  provision-tls-loop  the same with Policy(splice=False): the loop HTTPS downloads take (http.client's
                    read1, os.write, hashing in a second thread); plain HTTP here
Then the resume cost on the mix: provision is killed (SIGKILL) half way and run again; we report
the bytes sent again beyond what was missing on disk at the kill.

    python benchmarks/mirror_throughput.py [--runs 5] [--big-mb 1024] [--small 300] [--small-kb 256]
                                           [--only big|small|mix] [--compare-with OLD_CHECKOUT]
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import resource
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


def make_files(d: Path, prefix: str, count: int, size: int) -> list[tuple[str, int, str]]:
    """`count` files of `size` random bytes: (name, size, sha256)."""
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        name = f"{prefix}{i:04d}.bin"
        h = hashlib.sha256()
        with open(d / name, "wb") as f:
            left = size
            while left:
                block = os.urandom(min(left, 1 << 22))
                f.write(block)
                h.update(block)
                left -= len(block)
        out.append((name, size, h.hexdigest()))
    return out


def stats(url: str) -> int:
    with urllib.request.urlopen(f"{url}/stats") as r:
        return json.loads(r.read())["sent"]


def timed(argv: list[str], cwd: Path = ROOT) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child: user + sys)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(argv, check=True, cwd=cwd, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def curl_argv(url: str, files: list, out: Path) -> list[str]:
    args = ["curl", "-s", "--no-progress-meter", "--fail"]
    if len(files) > 1:
        args += ["--parallel", "--parallel-max", "4"]
    for name, _, _ in files:
        args += ["-o", str(out / name), f"{url}/{name}"]
    return args


PROVISION = """
import sys, json
from pathlib import Path
from provision.offline.bundle import Bundle, Entry
from provision.offline import mirror as m
from provision.offline.download import Policy, session
url, bundle, files, splice = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4] == "1"
b = Bundle.open(bundle, create=True)
entries = [Entry("url", n, f"{url}/{n}", f"files/{n}", sha256=h, size=s) for n, s, h in files]
policy = Policy(splice=splice) if "splice" in Policy.__dataclass_fields__ else Policy()  # older checkouts: no splice
r = m.run(b, entries, session(), None, m.Endpoints(), workers=4, policy=policy)
assert not r.failed, r.failed
"""


def provision_argv(url: str, files: list, out: Path, splice: bool = True) -> list[str]:
    return [sys.executable, "-c", PROVISION, url, str(out), json.dumps(files), "1" if splice else "0"]


WAYS = ["curl", "curl+openssl", "provision", "provision-tls-loop"]
BEFORE: Path | None = None  # --compare-with: an older checkout, measured in the same run


def measure(url: str, files: list, tmp: Path, runs: int) -> dict[str, list[tuple[float, float]]]:
    res: dict[str, list[tuple[float, float]]] = {k: [] for k in WAYS}
    for i in range(runs):  # interleaved, so drift hits every way alike
        out = tmp / f"curl{i}"
        out.mkdir()
        c = timed(curl_argv(url, files, out))
        o = timed(["openssl", "dgst", "-sha256", *[str(out / n) for n, _, _ in files]])
        shutil.rmtree(out)
        res["curl"].append(c)
        res["curl+openssl"].append((c[0] + o[0], c[1] + o[1]))
        for way, splice in (("provision", True), ("provision-tls-loop", False)):
            res[way].append(timed(provision_argv(url, files, tmp / f"prov{i}", splice)))
            shutil.rmtree(tmp / f"prov{i}")
        if BEFORE is not None:
            res["provision before"].append(timed(provision_argv(url, files, tmp / f"old{i}"), BEFORE))
            shutil.rmtree(tmp / f"old{i}")
    return res


def report(title: str, files: list, res: dict[str, list[tuple[float, float]]], goals: bool) -> None:
    total = sum(s for _, s, _ in files)
    runs = len(res["curl"])
    med = {k: statistics.median(w for w, _ in v) for k, v in res.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in res.items()}
    print(f"{title}: {len(files)} file(s), {total / 2**20:.0f} MiB from a loopback server; median of {runs} runs")
    for k in WAYS:
        walls = " ".join(f"{w:.2f}" for w, _ in res[k])
        print(f"  {k:<19} {med[k]:6.2f} s  {total / med[k] / 1e9:5.2f} GB/s  cpu {cpu[k]:5.2f} s   [{walls}]")
    for k in [w for w in WAYS if w.startswith("provision")]:
        g1, g2 = ("   (goal <= 1.15)", "   (goal <= 1.0)") if goals and k == "provision" else ("", "")
        print(f"  {k} / curl = {med[k] / med['curl']:.2f}{g1}   {k} / (curl + openssl) = "
              f"{med[k] / med['curl+openssl']:.2f}{g2}")


def resume(url: str, files: list, tmp: Path) -> None:
    total = sum(s for _, s, _ in files)
    out = tmp / "killed"
    before = stats(url)
    p = subprocess.Popen(provision_argv(url, files, out), cwd=ROOT)
    while stats(url) - before < total // 2 and p.poll() is None:
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    at_kill = stats(url)
    on_disk = sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and f.parent.name in ("blobs", ".partial"))
    missing = total - on_disk
    subprocess.run(provision_argv(url, files, out), check=True, cwd=ROOT)
    again = stats(url) - at_kill
    extra = again - missing
    print(f"  kill -9 at {(at_kill - before) / 1e9:.2f} GB sent: {on_disk / 1e9:.2f} GB on disk; the rerun sent "
          f"{again / 1e9:.3f} GB for {missing / 1e9:.3f} GB missing: {max(extra, 0) / total * 100:.2f}% extra "
          f"(goal < 5%)")
    shutil.rmtree(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--big-mb", type=int, default=1024)
    ap.add_argument("--small", type=int, default=300)
    ap.add_argument("--small-kb", type=int, default=256)
    ap.add_argument("--mix-large", type=int, default=2)
    ap.add_argument("--mix-mb", type=int, default=256)
    ap.add_argument("--mix-small", type=int, default=200)
    ap.add_argument("--only", choices=["big", "small", "mix"], action="append")
    ap.add_argument("--compare-with", type=Path, help="an older checkout (git archive REV | tar -x -C DIR): its "
                    "provision is measured too, as 'provision before'")
    a = ap.parse_args()
    global BEFORE
    if a.compare_with is not None:
        BEFORE = a.compare_with.resolve()
        WAYS.append("provision before")
    tmp = Path(tempfile.mkdtemp(prefix="mirror-bench-"))
    srv = None
    try:
        src = tmp / "src"
        sets = {
            "big": make_files(src, "big", 1, a.big_mb << 20),
            "small": make_files(src, "small", a.small, a.small_kb << 10),
            "mix": make_files(src, "mixL", a.mix_large, a.mix_mb << 20) + make_files(src, "mixS", a.mix_small,
                                                                                      a.small_kb << 10),
        }
        os.sync()  # the source files' dirty pages written out now, not during the measurements
        port_file = tmp / "port"
        srv = subprocess.Popen([sys.executable, "-c",
                                f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                                f"from benchmarks.mirror_throughput import serve; "
                                f"serve({str(src)!r}, {str(port_file)!r}, '')"])
        while not port_file.exists():
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port_file.read_text()}"
        start_up = statistics.median(timed(provision_argv(url, [], tmp / f"empty{i}"))[0] for i in range(3))
        print(f"provision's start-up alone (the same script, nothing to fetch): {start_up:.2f} s")
        for name in a.only or ["big", "small", "mix"]:
            report(name, sets[name], measure(url, sets[name], tmp, a.runs), goals=name == "big")
            if name == "mix":
                resume(url, sets[name], tmp)
    finally:
        if srv is not None:
            srv.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
