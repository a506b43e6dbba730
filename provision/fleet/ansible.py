"""`provision fleet ansible`: a fleet plan -> an Ansible inventory and playbook (provision
generates, Ansible runs).

    inventory.yml     the hosts: provision_builders, provision_installers, one
                      provision_group_<toolchain> per build group, provision_unfit; the bundle, the
                      build index and how to run provision as variables
    playbook.yml      builders first (doctor, apply, publish, verify), then every other host
                      (doctor, apply from the build index, verify)
    tasks.yml         the tasks both plays run
    hosts/NAME.json   the facts each host was planned with (checked, secrets masked)

Every value in the inventory comes from a host file or the command line and is written through
the YAML template language (templating.py): JSON scalars, no control characters, no Jinja
delimiters Ansible would evaluate. A rehearsal (`--rehearse DIR`) runs every host on this
machine with a local connection, each in DIR/NAME/ (its prefix, data dir and facts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import ids
from ..errors import UsageError
from ..fsutil import write_ours
from ..host import HostFacts
from ..spec import LoadedSpec
from ..templating import render
from .groups import FleetPlan

MARKER = "# provision fleet ansible"


@dataclass(frozen=True)
class AnsibleOptions:
    target: str  # what each host passes to provision: a target name, or a spec path as the hosts see it
    cache_url: str | None = None  # where hosts read the build index (its simple/ URL)
    publish_to: str | None = None  # where builders publish: a directory they see, or an upload URL
    bundle: str | None = None  # a bundle directory as each host sees it (NFS, USB, a copy)
    hf_endpoint: str | None = None  # a mirror of the Hub: each host mirrors the weights into its bundle
    url_map: tuple[str, ...] = ()  # PREFIX=REPLACEMENT: URL weights from a plain HTTP mirror (mirror --url-map)
    provision_cmd: tuple[str, ...] = ("provision",)
    apply_args: tuple[str, ...] = ()
    prefix: str | None = None
    data_dir: str | None = None
    lockdir: str | None = None
    probe: bool = True  # doctor probes each host and apply plans from that (refusing a host whose toolchain moved)
    rehearse: str | None = None  # an absolute directory: every host is this machine
    extensions: tuple[str, ...] = field(default_factory=tuple)  # what builders publish


def check_options(o: AnsibleOptions) -> None:
    """Every value that lands in the inventory, checked where it enters (exit 2 on a bad one)."""
    def url(v: str | None, flag: str) -> None:
        if v is not None:
            try:
                ids.check_url(v, flag)
            except ValueError as e:
                raise UsageError(f"{flag}: {e}") from None

    url(o.cache_url, "--cache-url")
    url(o.hf_endpoint, "--hf-endpoint")
    if o.publish_to is not None and o.publish_to.startswith(("http://", "https://")):
        url(o.publish_to, "--publish-to")
    for flag, v in (("--publish-to", o.publish_to), ("--bundle", o.bundle), ("--prefix", o.prefix),
                    ("--data-dir", o.data_dir), ("--lockdir", o.lockdir), ("--rehearse", o.rehearse)):
        if v is not None and not v.startswith(("http://", "https://")):
            try:
                ids.check_abs_path(v, flag)
            except ValueError as e:
                raise UsageError(f"{flag}: {e}", hint="a path as the hosts see it, absolute") from None
    if o.publish_to and not o.cache_url:
        raise UsageError("--publish-to without --cache-url: the other hosts would not know where to read the builds",
                         hint="pass --cache-url URL, the simple/ URL that serves what builders publish")
    if o.bundle and (o.hf_endpoint or o.url_map):
        raise UsageError("--bundle is a bundle the hosts seed from; --hf-endpoint and --url-map are for hosts that "
                         "mirror their own", hint="give one or the other")
    for m in o.url_map:
        old, sep, new = m.partition("=")
        if not sep or not old or not new:
            raise UsageError(f"--url-map {m!r}: expected PREFIX=REPLACEMENT")
        url(new, "--url-map")
    for v in (o.target, *o.provision_cmd, *o.apply_args):
        try:
            ids.check_text(v, "a command-line value", 4096)
        except ValueError as e:
            raise UsageError(str(e)) from None


def _host_vars(name: str, o: AnsibleOptions) -> dict[str, object]:
    if o.rehearse:
        root = f"{o.rehearse.rstrip('/')}/{name}"
        return {"provision_chdir": root, "provision_facts": f"{root}/host.json",
                "provision_prefix": f"{root}/env", "provision_data_dir": f"{root}/data"}
    return {}


def ansible_files(loaded: LoadedSpec, fleet: FleetPlan, facts: dict[str, HostFacts], o: AnsibleOptions) -> dict[str, str]:
    """Every file of the Ansible project, as text (pure)."""
    check_options(o)
    probe = o.probe and not o.rehearse
    # no shared bundle: each host mirrors its own (from the mirrors given, else upstream), under provision_chdir
    bundle = o.bundle or f"provision-fleet/{loaded.name}-bundle"
    all_vars: dict[str, object] = {
        "provision_target": o.target, "provision_cmd": list(o.provision_cmd),
        "provision_cache_url": o.cache_url, "provision_publish_to": o.publish_to,
        "provision_publish_only": [a for e in o.extensions for a in ("--only", e)],
        "provision_bundle": bundle, "provision_mirror": o.bundle is None, "provision_hf_endpoint": o.hf_endpoint, "provision_url_map": list(o.url_map),
        "provision_apply_args": list(o.apply_args), "provision_lockdir": o.lockdir,
        "provision_prefix": o.prefix, "provision_data_dir": o.data_dir, "provision_probe": probe,
        "provision_chdir": "~", "provision_facts": f"provision-fleet/{loaded.name}-host.json",
    }
    hosts = {h.name: _host_vars(h.name, o) for h in fleet.hosts}
    groups = [{"name": f"provision_group_{g.digest}", "hosts": g.hosts,
               "vars": {"provision_fleet_group": g.digest, "provision_builder": g.builder,
                        "provision_toolchain": g.toolchain}} for g in fleet.groups]
    unfit = {u.name: {"provision_unfit_reason": "; ".join(u.reasons)} for u in fleet.unfit}
    files = {
        "inventory.yml": render("fleet/inventory.yml.j2", target=loaded.name, all_vars=all_vars, hosts=hosts,
                                builders=[g.builder for g in fleet.groups],
                                installers=[n for g in fleet.groups for n in g.installers],
                                groups=groups, unfit=unfit, rehearse=bool(o.rehearse)),
        "playbook.yml": render("fleet/playbook.yml.j2", target=loaded.name),
        "tasks.yml": render("fleet/tasks.yml.j2"),
    }
    for h in fleet.hosts:
        files[f"hosts/{h.name}.json"] = facts[h.name].to_json()
    return files


def write_files(files: dict[str, str], out: Path) -> list[Path]:
    """Write the project into `out`; a file of the same name that provision did not write is kept
    as a backup first (the backups are returned). Host facts files are provision's by their path."""
    from .. import paths

    backups = []
    for rel, text in files.items():
        path = paths.inside(out, rel, "a generated Ansible file")
        if rel.endswith(".json"):  # JSON has no comment to mark it with: ours when its directory is
            ours = (path.parent / paths.MARKER).is_file() or not path.parent.exists()
            paths.owned_dir(path.parent)
            b = write_ours(path, text, marker="{" if ours else "\0")
        else:
            b = write_ours(path, text, marker=MARKER)
        if b is not None:
            backups.append(b)
    return backups
