"""Fleet stage: many machines, one build per toolchain.

    groups.py   host files -> build groups (the toolchain apply's build cache is keyed by),
                one builder each, and the hosts that cannot run the target (pure)
    ansible.py  a fleet plan -> an Ansible inventory, playbook and tasks: builders apply and
                publish to the build index, every other host applies from it, then verify

The build index itself (wheels, PEP 503 pages, upload) is offline/buildindex.py and
offline/publish.py; apply reads it (apply/fromindex.py).
"""

from .ansible import AnsibleOptions, ansible_files, write_files
from .groups import FleetHost, FleetPlan, Group, Unfit, plan_fleet

__all__ = ["AnsibleOptions", "FleetHost", "FleetPlan", "Group", "Unfit", "ansible_files", "plan_fleet", "write_files"]
