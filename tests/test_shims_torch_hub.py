"""TRELLIS loads DINOv2 with `torch.hub.load('facebookresearch/dinov2', 'dinov2_vitl14_reg', pretrained=True)`.

Given an env whose torch.hub cache `provision seed` filled, that call makes no connection at all
(no DNS, no socket) once the env has the startup shim, whatever proxy is set; without the shim
(the control) the same call asks github.com first, and a proxy answering 403 inside its TLS
tunnel makes it fail with everything cached (issue 17, item 3). A repo the spec does not seed
goes to the network as upstream torch does. Real CPU torch (the test extra's), real interpreter
starts; the network is an audit hook and a proxy on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from shimenv import compiled_checklist, make_env, seed_hub, trellis_load

from provision.verify.checks import verify

from fakeproxy import FakeProxy, github_certificate

pytest.importorskip("torch")
DINOV2 = "facebookresearch/dinov2"
LOADED = [0.5, 0.5, 0.5, 0.5]  # the seeded checkpoint's weights


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two envs of the same packages, one with the shims `provision compile trellis` writes, and a
    seeded hub: DINOv2, and example/tinyhub, a repo no spec names."""
    t = tmp_path_factory.mktemp("hub")
    return {"shimmed": make_env(t / "shimmed", "trellis"), "bare": make_env(t / "bare"),
            "torch_home": seed_hub(t / "torch", DINOV2, "example/tinyhub"), "t": t}


def proxied(url: str) -> dict[str, str]:
    return {v: url for v in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")}


def test_with_the_network_cut_the_shimmed_env_loads_dinov2_without_one_network_event(world: dict) -> None:
    out = trellis_load(world["shimmed"], DINOV2, TORCH_HOME=str(world["torch_home"]), TEST_NETWORK="cut")
    assert out.get("weights") == LOADED, out
    assert out["events"] == []  # no DNS lookup, no socket, not even a urllib request
    assert out["applied"] == {"torch.hub": f"refs of {DINOV2} resolved from the cache"} and out["errors"] == []


def test_without_the_shim_the_same_load_asks_github_first(world: dict) -> None:
    """The control: the hook sees what upstream torch does, so an empty list above means something."""
    out = trellis_load(world["bare"], DINOV2, TORCH_HOME=str(world["torch_home"]), TEST_NETWORK="cut")
    assert out.get("weights") == LOADED, out  # a cut cable is a URLError: upstream falls back to the cache
    assert "urllib.Request" in out["events"] and "socket.getaddrinfo" in out["events"]
    assert out["applied"] is None


def test_behind_a_proxy_refusing_everything_the_shimmed_env_never_calls_it(world: dict) -> None:
    with FakeProxy("refuse") as proxy:
        out = trellis_load(world["shimmed"], DINOV2, TORCH_HOME=str(world["torch_home"]), **proxied(proxy.url))
        assert out.get("weights") == LOADED and out["events"] == [], out
        assert proxy.connections == 0
        control = trellis_load(world["bare"], DINOV2, TORCH_HOME=str(world["torch_home"]), **proxied(proxy.url))
        assert proxy.connections >= 1 and "socket.connect" in control["events"]
        assert any(r.startswith("CONNECT github.com:443") for r in proxy.requests), proxy.requests


def test_a_proxy_answering_403_inside_its_tls_tunnel_breaks_upstream_and_not_the_shimmed_env(world: dict) -> None:
    """Field note 000's proxy: CONNECT accepted, then its own 403 over TLS. torch re-raises an
    HTTPError (only a URLError falls back to the cache): the cached load fails, unless shimmed."""
    pytest.importorskip("cryptography")
    ca, cert, key = github_certificate(world["t"] / "certs")
    with FakeProxy("intercept", (cert, key)) as proxy:
        env = {"TORCH_HOME": str(world["torch_home"]), "SSL_CERT_FILE": str(ca), **proxied(proxy.url)}
        broken = trellis_load(world["bare"], DINOV2, **env)
        assert "HTTP Error 403" in broken.get("error", ""), broken  # the bug, reproduced
        seen = proxy.connections
        assert seen >= 1
        out = trellis_load(world["shimmed"], DINOV2, **env)
        assert out.get("weights") == LOADED and out["events"] == [], out
        assert proxy.connections == seen  # not one more


def test_a_repo_the_spec_does_not_seed_still_goes_to_the_network(world: dict) -> None:
    out = trellis_load(world["shimmed"], "example/tinyhub", TORCH_HOME=str(world["torch_home"]), TEST_NETWORK="cut")
    assert "urllib.Request" in out["events"] and "socket.getaddrinfo" in out["events"], out


def test_a_seeded_repo_missing_from_the_cache_is_left_to_upstream(world: dict, tmp_path: Path) -> None:
    """The shim only answers from a cache that holds the source: no hubconf.py, no shortcut."""
    empty = tmp_path / "torch"
    (empty / "hub").mkdir(parents=True)
    out = trellis_load(world["shimmed"], DINOV2, TORCH_HOME=str(empty), TEST_NETWORK="cut")
    assert "urllib.Request" in out["events"] and "weights" not in out, out


def test_an_explicit_ref_is_upstream_s_business(world: dict) -> None:
    out = trellis_load(world["shimmed"], f"{DINOV2}:main", TORCH_HOME=str(world["torch_home"]), TEST_NETWORK="cut")
    assert out.get("weights") == LOADED and out["events"] == [], out  # torch needs no network for a given ref


def test_verify_proves_it_in_the_env_and_names_the_fix_where_it_does_not_hold(world: dict, tmp_path: Path) -> None:
    checklist = compiled_checklist("trellis", kinds=("torch-hub-local", "torch-hub-offline"))
    hub_id = f"torch-hub-local-{DINOV2}"
    with FakeProxy("refuse") as proxy:
        env = {"TORCH_HOME": str(world["torch_home"]), **proxied(proxy.url), "PATH": "/usr/bin:/bin"}
        good, _ = verify(checklist, str(world["shimmed"]), env)
        bad, _ = verify(checklist, str(world["bare"]), env)
        empty, _ = verify(checklist, str(world["shimmed"]), {**env, "TORCH_HOME": str(tmp_path / "nothing")})
        assert proxy.connections == 0  # verify refuses every network event itself
    by = {o.id: o for o in good}
    assert by[hub_id].status == "ok" and "startup shim" in by[hub_id].detail, by[hub_id]
    host = by[f"torch-hub-{DINOV2}"]  # the host-side cache check: the proxy no longer matters
    assert host.status == "ok" and "proxy does not matter" in host.detail, host
    miss = {o.id: o for o in bad}[hub_id]
    assert miss.status == "fail" and "asked the network first" in miss.detail and "not installed" in miss.detail
    assert miss.fix.startswith("provision apply trellis --from-step activation")
    unseeded = {o.id: o for o in empty}[hub_id]
    assert unseeded.status == "fail" and "hubconf.py is not there" in unseeded.detail
    assert "provision seed" in unseeded.fix and "lacks this repo's source" in (unseeded.why or "")
