"""The env's startup shims, apart from torch.hub (test_shims_torch_hub.py).

Given TRELLIS's and TripoSR's gradio 4.44.1, which pins gradio_client 1.3.0: with the shim, the
boolean JSON schema pydantic >= 2.11 writes for a dict field (`additionalProperties: true`)
becomes a type; without it, the TypeError of field note 000 §7; a gradio_client that copes is
left untouched. The shims never stop Python from starting (a garbage config, PROVISION_SHIMS=0,
no torch), nothing from a spec reaches the one .pth line Python runs, compile writes them with
the checks that prove them, and apply's activation step puts them where the env's Python runs them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from shimenv import compiled_checklist, make_env, run_python
from test_lock import run

from provision import templating
from provision.apply.shims import env_purelib, install_shims
from provision.render.shims import GRADIO_PROBES, shim_files
from provision.spec import load_target
from provision.verify.checks import verify

from conftest import FIXTURES

pytest.importorskip("gradio_client")
FILE_META = {"type": "object", "additionalProperties": True}  # gradio FileData.meta under pydantic >= 2.11
TRY = f"from gradio_client import utils; print(utils.json_schema_to_python_type({FILE_META!r}))"
STATE = "import sys, _provision_shims as s; print(s.APPLIED, s.ERRORS, [type(f).__name__ for f in sys.meta_path][0])"


@pytest.fixture(scope="module")
def envs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    t = tmp_path_factory.mktemp("shims")
    return {"triposr": make_env(t / "triposr", "triposr"), "bare": make_env(t / "bare"),
            "no-packages": make_env(t / "none", "trellis", packages=False)}


def test_with_the_shim_gradio_client_1_3_types_a_boolean_schema(envs: dict[str, Path]) -> None:
    r = run_python(envs["triposr"], TRY + "; " + STATE)
    assert r.returncode == 0, r.stderr
    typed, state = r.stdout.splitlines()
    assert typed == "Dict(str, Any)"  # what this gradio_client writes for `additionalProperties: {}`
    assert state == "{'gradio_client.utils': 'boolean JSON schemas read as Any'} [] _Finder"


def test_without_it_the_bug_is_there(envs: dict[str, Path]) -> None:
    r = run_python(envs["bare"], TRY)
    assert r.returncode != 0 and "TypeError: argument of type 'bool' is not iterable" in r.stderr


def test_every_other_schema_reads_as_before(envs: dict[str, Path]) -> None:
    schemas = [{"type": "string"}, {"type": "array", "items": {"type": "integer"}},
               {"type": "object", "properties": {"path": {"type": "string"}, "size": {"anyOf": [{"type": "integer"},
                                                                                              {"type": "null"}]}}}]
    code = f"from gradio_client import utils; print([utils.json_schema_to_python_type(s) for s in {schemas!r}])"
    shimmed, bare = run_python(envs["triposr"], code), run_python(envs["bare"], code)
    assert shimmed.returncode == 0 and shimmed.stdout == bare.stdout, shimmed.stderr + bare.stderr


def test_a_gradio_client_that_copes_with_booleans_is_left_as_it_is(envs: dict[str, Path], tmp_path: Path) -> None:
    fixed = tmp_path / "fixed" / "gradio_client"
    fixed.mkdir(parents=True)
    (fixed / "__init__.py").write_text("")
    (fixed / "utils.py").write_text("def json_schema_to_python_type(schema):\n    return 'dict(str, Any)'\n")
    r = run_python(envs["triposr"], "from gradio_client import utils; import _provision_shims as s; "
                   "print(utils.json_schema_to_python_type.__module__, hasattr(utils.json_schema_to_python_type, "
                   "'__provision_shim__'), s.APPLIED)", PYTHONPATH=str(tmp_path / "fixed"))
    assert r.stdout.strip() == ("gradio_client.utils False {'gradio_client.utils': "
                                "'not needed: this gradio_client reads boolean schemas itself'}"), r.stderr


def test_verify_runs_the_behaviour_itself_in_the_env(envs: dict[str, Path]) -> None:
    checklist = compiled_checklist("triposr", kinds=("gradio-schema",))
    assert [c["schemas"] for c in checklist["checks"]] == [GRADIO_PROBES]
    good = verify(checklist, str(envs["triposr"]), {"PATH": "/usr/bin:/bin"})[0][0]
    assert good.status == "ok" and "gradio_client 1.3.0 reads them (the provision startup shim)" in good.detail
    bad = verify(checklist, str(envs["bare"]), {"PATH": "/usr/bin:/bin"})[0][0]
    assert bad.status == "fail" and "is not iterable" in bad.detail and "not installed" in bad.detail
    assert bad.fix.startswith("provision apply triposr --from-step activation")
    off = verify(checklist, str(envs["triposr"]), {"PATH": "/usr/bin:/bin", "PROVISION_SHIMS": "0"})[0][0]
    assert off.status == "fail" and "PROVISION_SHIMS=0 turns the startup shims off" in off.detail


@pytest.mark.parametrize("config", ['{"torch_hub": ', '{"torch_hub": ["facebookresearch/dinov2"]}', "42"])
def test_a_garbage_config_starts_python_and_patches_nothing(envs: dict[str, Path], tmp_path: Path, config: str) -> None:
    py = make_env(tmp_path, "trellis")
    module = env_purelib(str(py)) / "_provision_shims.py"
    lines = module.read_text().splitlines(keepends=True)
    module.write_text("".join(f"CONFIG = {config!r}\n" if li.startswith("CONFIG = ") else li for li in lines))
    r = run_python(py, "import torch.hub, gradio_client.utils as u, _provision_shims as s; "
                   "print(hasattr(torch.hub._parse_repo_info, '__provision_shim__'), s.APPLIED, [e[:7] for e in s.ERRORS])")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False {} ['config:']", r.stdout


def test_provision_shims_0_installs_nothing(envs: dict[str, Path]) -> None:
    r = run_python(envs["triposr"], "import sys, gradio_client.utils as u; "
                   "print(any(hasattr(f, 'provision_shims') for f in sys.meta_path), "
                   "hasattr(u.json_schema_to_python_type, '__provision_shim__'))", PROVISION_SHIMS="0")
    assert r.returncode == 0 and r.stdout.strip() == "False False", r.stderr


def test_in_an_env_without_torch_or_gradio_python_starts_and_imports_fail_as_ever(envs: dict[str, Path]) -> None:
    py = envs["no-packages"]
    assert run_python(py, "import json; print('up')").stdout == "up\n"
    r = run_python(py, "import torch")
    assert r.returncode == 1 and r.stderr.strip().endswith("ModuleNotFoundError: No module named 'torch'")
    assert run_python(py, STATE).stdout.strip() == "{} [] _Finder"  # waiting, patching nothing


def test_a_torch_whose_hub_lacks_the_function_imports_unpatched(envs: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("from . import hub\n")
    (tmp_path / "torch" / "hub.py").write_text("def load(*a, **k):\n    return 'upstream'\n")
    r = run_python(make_env(tmp_path / "e", "trellis", packages=False),
                   "import torch, _provision_shims as s; print(torch.hub.load(), [e[:25] for e in s.ERRORS])",
                   PYTHONPATH=str(tmp_path))
    assert r.returncode == 0 and r.stdout.strip() == "upstream ['torch.hub: AttributeError']", r.stderr


def test_nothing_from_a_spec_reaches_the_pth_line_python_runs() -> None:
    fixed = (templating.templates_dir() / "compile" / "shims.pth.j2").read_text()
    for target in ("trellis", "triposr"):
        assert shim_files(load_target(target).spec)["site-packages/_provision_shims.pth"] == fixed
    assert [li for li in fixed.splitlines() if not li.startswith("#")] == ["import _provision_shims"]
    refusing = templating._env("code-pth", "compile/shims.pth.j2")  # a value added to it one day: refused
    with pytest.raises(templating.UnsafeValue, match="into a .pth file Python executes"):
        refusing.from_string("import {{ name }}\n").render(name="os; os.system('x')")
    with pytest.raises(templating.UnsafeValue, match="code Python runs at start-up"):
        templating.render("compile/pth.j2", what="x", path="import os")  # the extension shims keep their rule


def test_a_hostile_config_string_stays_a_string_in_the_module() -> None:
    hostile = "'''\"\"\"\nimport os; os.system('rm -rf ~')  # \x00 \u2028 é"
    text = templating.render("compile/provision_shims.py.j2", config=hostile)
    line = next(li for li in text.splitlines() if li.startswith("CONFIG = "))
    assert line.isascii() and eval(line.removeprefix("CONFIG = ")) == hostile  # one literal, the same string
    with pytest.raises(templating.UnsafeValue):
        templating.render("compile/provision_shims.py.j2", config={"not": "text"})


@pytest.mark.parametrize("target,host,kinds", [
    ("trellis", "rtx3090-wsl2-16g", {"torch-hub-local", "gradio-schema"}),
    ("triposr", "rtx5070ti-wsl2", {"gradio-schema"}),
    ("trellis2", "a6000-linux-535", set()),  # no torch.hub repo, no gradio shim: no shims at all
])
def test_compile_writes_the_shims_with_the_checks_that_prove_them(tmp_path: Path, target: str, host: str,
                                                                  kinds: set[str]) -> None:
    code, out = run("compile", target, "--host", str(FIXTURES / "hosts" / f"{host}.json"), "--out",
                    str(tmp_path / "c"), "--no-lock")
    assert code == 0, out
    checks = json.loads((tmp_path / "c" / "checklist.json").read_text())["checks"]
    assert {c["kind"] for c in checks} & {"torch-hub-local", "gradio-schema"} == kinds
    assert all(c["fix"].startswith(f"provision apply {target} --from-step activation") for c in checks
               if c["kind"] in kinds)
    module = tmp_path / "c" / "site-packages" / "_provision_shims.py"
    readme = (tmp_path / "c" / "README.md").read_text()
    assert module.is_file() == bool(kinds) == ("startup shims" in readme)  # trellis2 needs none: it gets none
    if kinds:
        line = next(li for li in module.read_text().splitlines() if li.startswith("CONFIG = "))
        config = json.loads(eval(line.removeprefix("CONFIG = ")))
        assert bool(config["torch_hub"]) == ("torch-hub-local" in kinds)
        assert config["shims"] == (["gradio-boolean-schema"] if "gradio-schema" in kinds else [])


def test_apply_s_activation_step_puts_them_where_the_env_s_python_runs_them(tmp_path: Path) -> None:
    from provision.apply.context import ApplyOptions, Ctx
    from provision.apply.execute import do_activation, do_compile
    from provision.host import load_host
    from provision.plan import PlanOptions, make_plan

    loaded, host = load_target("triposr"), load_host(FIXTURES / "hosts" / "rtx5070ti-wsl2.json")
    prefix = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    plan = make_plan(loaded, host, PlanOptions(prefix=str(prefix), data_dir=str(tmp_path / "data")))
    said: list[str] = []
    ctx = Ctx(loaded, plan, ApplyOptions(lockdir=tmp_path / "nolocks", existing=True), said.append, host)
    do_compile(ctx, plan.steps[0], tmp_path / "log")
    purelib = env_purelib(ctx.py)
    (purelib / "_provision_shims.py").write_text("# mine\n")  # a file of the user's by that name: kept
    do_activation(ctx, plan.steps[0], tmp_path / "log")
    assert (purelib / "_provision_shims.py.bak").read_text() == "# mine\n" and "kept your earlier" in said[0]
    r = subprocess.run([ctx.py, "-c", STATE], capture_output=True, text=True)
    assert r.stdout.strip() == "{} [] _Finder", r.stderr  # imported at start-up, waiting for gradio_client
    do_activation(ctx, plan.steps[0], tmp_path / "log")
    assert len(said) == 1 and not (purelib / "_provision_shims.py.bak.1").exists()  # a re-run: nothing to back up
    (ctx.compiled / "site-packages" / "_provision_shims.py").unlink()  # a spec that needs no shims any more
    (ctx.compiled / "site-packages" / "_provision_shims.pth").unlink()
    assert install_shims(ctx.py, ctx.compiled, said.append) == []
    assert not (purelib / "_provision_shims.pth").exists() and not (purelib / "_provision_shims.py").exists()
    assert (purelib / "_provision_shims.py.bak").is_file()  # the user's file stays
