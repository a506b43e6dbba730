"""Build the conda channel snapshot (channels/<channel>/<subdir>/repodata.json) from
channels/sources/records.json: real records copied from public lockfiles, each naming its
source. Run: python tools/snapshot_from_records.py  (rewrites channels/conda-forge/).

The sets combined are the ones channels/SOURCES.md says solve together. Nothing here
invents a value: a record missing md5 or sha256 stops the build.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT / "channels" / "sources" / "records.json"
# cuda-dev-<version>.json: a CUDA build toolkit's records (12.8: cuBLAS/cuSPARSE/cuSOLVER/cuRAND dev and cccl;
# 12.2 and 12.6: the whole compiler set), each record naming the public lockfile it was copied from
CUDA_DEV = sorted((ROOT / "channels" / "sources").glob("cuda-dev-*.json"))
# python 3.10.19 and its closure, pip/setuptools/wheel, and the CUDA 12.8 compiler set.
SETS = [("python310-alt-numba-cuda-env", None), ("python310", {"pip", "setuptools", "wheel"}), ("cuda-12.x", None)]
NOARCH = {"pip": "python", "setuptools": "python", "wheel": "python"}


def main() -> int:
    data = json.loads(RECORDS.read_text())
    dev_sets = []
    for f in CUDA_DEV:
        data["sets"][f.stem] = json.loads(f.read_text())["records"]
        dev_sets.append((f.stem, None))
    chosen: dict[str, dict] = {}
    for set_name, only in [*SETS, *dev_sets]:
        for r in data["sets"][set_name]:
            if only is not None and r["name"] not in only:
                continue
            if not (r.get("md5") and r.get("sha256")):
                sys.exit(f"{r['name']} {r['version']}: no md5/sha256 in {set_name}; refusing to invent one")
            fn = r["url"].rsplit("/", 1)[-1]
            prev = chosen.get(fn)
            if prev and (prev["md5"], prev["sha256"]) != (r["md5"], r["sha256"]):
                sys.exit(f"{fn}: two sources disagree on its hashes")
            chosen[fn] = r
    channels: dict[tuple[str, str], dict] = {}
    for fn, r in sorted(chosen.items()):
        m = re.match(r"https://conda\.anaconda\.org/([^/]+)/([^/]+)/", r["url"])
        if not m:
            sys.exit(f"{fn}: not a conda.anaconda.org URL")
        channel, subdir = m.groups()
        rd = channels.setdefault((channel, subdir), {
            "info": {"subdir": subdir, "base_url": f"https://conda.anaconda.org/{channel}/{subdir}/"},
            "packages": {}, "packages.conda": {}, "repodata_version": 2,
        })
        rec = {
            "name": r["name"], "version": r["version"], "build": r["build"],
            "build_number": r["build_number"] if r.get("build_number") is not None else 0,
            "depends": list(r["depends"]), "subdir": subdir, "md5": r["md5"], "sha256": r["sha256"],
        }
        if r.get("constrains"):
            rec["constrains"] = list(r["constrains"])
        if r["name"] in NOARCH and subdir == "noarch":
            rec["noarch"] = NOARCH[r["name"]]
        rd["packages.conda" if fn.endswith(".conda") else "packages"][fn] = rec
    for (channel, subdir), rd in sorted(channels.items()):
        out = ROOT / "channels" / channel / subdir / "repodata.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rd, indent=1, sort_keys=True) + "\n")
        print(f"{out.relative_to(ROOT)}: {len(rd['packages']) + len(rd['packages.conda'])} records")
    for channel in {c for c, _ in channels}:
        for sub in ("linux-64", "noarch"):  # a solver wants both subdirs, even if one is empty
            p = ROOT / "channels" / channel / sub / "repodata.json"
            if not p.exists():
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(json.dumps({"info": {"subdir": sub, "base_url": f"https://conda.anaconda.org/{channel}/{sub}/"},
                                         "packages": {}, "packages.conda": {}, "repodata_version": 2}, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
