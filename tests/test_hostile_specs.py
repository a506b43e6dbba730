"""Hostile and broken specs: given a spec with one poisoned value, `provision validate` and
`provision compile` either refuse it with exit 2, naming the file, the line or field and the
fix, or (for values that are legal but dangerous in a script) compile it so that sourcing
every generated script runs nothing. See tests/hostile.py for what every case asserts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import FIXTURES
from hostile import judge, make_world, run, source_scripts

BASE = (FIXTURES / "specs" / "hostile.yaml").read_text()
HOST = str(FIXTURES / "hosts" / "h100-cuda13.json")
INJECT = "touch INJECTED"

# (id, line of the base spec, its replacement, words the error must contain)
REFUSED = [
    ("subdir-climbs-out", "subdirectory: sub/dir", "subdirectory: ../../../outside", "must not contain '..'"),
    ("subdir-absolute", "subdirectory: sub/dir", "subdirectory: /etc", "must be relative"),
    ("subdir-newline", "subdirectory: sub/dir", 'subdirectory: "sub\\n' + INJECT + '"', "control characters"),
    ("subdir-backslash", "subdirectory: sub/dir", 'subdirectory: "sub\\\\..\\\\x"', "backslash"),
    ("subdir-home", "subdirectory: sub/dir", "subdirectory: ~/x", "must be relative"),
    ("hf-revision-injects", "revision: 0123456789abcdef0123456789abcdef01234567, files",
     'revision: "main; ' + INJECT + '", unpinned: "x", files', "is not a revision"),
    ("hf-revision-newline", "revision: 0123456789abcdef0123456789abcdef01234567, files",
     'revision: "main\\n", unpinned: x, files', "is not a revision"),
    ("hf-revision-climbs", "revision: 0123456789abcdef0123456789abcdef01234567, files",
     'revision: "refs/../../x", unpinned: x, files', "'..'"),
    ("hf-repo-dotdot", "repo: org/model", "repo: org/..", "Hugging Face repo id"),
    ("hf-repo-double-dash", "repo: org/model", "repo: org--x/model", "'--'"),
    ("hf-repo-slashes", "repo: org/model", "repo: org/model/extra", "Hugging Face repo id"),
    ("hf-files-climb", "files: [config.json]", 'files: ["../*"]', "'..'"),
    ("hf-files-absolute", "files: [config.json]", 'files: ["/etc/passwd"]', "must be relative"),
    ("commit-trailing-newline", "commit: abcdef0, subdirectory", 'commit: "abcdef0\\n", subdirectory', "is not a git commit"),
    ("commit-branch", "commit: abcdef0, subdirectory", "commit: main, subdirectory", "is not a git commit"),
    ("upstream-commit-injects", "  commit: 0123456789abcdef0123456789abcdef01234567\n  read_from",
     '  commit: "0123456; ' + INJECT + '"\n  read_from', "is not a git commit"),
    ("target-name-newline", "name: hostile", 'name: "hostile\\n"', "is not a target name"),
    ("target-name-space", "name: hostile", 'name: "host ile"', "is not a target name"),
    ("target-name-slash", "name: hostile", 'name: "../hostile"', "is not a target name"),
    ("target-name-too-long", "name: hostile", "name: " + "h" * 65, "is not a target name"),
    ("env-key-injects", "  GREETING: \"hello\"", "  \"A;" + INJECT + "\": x", "not an environment variable name"),
    ("env-key-secret", "  GREETING: \"hello\"", "  HF_TOKEN: hf_abc", "looks like a secret"),
    ("env-key-password", "  GREETING: \"hello\"", "  PROXY_PASSWORD: x", "looks like a secret"),
    ("env-key-ld-preload", "  GREETING: \"hello\"", "  LD_PRELOAD: /tmp/evil.so", "may not be set by a spec"),
    ("env-key-path", "  GREETING: \"hello\"", "  PATH: /tmp/evil", "may not be set by a spec"),
    ("env-key-pythonpath", "  GREETING: \"hello\"", "  PYTHONPATH: /tmp/evil", "may not be set by a spec"),
    ("env-key-bash-env", "  GREETING: \"hello\"", "  BASH_ENV: /tmp/evil", "may not be set by a spec"),
    ("env-value-newline", "  GREETING: \"hello\"", '  GREETING: "hello\\n' + INJECT + '"', "control characters"),
    ("env-value-escape", "  GREETING: \"hello\"", '  GREETING: "\\e[31mred"', "control characters"),
    ("env-value-nul", "  GREETING: \"hello\"", '  GREETING: "a\\0b"', "control characters"),
    ("env-choice-newline", "choices: [xformers, flash_attn]", 'choices: [xformers, "flash_attn\\n"]', "control characters"),
    ("url-credentials", 'url: "https://example.invalid/u2net.onnx"', f'url: "https://user:{"s3cr3t-PW-7731"}@example.invalid/u2net.onnx"',
     "must not carry credentials"),
    ("url-javascript", 'url: "https://example.invalid/u2net.onnx"', 'url: "javascript:alert(1)"', "is not an http(s) or file URL"),
    ("url-space", 'url: "https://example.invalid/u2net.onnx"', 'url: "https://example.invalid/u2 net.onnx"', "is not an http(s) or file URL"),
    ("url-encoded-climb", 'url: "https://example.invalid/u2net.onnx"', 'url: "https://example.invalid/x%2F..%2F..%2Fpasswd"',
     "'..'"),
    ("url-encoded-dotdot", 'url: "https://example.invalid/u2net.onnx"', 'url: "https://example.invalid/%2E%2E"', "'..'"),
    ("url-encoded-newline", 'url: "https://example.invalid/u2net.onnx"', 'url: "https://example.invalid/a%0Atouch"',
     "control characters"),
    ("git-url-credentials", 'git: "https://example.invalid/tinyext.git"', 'git: "https://tok:s3cr3t-PW-7731@example.invalid/t.git"',
     "must not carry credentials"),
    ("checkpoint-climbs", "file: ck.pth", "file: ../../ck.pth", "'..'"),
    ("checkpoint-subdir", "file: ck.pth", "file: a/ck.pth", "single name"),
    ("checkpoint-absolute", "file: ck.pth", "file: /etc/ck.pth", "must be relative"),
    ("dest-absolute", 'dest: "{U2NET_HOME}/u2net.onnx"', 'dest: "/etc/u2net.onnx"', "must start with a placeholder"),
    ("dest-climbs", 'dest: "{U2NET_HOME}/u2net.onnx"', 'dest: "{data}/../../x.onnx"', "'..'"),
    ("dest-newline", 'dest: "{U2NET_HOME}/u2net.onnx"', 'dest: "{data}/a\\nb"', "control characters"),
    ("hub-repo-climbs", "repo: owner/hubrepo", "repo: owner/..", "is not a GitHub repository"),
    ("hub-ref-climbs", "entrypoints: [model]", "ref: main/../../x\n      entrypoints: [model]", "'..'"),
    ("hub-entrypoint-code", "entrypoints: [model]", 'entrypoints: ["model; import os"]', "is not a Python name"),
    ("module-injects", "module: tinyext", 'module: "tinyext; import os"', "is not an importable module name"),
    ("package-newline", "- {name: numpy, version", '- {name: "numpy\\n", version', "is not a valid package name"),
    ("package-extras-injects", "- {name: numpy, version: \"1.26.4\"}", '- {name: numpy, version: "1.26.4", extras: ["x]; rm"]}',
     "is not a valid package name"),
    ("version-injects", 'version: "1.26.4"', 'version: "1.26.4; rm -rf"', "is not a valid version"),
    ("conda-channel-climbs", "channels: [conda-forge]", "channels: [../../x]", "is not a conda channel"),
    ("conda-version-injects", 'version: "3.10.*"}', 'version: "3.10; rm"}', "is not a conda version spec"),
    ("app-host-injects", "app: {launch: python app.py, port: 7860", 'app: {launch: python app.py, host: "0.0.0.0; rm", port: 7860',
     "is not a host name"),
    ("app-launch-newline", "app: {launch: python app.py", 'app: {launch: "python app.py\\n' + INJECT + '"', "control characters"),
    ("port-env-injects", "port_env: GRADIO_SERVER_PORT", 'port_env: "A B"', "not an environment variable name"),
    ("smoke-nul", 'smoke: "import tinyext"', 'smoke: "import tinyext\\0"', "without NUL"),
    ("python-newline", 'python: "3.10"', 'python: "3.10\\n"', "is not a Python version"),
    ("variant-key-newline", "  cu121:\n    cuda", '  "cu121\\n":\n    cuda', "not a CUDA build tag"),
    ("extension-name-climbs", "- name: tinyext", '- name: "../tinyext"', "is not a valid package name"),
    ("sdist-name-climbs", 'source: {git: "https://example.invalid/tinyext.git", commit: abcdef0, subdirectory: sub/dir}',
     'source: {sdist: "https://example.invalid/%2e%2e", sha256: "' + "0" * 64 + '"}', "'..'"),
    ("include-absolute", "  - shared/cuda.yaml", "  - /etc/passwd", "an include is a relative path"),
    ("prebuilt-url-climbs", "    smoke: \"import tinyext\"",
     "    prebuilt: [{url: \"https://example.invalid/%2e%2e%2fx.whl\", torch: \"2.6\", cuda: \"12\", cxx11_abi: false, python: \"3.10\", record: r}]\n    smoke: \"import tinyext\"", "'..'"),
    ("prebuilt-not-a-wheel", "    smoke: \"import tinyext\"",
     "    prebuilt: [{url: \"https://example.invalid/tinyext.whl\", torch: \"2.6\", cuda: \"12\", cxx11_abi: false, python: \"3.10\", record: r}]\n    smoke: \"import tinyext\"", "wheel file name"),
    ("prebuilt-torch-newline", "    smoke: \"import tinyext\"",
     "    prebuilt: [{url: \"https://example.invalid/tinyext-1.0-cp310-cp310-linux_x86_64.whl\", torch: \"2.6\\n\", cuda: \"12\", cxx11_abi: false, python: \"3.10\", record: r}]\n    smoke: \"import tinyext\"", "is not a torch version"),
    ("prebuilt-torch-patch", "    smoke: \"import tinyext\"",
     "    prebuilt: [{url: \"https://example.invalid/tinyext-1.0-cp310-cp310-linux_x86_64.whl\", torch: \"2.6.0\", cuda: \"12\", cxx11_abi: false, python: \"3.10\", record: r}]\n    smoke: \"import tinyext\"", "is not a torch version like '2.6'"),
    ("ram-inf", "ram_gb: 8", "ram_gb: .inf", "finite"),
    ("ram-nan", "ram_gb: 8", "ram_gb: .nan", "finite"),
    ("ram-huge-int", "ram_gb: 8", "ram_gb: " + "9" * 5000, "cannot read this value"),
    ("size-negative", "file: ck.pth}", "file: ck.pth, size: -1}", "greater than or equal to 0"),
    ("duplicate-key", "python: \"3.10\"", "python: \"3.10\"\npython: \"3.11\"", "duplicate key"),
    ("merge-key", "resources: {ram_gb", "base: &b {x: 1}\nother: {<<: *b}\nresources: {ram_gb", "merge keys"),
    ("description-escape", "description: A target for hostile-input tests", 'description: "\\e]0;pwned\\a"', "control characters"),
]

WHOLE_FILE = [
    # (id, file content as bytes, words)
    ("alias-bomb", b"name: x\n" + b"".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9) if p else ', '.join(['x'] * 9)}]\n".encode()
        for p, c in zip([""] + list("abcdefgh"), "abcdefghi")), "alias bomb"),
    ("deep-nesting", b"a: " + b"[" * 20000 + b"]" * 20000 + b"\n", "nested more than"),
    ("binary-junk", bytes(range(256)) * 40, "binary"),
    ("latin-1", "name: caf\xe9\n".encode("latin-1"), "not UTF-8"),
    ("empty", b"", "file is empty"),
    ("a-list", b"- 1\n- 2\n", "must be a YAML mapping"),
    ("too-large", b"name: x\n" + b"# padding\n" * 120_000, "too large"),
    ("yaml-python-tag", b"name: !!python/object/apply:os.system ['touch INJECTED']\n", "YAML tag"),
    ("yaml-custom-tag", b"name: !evil x\n", "YAML tag"),
    ("tab-indent", b"name: x\n\tbad: 1\n", "YAML"),
]


def _world(tmp_path: Path):  # type: ignore[no-untyped-def]
    w = make_world(tmp_path)
    specs = w.root / "specs"
    shutil.copytree(FIXTURES / "specs" / "shared", specs / "shared")
    w.allowed = [w.root / "out", w.root / "shell-home", w.root / "mirror-dest", w.root / "stubs",
                 w.root / "site-check", w.root / "data", specs]
    return w, specs


@pytest.mark.parametrize("cid,old,new,words", REFUSED, ids=[c[0] for c in REFUSED])
def test_a_poisoned_spec_value_is_refused_at_load_with_its_line(tmp_path: Path, cid: str, old: str, new: str,
                                                                 words: str) -> None:
    w, specs = _world(tmp_path)
    assert old in BASE, f"case {cid}: {old!r} is not in the base spec"
    spec = specs / "hostile.yaml"
    spec.write_text(BASE.replace(old, new, 1))
    before = w.snapshot()
    r = run(["validate", str(spec)], cwd=w.root)
    judge(r, w, before, 2, (words,))
    assert "hostile.yaml" in r.err
    r = run(["compile", str(spec), "--host", HOST, "--no-lock", "--out", str(w.root / "out"), "--data-dir",
             str(w.root / "data")], cwd=w.root)
    judge(r, w, before, 2, (words,))
    assert not (w.root / "out").exists()


@pytest.mark.parametrize("cid,content,words", WHOLE_FILE, ids=[c[0] for c in WHOLE_FILE])
def test_a_broken_spec_file_is_refused_without_a_traceback(tmp_path: Path, cid: str, content: bytes, words: str) -> None:
    w, specs = _world(tmp_path)
    spec = specs / "broken.yaml"
    spec.write_bytes(content)
    before = w.snapshot()
    r = run(["validate", str(spec)], cwd=w.root)
    judge(r, w, before, 2, (words,))


def test_a_directory_given_as_a_spec(tmp_path: Path) -> None:
    w, specs = _world(tmp_path)
    (specs / "dir.yaml").mkdir()
    before = w.snapshot()
    judge(run(["validate", str(specs / "dir.yaml")], cwd=w.root), w, before, 2, ("is a directory",))


# Values that are legal but dangerous inside a shell script: compiled, then every generated
# script is sourced in bash and dash, mirror.sh run against stub tools, every .pth loaded.
QUOTED = [
    ("env-command-substitution", '  GREETING: "hello"', '  GREETING: "$(' + INJECT + ')"'),
    ("env-backticks", '  GREETING: "hello"', '  GREETING: "`' + INJECT + '`"'),
    ("env-single-quote-breakout", '  GREETING: "hello"', "  GREETING: \"'; " + INJECT + "; '\""),
    ("env-double-quote-breakout", '  GREETING: "hello"', "  GREETING: '\"; " + INJECT + "; \"'"),
    ("env-semicolon", '  GREETING: "hello"', '  GREETING: "a; ' + INJECT + '"'),
    ("env-dollar-var", '  GREETING: "hello"', '  GREETING: "$HOME$(' + INJECT + ')"'),
    ("no-proxy-breakout", '  GREETING: "hello"', '  NO_PROXY: "localhost\\"; ' + INJECT + '; echo \\""'),
    ("url-weight-quotes", 'url: "https://example.invalid/u2net.onnx"', 'url: "https://example.invalid/$(touch${IFS}INJECTED)/u2net.onnx"'),
    ("hf-file-pattern-injects", "files: [config.json]", 'files: ["$(' + INJECT + ')"]'),
    ("checkpoint-url-injects", 'url: "https://example.invalid/ck.pth"', 'url: "https://example.invalid/`touch${IFS}INJECTED`/ck.pth"'),
    ("subdir-dollar", "subdirectory: sub/dir", "subdirectory: sub/$(touch)"),
    ("env-value-unicode", '  GREETING: "hello"', '  GREETING: "héllo wörld ✓"'),
]


@pytest.mark.parametrize("cid,old,new", QUOTED, ids=[c[0] for c in QUOTED])
def test_a_dangerous_but_legal_value_compiles_into_scripts_that_run_nothing(tmp_path: Path, cid: str, old: str,
                                                                           new: str) -> None:
    w, specs = _world(tmp_path)
    assert old in BASE, cid
    spec = specs / "hostile.yaml"
    spec.write_text(BASE.replace(old, new, 1))
    before = w.snapshot()
    r = run(["compile", str(spec), "--host", HOST, "--no-lock", "--out", str(w.root / "out"), "--data-dir",
             str(w.root / "data")], cwd=w.root)
    judge(r, w, before, 0)
    source_scripts(w.root / "out", w)
    judge(r, w, before, 0)


@pytest.mark.parametrize("prefix", ["/tmp/has space/env", "/tmp/it's/env", "/tmp/$(touch INJECTED)/env",
                                    "/tmp/`touch INJECTED`/env", '/tmp/a"b/env', "/tmp/semi;colon/env"])
def test_a_prefix_with_shell_characters_is_quoted_everywhere(tmp_path: Path, prefix: str) -> None:
    w, specs = _world(tmp_path)
    spec = specs / "hostile.yaml"
    spec.write_text(BASE)
    before = w.snapshot()
    r = run(["compile", str(spec), "--host", HOST, "--no-lock", "--out", str(w.root / "out"), "--data-dir",
             str(w.root / "data"), "--prefix", prefix], cwd=w.root)
    judge(r, w, before, 0)
    source_scripts(w.root / "out", w)
    assert not w.canary.exists()
