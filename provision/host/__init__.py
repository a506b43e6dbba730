"""Host stage: the facts about one machine the planner needs.

    facts.py  `HostFacts`, the typed record, and `load_host` for a saved host file (pure)
    probe.py  gathering those facts on this machine (the stage's only effects)

Any host can be planned for from any machine: `provision doctor --save host.json` there,
`--host host.json` here.
"""

from .facts import GPU, Compiler, HostFacts, Nvcc, load_host

__all__ = ["GPU", "Compiler", "HostFacts", "Nvcc", "load_host"]
