"""Secrets never leave the process: one function masks them in everything provision prints
or stores (messages, hints, JSON, host files, bundle manifests).

Masked: the userinfo of any URL, with or without a scheme (`http://u:pw@proxy:3128`,
`u:pw@proxy:3128`, a token used as a proxy user name `hf_x@proxy`), tokens in any position
(`hf_...`, GitHub's `ghp_`/`github_pat_`, `Bearer ...`), and the value of every secret-named
environment variable that is set (HF_TOKEN, *_PASSWORD, *_SECRET, ...), wherever it appears.
"""

from __future__ import annotations

import os
import re

MASK = "***"
SECRET_NAME = re.compile(r"(?:^|_)(TOKEN|PASSWORD|PASSWD|SECRET|API_KEY|APIKEY|CREDENTIALS?|AUTH)(?:_|$)", re.I)
_TOKENS = re.compile(r"\b(?:hf_[A-Za-z0-9]{8,}|gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{20,})\b")
_BEARER = re.compile(r"(?i)\b(bearer|token|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
# userinfo after a scheme: http://u:pw@host, https://token@host
_SCHEMED = re.compile(r"(?P<pre>[A-Za-z][A-Za-z0-9+.-]*://)[^\s/@\"'<>]+@")
# without a scheme (what a proxy variable may hold): u:pw@host, or name@host:port
_BARE = re.compile(r"(?P<pre>^|[\s=\"',;(])(?:[^\s/@\"',;():=]+:[^\s/@\"',;()=]*|[^\s/@\"',;():=]+(?=@[A-Za-z0-9.-]+:\d))@")


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def _env_secrets() -> list[str]:
    vals = [v for k, v in os.environ.items() if is_secret_name(k) and len(v) >= 6]
    return sorted(set(vals), key=len, reverse=True)


def redact(text: str, env_secrets: list[str] | None = None) -> str:
    """`text` with every secret we can recognise replaced by ***. (`env_secrets`: the secret
    variables' values, when the caller read them once for many strings.)"""
    if not text:
        return text
    for v in _env_secrets() if env_secrets is None else env_secrets:
        text = text.replace(v, MASK)
    text = _SCHEMED.sub(lambda m: f"{m.group('pre')}{MASK}@", text)
    text = _BARE.sub(lambda m: f"{m.group('pre')}{MASK}@", text)
    text = _TOKENS.sub(MASK, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return text


def redact_obj(data: object, env_secrets: list[str] | None = None) -> object:
    """`redact` through a JSON-like structure (dict keys stay, values are masked)."""
    if env_secrets is None:
        env_secrets = _env_secrets()  # once for the whole structure, not once per string
    if isinstance(data, str):
        return redact(data, env_secrets)
    if isinstance(data, dict):
        return {k: redact_obj(v, env_secrets) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_obj(v, env_secrets) for v in data]
    return data
