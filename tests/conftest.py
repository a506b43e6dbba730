"""Shared test setup: nothing touches the user's home or real caches."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    for var in ("HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "HF_HOME", "TORCH_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()))
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                "NO_PROXY", "no_proxy", "HF_TOKEN", "PROVISION_ENVS", "PROVISION_CACHE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def minimal_spec_text() -> str:
    return (FIXTURES / "specs" / "minimal.yaml").read_text()
