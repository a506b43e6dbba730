"""Strict identifiers: one validator per kind of name that crosses the trust boundary.

Everything provision reads from a spec, a host file, a bundle manifest or the command line
and later writes into a path, a script or a URL is one of these kinds, checked where it
enters. Every check is a full-string match (`re.fullmatch`: a `$` anchor would accept a
trailing newline), refuses control characters, and says what a valid value looks like.
Each `check_*` returns the value or raises ValueError with a message fit for a user.

Rules, after huggingface_hub's validate_repo_id:
- names (targets, packages, env variables, variants): short, ASCII, no separators;
- commits: 7-40 lowercase hex; hashes: their exact length in lowercase hex;
- relative paths (files inside a repo, extension subdirectories, bundle places): POSIX,
  no leading `/` or `~`, no `..`, `.` or empty component, no backslash, no control char;
- URLs: http(s) or file, no whitespace or control characters, no credentials in them.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

CONTROL = re.compile(r"[\x00-\x1f\x7f]")

TARGET = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
PACKAGE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
VARIANT = re.compile(r"(?:cu\d{3}|cpu)(?:-[a-z0-9]+){0,4}")
COMMIT = re.compile(r"[0-9a-f]{7,40}")
FULL_COMMIT = re.compile(r"[0-9a-f]{40}")
SHA256 = re.compile(r"[0-9a-f]{64}")
SHA1 = re.compile(r"[0-9a-f]{40}")
MD5 = re.compile(r"[0-9a-f]{32}")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}(?:\.[A-Za-z_][A-Za-z0-9_]{0,99}){0,9}")
HF_REPO = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}")
GITHUB_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}")
HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?!\.)){0,252}")
REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
MAX_PATH = 4096


def _full(pattern: re.Pattern[str], value: object, what: str, looks_like: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if not pattern.fullmatch(value):
        raise ValueError(f"{value!r} is not {looks_like}")
    return value


def check_target(v: object) -> str:
    return _full(TARGET, v, "a target name", "a target name (lowercase letters, digits, . _ -; at most 64)")


def check_package(v: object) -> str:
    return _full(PACKAGE, v, "a package name", "a valid package name")


def check_env_name(v: object) -> str:
    return _full(ENV_NAME, v, "an environment variable name", "an environment variable name (A-Z, 0-9, _)")


def check_variant(v: object) -> str:
    return _full(VARIANT, v, "a variant", "a variant key like cu121, cu128 or cu121-pypi")


def check_commit(v: object) -> str:
    return _full(COMMIT, v, "a commit", "a git commit (7 to 40 lowercase hex digits)")


def check_full_commit(v: object) -> str:
    return _full(FULL_COMMIT, v, "a commit", "a full git commit (40 lowercase hex digits)")


def check_sha256(v: object) -> str:
    return _full(SHA256, v, "a sha256", "a sha256 (64 lowercase hex digits)")


def check_sha1(v: object) -> str:
    return _full(SHA1, v, "a sha1", "a sha1 (40 lowercase hex digits)")


def check_md5(v: object) -> str:
    return _full(MD5, v, "an md5", "an md5 (32 lowercase hex digits)")


def check_module(v: object) -> str:
    return _full(MODULE, v, "a module name", "an importable module name")


def check_identifier(v: object) -> str:
    return _full(IDENTIFIER, v, "a Python name", "a Python name (letters, digits, _)")


# Variables a spec or a bundle may never set: each makes the loader, the shell or Python run
# code of someone else's choosing the moment the env is activated.
_LOADER_ENV = re.compile(r"(?:LD_|DYLD_|PYTHON|PERL5|RUBY|NODE_|BASH_|JAVA_TOOL|_JAVA_|GCONV|GIO_|GTK_|QT_PLUGIN|LUA_).*"
                         r"|PATH|ENV|IFS|PS[0-4]|PROMPT_COMMAND|SHELLOPTS|BASHOPTS|CDPATH|HOME|SHELL|TERM|USER|LOGNAME"
                         r"|CONDA_PREFIX|VIRTUAL_ENV|GIT_.*|SSL_CERT_.*|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|PIP_.*|UV_.*")


def check_settable_env(v: object) -> str:
    """An env variable name a spec's activation or a bundle may set (not LD_PRELOAD, PATH, PYTHON*...)."""
    check_env_name(v)
    if _LOADER_ENV.fullmatch(v):  # type: ignore[arg-type]
        raise ValueError(f"{v} changes how programs load or start (the loader, the shell, Python, pip, git): "
                         "provision never sets it from a spec or a bundle")
    return v  # type: ignore[return-value]


def check_hf_repo(v: object) -> str:
    _full(HF_REPO, v, "a Hugging Face repo id", "a Hugging Face repo id (owner/name)")
    if "--" in v or ".." in v:  # type: ignore[operator]
        raise ValueError(f"{v!r} is not a Hugging Face repo id: '--' and '..' are not allowed")
    return v  # type: ignore[return-value]


def check_github_repo(v: object) -> str:
    _full(GITHUB_REPO, v, "a GitHub repo", "a GitHub repository (owner/name)")
    if v.split("/")[1] in (".", ".."):  # type: ignore[union-attr]
        raise ValueError(f"{v!r} is not a GitHub repository")
    return v  # type: ignore[return-value]


def check_host_name(v: object) -> str:
    """A fleet host's name (an inventory name, a file name): letters, digits, `-`, `_`, single dots."""
    _full(HOST_NAME, v, "a host name", "a host name (letters, digits, - _ and single dots; at most 253)")
    if v.endswith("."):  # type: ignore[union-attr]
        raise ValueError(f"{v!r} is not a host name: it ends with a dot")
    return v  # type: ignore[return-value]


def check_revision(v: object) -> str:
    """A branch, tag or commit as a Hub or git ref: no '..', no '//', no trailing '/' or '.lock'."""
    _full(REVISION, v, "a revision", "a revision (a commit, tag or branch name)")
    if ".." in v or "//" in v or v.endswith(("/", ".lock", ".")):  # type: ignore[operator,union-attr]
        raise ValueError(f"{v!r} is not a revision: '..', '//' and a trailing '/' or '.' are not allowed")
    return v  # type: ignore[return-value]


def check_text(v: object, what: str = "a value", limit: int = 10_000) -> str:
    """Free text that lands in a file or a script: one line, no control characters."""
    if not isinstance(v, str):
        raise ValueError(f"{what} must be a string, got {type(v).__name__}")
    if CONTROL.search(v):
        raise ValueError(f"{v[:80]!r}: {what} must not contain control characters (a newline, a tab, ...)")
    if len(v) > limit:
        raise ValueError(f"{what} is {len(v)} characters long (at most {limit})")
    return v


def check_rel_path(v: object, what: str = "a path") -> str:
    """A relative POSIX path that stays inside whatever directory it is joined to."""
    check_text(v, what, MAX_PATH)
    s: str = v  # type: ignore[assignment]
    if not s:
        raise ValueError(f"{what} is empty")
    if s.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", s):
        raise ValueError(f"{s!r}: {what} must be relative, not absolute")
    if "\\" in s:
        raise ValueError(f"{s!r}: {what} uses a backslash; write it with '/'")
    parts = s.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{s!r}: {what} must not contain '..', '.' or an empty part")
    return s


def check_file_name(v: object, what: str = "a file name") -> str:
    """One path component: a name inside a directory, never a way out of it."""
    check_rel_path(v, what)
    if "/" in v:  # type: ignore[operator]
        raise ValueError(f"{v!r}: {what} must be a single name, without '/'")
    return v  # type: ignore[return-value]


def check_abs_path(v: object, what: str = "a path") -> str:
    """An absolute path provision writes under (a prefix, a data dir): no control characters."""
    check_text(v, what, MAX_PATH)
    s: str = v  # type: ignore[assignment]
    if not s.startswith("/"):
        raise ValueError(f"{s!r}: {what} must be an absolute path")
    if any(p == ".." for p in s.split("/")):
        raise ValueError(f"{s!r}: {what} must not contain '..'")
    return s


def check_url(v: object, what: str = "a URL", credentials: bool = False) -> str:
    """An http(s) or file URL without whitespace or control characters (and, unless allowed,
    without user:password@ in it: credentials belong in the environment or a netrc)."""
    check_text(v, what, 8192)
    s: str = v  # type: ignore[assignment]
    if not re.fullmatch(r"(?:https?|file)://\S+", s):
        raise ValueError(f"{s!r} is not an http(s) or file URL")
    try:
        parts = urlsplit(s)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as e:
        raise ValueError(f"{s!r} is not a valid URL ({e})") from None
    if not credentials and "@" in parts.netloc:
        raise ValueError(f"{what} must not carry credentials (user:password@): "
                         "put them in the environment (HF_TOKEN) or ~/.netrc, never in a file")
    if CONTROL.search(unquote(s)):
        raise ValueError(f"{what} hides control characters behind %-escapes")
    return s


def url_file_name(url: str) -> str:
    """The last path segment of a URL, %-decoded, checked to be one safe file name:
    `.../%2E%2E%2Fx` does not become a way out of the destination."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return check_file_name(name, f"the file name of {url}")


def check_place(v: str) -> str:
    """Where a downloaded file goes: `{NAME}/rel/path` or `{data}/rel/path`, never absolute."""
    m = re.fullmatch(r"\{([A-Za-z_][A-Za-z0-9_]*)\}/(.+)", v, flags=re.S)
    if not m:
        raise ValueError(f"{v!r} must start with a placeholder directory, e.g. {{data}}/name or {{U2NET_HOME}}/name")
    check_rel_path(m.group(2), "the path after the placeholder")
    return v
