"""provision lock: given a spec and reachable (loopback) channels and indexes, the lockfile is ...

The channel holds real .conda files indexed by rattler; the pip index serves real wheels.
What we write is read back by conda-lock's parser and renderer, and installed by pip with
--require-hashes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provision.cli import app
from provision.lock import lockfile
from provision.templating import render

from repofactory import flat_page, serve, simple_index, toy_channel, wheel

COMMIT = "0123456789abcdef0123456789abcdef01234567"

SPEC = """\
schema_version: 1
name: toy
description: a target for lock tests
upstream: {{repo: "https://example.invalid/toy", commit: {commit}, read_from: [setup.sh]}}
python: "3.10"
cuda_toolkits:
  "12.8": {{min_driver_linux: "570.26", min_driver_windows: "570.65", nvcc_min_arch: "5.0",
           nvcc_max_arch: "12.0", conda_channel: "{chan}", conda_packages: [cuda-nvcc], max_gcc: "14"}}
conda:
  channels: ["{chan}"]
  packages:
    - {{name: python, version: "3.10.*"}}
    - {{name: pip}}
pip:
  indexes:
    flat: {{url: "{pip}/flat.html", kind: find_links}}
  packages:
    - {{name: alpha, version: "{alpha}"}}
    - {{name: gamma, version: "0.5", index: flat}}
    - name: utilz
      git: {{git: "https://example.invalid/utilz.git", commit: {commit}}}
      requires: [beta]
      build_requires: ["setuptools>=61"]
variants:
  cu128:
    cuda: "12.8"
    default: true
    description: toy
    packages:
      - {{name: torch, version: "2.8.0"}}
    overrides:
      - {{name: beta, version: "1.0", why: "alpha says beta>=2 but works with 1.0"}}
    host: {{min_compute_capability: "7.0", max_compute_capability: "12.0"}}
resources: {{ram_gb: 8, swap_gb: 4, disk_gb: 10, vram_gb: 4}}
app: {{launch: python app.py, port: 7860}}
"""


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("repos")
    toy_channel(root / "chan")
    files = root / "pypi" / "files"
    wheel(files, "alpha", "1.0", ("beta>=2",))
    wheel(files, "beta", "1.0")
    wheel(files, "beta", "2.0")
    wheel(files, "torch", "2.8.0", ("beta",))
    wheel(files, "setuptools", "70.1.0")
    wheel(files, "wheel", "0.43.0")
    simple_index(root / "pypi")
    wheel(root / "pypi" / "flatfiles", "gamma", "0.5")
    flat_page(root / "pypi", "flat.html", "flatfiles")
    with serve(root) as url:
        yield {"root": root, "chan": f"{url}/chan", "pip": f"{url}/pypi", "index": f"{url}/pypi/simple"}


def write_spec(d: Path, repos: dict, alpha: str = "1.0") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / "toy.yaml"
    p.write_text(SPEC.format(commit=COMMIT, chan=repos["chan"], pip=repos["pip"], alpha=alpha))
    return p


def run(*args: str):
    from provision.errors import ProvisionError

    try:
        result = CliRunner().invoke(app, list(args), standalone_mode=False, catch_exceptions=False)
        return result.exit_code if isinstance(result.return_value, int) is False else result.return_value, result.output
    except ProvisionError as e:
        return e.exit_code, "\n".join(e.lines())


def lock(tmp_path: Path, repos: dict, *extra: str, spec: Path | None = None):
    spec = spec or write_spec(tmp_path / "envs", repos)
    return run("lock", str(spec), "--lockdir", str(tmp_path / "lockfiles"), "--index-url", repos["index"],
               "--exclude-newer", "none", *extra)


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVISION_CACHE", str(tmp_path / "cache"))


def test_lock_writes_a_conda_lock_file_that_conda_lock_reads(tmp_path: Path, repos: dict) -> None:
    code, out = lock(tmp_path, repos)
    assert code == 0, out
    path = tmp_path / "lockfiles" / "toy" / "cu128" / "conda-lock.yml"
    lock_ = lockfile.read(path)  # conda-lock's own parser
    conda = {p.name: p for p in lock_.package if p.manager == "conda"}
    pip = {p.name: p for p in lock_.package if p.manager == "pip"}
    # python 3.10 (not 3.11), pip, and the CUDA toolkit in its own optional category
    assert conda["python"].version == "3.10.19"
    assert conda["python"].categories == {"main"} and conda["libzlib"].categories == {"main"}
    assert conda["cuda-nvcc"].categories == {"cuda-toolkit"}
    assert all(p.hash.md5 and p.hash.sha256 and p.url.startswith(repos["chan"]) for p in conda.values())
    # pip: the override wins over alpha's own beta>=2; gamma comes from the find-links page
    assert pip["beta"].version == "1.0"
    assert pip["gamma"].url.startswith(f"{repos['pip']}/flatfiles/")
    assert pip["torch"].version == "2.8.0"
    assert "setuptools" in pip
    assert all(len(p.hash.sha256 or "") == 64 for n, p in pip.items() if n != "utilz")
    # the git package is pinned by commit, its requires resolved in its place
    assert pip["utilz"].source.url == f"git+https://example.invalid/utilz.git@{COMMIT}"
    assert "beta" in pip["utilz"].dependencies
    assert "alpha" in pip and "beta" in pip["alpha"].dependencies
    meta = lock_.metadata.custom_metadata
    assert meta["provision-target"] == "toy" and meta["provision-exclude-newer"] == "none"


def test_locking_twice_gives_the_same_bytes(tmp_path: Path, repos: dict) -> None:
    assert lock(tmp_path, repos)[0] == 0
    path = tmp_path / "lockfiles" / "toy" / "cu128" / "conda-lock.yml"
    first = path.read_bytes()
    code, out = lock(tmp_path, repos)
    assert code == 0 and "unchanged" in out, out
    assert path.read_bytes() == first


def test_check_says_fresh_then_stale_after_a_pin_changes(tmp_path: Path, repos: dict) -> None:
    spec = write_spec(tmp_path / "envs", repos)
    assert lock(tmp_path, repos, spec=spec)[0] == 0
    code, out = run("lock", str(spec), "--check", "--lockdir", str(tmp_path / "lockfiles"))
    assert code == 0 and "fresh" in out
    write_spec(tmp_path / "envs", repos, alpha="1.0.0")  # a different pin, same meaning to pip
    code, out = run("lock", str(spec), "--check", "--lockdir", str(tmp_path / "lockfiles"))
    # a spec outside envs/ is named by its path: `provision lock toy` would not find it
    assert code == 1 and "stale" in out and f"provision lock {spec} --variant cu128" in out


def test_a_lockfile_edited_by_hand_is_caught_by_check_and_refused_by_compile(tmp_path: Path, repos: dict) -> None:
    """The recorded input digest still matches the spec, but the body was changed: a pinned version
    bumped, a dependency deleted, the toolkit relabelled. `lock --check` says "edited" (exit 1) and
    names each; compile (and so apply) refuses to install it."""
    spec = write_spec(tmp_path / "envs", repos)
    assert lock(tmp_path, repos, spec=spec)[0] == 0
    path = tmp_path / "lockfiles" / "toy" / "cu128" / "conda-lock.yml"
    good = path.read_text()
    i = good.index("- name: torch\n")
    torch = good[i:good.index("\n- name:", i + 1)]
    j = good.index("- name: beta\n")
    beta = good[j:good.index("\n- name:", j + 1) + 1]
    path.write_text(good.replace(torch, torch.replace("version: 2.8.0", "version: 2.9.0", 1)).replace(beta, ""))
    code, out = run("lock", str(spec), "--check", "--lockdir", str(tmp_path / "lockfiles"))
    assert code == 1 and "edited" in out, out
    assert "torch 2.9.0: the spec asks for torch==2.8.0" in out and "which the lock does not hold" in out, out
    assert "(and 3 more)" in out, out  # the file name that says 2.8.0, and more that lack beta
    host = str(Path(__file__).parent / "fixtures" / "hosts" / "rtx5070ti-wsl2.json")
    code, out = run("compile", str(spec), "--host", host, "--out", str(tmp_path / "out"),
                    "--lockdir", str(tmp_path / "lockfiles"))
    assert code == 2 and "was edited" in out and not (tmp_path / "out").exists(), out


def test_a_spec_path_with_a_space_is_quoted_in_the_header_and_the_fix(tmp_path: Path, repos: dict) -> None:
    import shlex

    spec = write_spec(tmp_path / "my envs", repos)
    assert lock(tmp_path, repos, spec=spec)[0] == 0
    path = tmp_path / "lockfiles" / "toy" / "cu128" / "conda-lock.yml"
    header = path.read_text().splitlines()[2].strip("# ")
    assert shlex.split(header)[2] == str(spec), header  # pastes and runs as it reads
    write_spec(tmp_path / "my envs", repos, alpha="1.0.0")
    code, out = run("lock", str(spec), "--check", "--lockdir", str(tmp_path / "lockfiles"))
    assert code == 1 and f"run `{header} --lockdir" in out, out  # the header's own command, all its flags


def test_an_override_of_a_package_the_resolution_never_pulls_in_is_not_an_edit() -> None:
    """uv's overrides change a version; they add no package. A spec-wide override for a package one
    variant never needs leaves that variant's lock as locked."""
    from dataclasses import replace

    from provision.lock import contents, lockfile
    from provision.lock.inputs import lock_inputs
    from provision.spec import load_target

    inputs = lock_inputs(load_target("triposr").spec, "cu128")
    lock = lockfile.read(Path(__file__).resolve().parent.parent / "lockfiles" / "triposr" / "cu128" / "conda-lock.yml")
    assert contents.problems(lock, replace(inputs, overrides=[*inputs.overrides, "colorama==0.4.6"])) == []
    assert contents.problems(lock, replace(inputs, overrides=[*inputs.overrides, "torch==2.7.0"])) == [
        "torch 2.8.0: the spec asks for torch==2.7.0"]


def test_a_lockfile_copied_into_another_variants_folder_is_named_so(tmp_path: Path, repos: dict) -> None:
    spec = write_spec(tmp_path / "envs", repos)
    assert lock(tmp_path, repos, spec=spec)[0] == 0
    path = tmp_path / "lockfiles" / "toy" / "cu128" / "conda-lock.yml"
    path.write_text(path.read_text().replace("provision-variant: cu128", "provision-variant: cu124"))
    code, out = run("lock", str(spec), "--check", "--lockdir", str(tmp_path / "lockfiles"))
    assert code == 1 and "provision-variant is 'cu124', this file's place says 'cu128'" in out, out
    assert f"provision lock {spec} --variant cu128" in out and "--lockdir" in out, out


def test_a_lockfile_conda_lock_cannot_read_is_named_by_package_not_by_index(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parent.parent / "lockfiles" / "triposr" / "cu128" / "conda-lock.yml").read_text()
    i = text.index("- name: torch\n")
    torch = text[i:text.index("\n- name:", i + 1)]
    broken = torch.replace("sha256: ", "sha256: [1, 2] #", 1)
    path = tmp_path / "triposr" / "cu128" / "conda-lock.yml"
    path.parent.mkdir(parents=True)
    path.write_text(text.replace(torch, broken))
    code, out = run("lock", "triposr", "--variant", "cu128", "--check", "--lockdir", str(tmp_path))
    assert code == 2 and "package torch 2.8.0 (pip).hash.sha256: Input should be a valid string" in out, out


def test_check_of_a_lockdir_that_is_not_there_or_holds_nothing_fails(tmp_path: Path) -> None:
    code, out = run("lock", "--check", "--lockdir", str(tmp_path / "nowhere"))
    assert code == 2 and "no such directory" in out, out
    (tmp_path / "empty").mkdir()
    code, out = run("lock", "--check", "--lockdir", str(tmp_path / "empty"))
    assert code == 1 and "no lockfiles to check" in out, out


def test_conda_lock_render_makes_an_explicit_file(tmp_path: Path, repos: dict) -> None:
    assert lock(tmp_path, repos)[0] == 0
    d = tmp_path / "lockfiles" / "toy" / "cu128"
    exe = Path(sys.executable).parent / "conda-lock"
    r = subprocess.run([str(exe), "render", "-k", "explicit", "-p", "linux-64", "conda-lock.yml"],
                       cwd=d, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = (d / "conda-linux-64.lock").read_text()
    assert "@EXPLICIT" in text and "/python-3.10.19-" in text and "# pip alpha @ " in text


def test_the_pip_half_installs_with_require_hashes(tmp_path: Path, repos: dict) -> None:
    assert lock(tmp_path, repos)[0] == 0
    lk = lockfile.read(tmp_path / "lockfiles" / "toy" / "cu128" / "conda-lock.yml")
    pins = lockfile.pip_pins(lk)
    req = tmp_path / "requirements.txt"
    req.write_text(render("requirements.txt.j2", target="toy", variant="cu128", pins=pins,
                          git=[p for p in pins if p.git]))
    assert "utilz @ git+" in req.read_text() and "\nutilz @" not in req.read_text()
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--require-hashes", "--no-index",
                        "--isolated", "--target", str(target), "-r", str(req)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (target / "alpha" / "__init__.py").is_file() and (target / "gamma").is_dir()


def test_an_unsatisfiable_pin_gives_the_resolvers_explanation_and_writes_nothing(tmp_path: Path, repos: dict) -> None:
    spec = write_spec(tmp_path / "envs", repos, alpha="9.9")
    code, out = lock(tmp_path, repos, spec=spec)
    assert code == 2
    assert "cannot be resolved" in out and "alpha" in out and "hint:" in out
    assert not (tmp_path / "lockfiles" / "toy").exists()


def test_an_unreachable_index_is_named_and_nothing_is_written(tmp_path: Path, repos: dict,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")  # a refused connection: uv's three retries only wait (11 s)
    spec = write_spec(tmp_path / "envs", repos)
    spec.write_text(spec.read_text().replace(f"{repos['pip']}/flat.html", "http://127.0.0.1:9/flat.html"))
    code, out = lock(tmp_path, repos, spec=spec)
    assert code == 3, out
    assert "cannot reach index 'flat' (http://127.0.0.1:9/flat.html), needed by gamma" in out
    assert not (tmp_path / "lockfiles" / "toy").exists()


PYPI_VARIANT = """variants:
  cu128-pypi:
    cuda: "12.8"
    description: gamma left out
    packages: [{name: torch, version: "2.8.0"}]
    host: {min_compute_capability: "7.0", max_compute_capability: "12.0"}
"""


def test_an_unreachable_index_points_to_a_variant_of_the_same_cuda_without_it(tmp_path: Path, repos: dict,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Like TRELLIS: cu121 takes kaolin from NVIDIA's page, cu121-pypi builds it from source."""
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    spec = write_spec(tmp_path / "envs", repos)
    text = spec.read_text().replace(f"{repos['pip']}/flat.html", "http://127.0.0.1:9/flat.html")
    gamma = '    - {name: gamma, version: "0.5", index: flat}\n'
    torch = '      - {name: torch, version: "2.8.0"}\n'
    text = text.replace(gamma, "").replace(torch, torch + "  " + gamma).replace("variants:\n", PYPI_VARIANT)
    spec.write_text(text)
    code, out = lock(tmp_path, repos, "--variant", "cu128", spec=spec)
    assert code == 3 and "needed by gamma" in out, out
    assert "or lock variant cu128-pypi, the same CUDA build without that index: provision lock toy --variant cu128-pypi" in out
    code, out = lock(tmp_path, repos, "--variant", "cu128-pypi", spec=spec)
    assert code == 0, out


def test_a_snapshot_without_the_cuda_toolkit_locks_only_with_no_cuda_toolkit(tmp_path: Path, repos: dict) -> None:
    """A snapshot holds real records with base_url; the lock carries the real URLs."""
    import json

    snap = tmp_path / "snap"
    for sub in ("linux-64", "noarch"):
        rd = json.loads((repos["root"] / "chan" / sub / "repodata.json").read_text())
        for key in ("packages", "packages.conda"):
            rd[key] = {k: v for k, v in rd.get(key, {}).items() if not v["name"].startswith("cuda")}
        rd["info"]["base_url"] = f"https://conda.anaconda.org/conda-forge/{sub}/"
        (snap / "conda-forge" / sub).mkdir(parents=True)
        (snap / "conda-forge" / sub / "repodata.json").write_text(json.dumps(rd))
    spec = write_spec(tmp_path / "envs", repos)
    spec.write_text(spec.read_text().replace(f'"{repos["chan"]}"', '"conda-forge"'))
    code, out = lock(tmp_path, repos, "--channel-snapshot", str(snap), spec=spec)
    assert code == 2 and "No candidates were found for cuda-version" in out and "--no-cuda-toolkit" in out
    code, out = lock(tmp_path, repos, "--channel-snapshot", str(snap), "--no-cuda-toolkit", spec=spec)
    assert code == 0, out
    text = (tmp_path / "lockfiles" / "toy" / "cu128" / "conda-lock.yml").read_text()
    assert "url: https://conda.anaconda.org/conda-forge/linux-64/python-3.10.19-h3c07f61_2_cpython.conda" in text
    assert "CUDA toolkit: not locked (--no-cuda-toolkit)" in text
    shutil.rmtree(snap / "conda-forge" / "noarch")
    code, out = lock(tmp_path, repos, "--channel-snapshot", str(snap), "--no-cuda-toolkit", spec=spec)
    assert code == 2 and "noarch/repodata.json" in out


def test_committed_lockfiles_match_their_specs() -> None:
    code, out = run("lock", "--check")
    assert code == 0, out
    assert "fresh" in out


def test_an_extension_built_no_deps_has_its_runtime_requirements_locked() -> None:
    """Given TRELLIS's cu121-pypi (kaolin built from source, installed --no-deps), the lock takes
    kaolin's install_requires and build requirements; cu121, which takes kaolin's wheel from its
    find-links page, takes neither."""
    from provision.lock import lock_inputs
    from provision.spec import load_target

    spec = load_target("trellis").spec
    src = lock_inputs(spec, "cu121-pypi")
    assert {"numpy<2.0", "warp-lang", "jupyter_client<8", "cython==0.29.37", "setuptools==81.0.0"} <= set(src.requirements)
    assert not any(r.startswith("kaolin") for r in src.requirements) and "kaolin-torch240-cu121" not in src.sources.values()
    wheel = lock_inputs(spec, "cu121")
    assert "kaolin==0.17.0" in wheel.requirements and "warp-lang" not in wheel.requirements
    assert wheel.sources["kaolin"] == "kaolin-torch240-cu121"


def test_the_committed_trellis_lock_needs_pypi_alone() -> None:
    lk = lockfile.read(Path(__file__).resolve().parent.parent / "lockfiles" / "trellis" / "cu121-pypi" / "conda-lock.yml")
    pins = lockfile.pip_pins(lk)
    v = {p.name: p.version for p in pins}
    assert v["torch"] == "2.4.0" and v["numpy"].startswith("1.") and v["setuptools"] == "81.0.0"
    files = [p for p in pins if p.git is None]
    assert files and all(p.url.startswith("https://files.pythonhosted.org/") and p.sha256 for p in files)
    assert [p.name for p in pins if p.git] == ["utils3d"]


def test_the_header_command_reproduces_the_lock_byte_for_byte_and_check_resolve_sees_a_change(
        tmp_path: Path, repos: dict) -> None:
    """Given a lock made against a recorded index: a newer file appearing there (even under an old
    date) does not move a re-lock, which prefers the locked versions; `lock --check --resolve` says
    so, and says "stale", naming the package, once the locked file is gone from the index."""
    assert lock(tmp_path, repos)[0] == 0
    path = tmp_path / "lockfiles" / "toy" / "cu128" / "conda-lock.yml"
    first = path.read_bytes()
    assert f"--index-url {repos['index']}" in path.read_text().splitlines()[2]  # the header says how it was made
    files = repos["root"] / "pypi" / "files"
    newer = wheel(files, "setuptools", "70.2.0")
    simple_index(repos["root"] / "pypi")
    try:
        spec = tmp_path / "envs" / "toy.yaml"
        code, out = run("lock", "--check", str(spec), "--lockdir", str(tmp_path / "lockfiles"), "--resolve")
        assert code == 0 and "a re-resolve writes the same bytes" in out, out
        assert lock(tmp_path, repos)[0] == 0 and path.read_bytes() == first  # the header's command: same bytes
        old = files / "setuptools-70.1.0-py3-none-any.whl"
        held = old.read_bytes()
        old.unlink()
        simple_index(repos["root"] / "pypi")
        code, out = run("lock", "--check", str(spec), "--lockdir", str(tmp_path / "lockfiles"), "--resolve")
        assert code == 1 and "stale" in out and "setuptools 70.1.0 -> 70.2.0" in out, out
        assert path.read_bytes() == first  # checking never writes the lockfile
    finally:
        if not (files / "setuptools-70.1.0-py3-none-any.whl").exists():
            (files / "setuptools-70.1.0-py3-none-any.whl").write_bytes(held)
        newer.unlink()
        simple_index(repos["root"] / "pypi")


def test_a_toolkit_of_wheels_is_locked_in_its_own_category_and_kept_out_of_requirements(
        tmp_path: Path, repos: dict) -> None:
    """CUDA >= 13: the toolkit is PyPI wheels. They are resolved with the rest (one version of a
    package both need), labelled cuda-toolkit, hashed like everything else, and never put in the
    env's requirements; the toolkit digest names them."""
    files = repos["root"] / "pypi" / "files"
    wheel(files, "nvtk-nvcc", "13.0.88", ("nvtk-runtime",))
    wheel(files, "nvtk-runtime", "13.0.96")
    simple_index(repos["root"] / "pypi")
    spec = write_spec(tmp_path / "envs", repos)
    text = spec.read_text().replace('conda_packages: [cuda-nvcc], max_gcc: "14"}',
                                    'pip_packages: ["nvtk-nvcc==13.0.88"], max_gcc: "14"}')
    assert "pip_packages" in text
    text = text.replace('{name: alpha, version: "1.0"}', '{name: alpha, version: "1.0"}\n    - {name: nvtk-runtime, version: "*"}')
    spec.write_text(text)
    code, out = lock(tmp_path, repos, spec=spec)
    assert code == 0, out
    lf = lockfile.read(tmp_path / "lockfiles" / "toy" / "cu128" / "conda-lock.yml")
    cats = {p.name: p.categories for p in lf.package if p.manager == "pip"}
    assert cats["nvtk-nvcc"] == {"cuda-toolkit"} and cats["nvtk-runtime"] == {"main", "cuda-toolkit"}
    assert "nvtk-nvcc" not in [p.name for p in lockfile.pip_pins(lf)]
    assert {p.name for p in lockfile.pip_pins(lf, category="cuda-toolkit")} == {"nvtk-nvcc", "nvtk-runtime"}
    from provision.lock.facts import read

    facts = read(tmp_path / "lockfiles" / "toy" / "cu128" / "conda-lock.yml")
    assert facts.toolkit == "12.8" and facts.toolkit_dir.startswith("cuda-12.8-")
