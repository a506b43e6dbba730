"""Launch stage: `provision run` starts the app an applied env holds, and stops all of it.

    model.py    the LaunchPlan (argv, cwd, every variable set and why, port, URL, probe, log)
    decide.py   spec x plan x options x observed facts -> LaunchPlan (pure: no I/O)
    observe.py  the facts it needs: the env, its Python, the upstream tree, the Hub cache,
                free ports and who holds a taken one, the hosts file
    process.py  start it in its own session, tee its output, probe it, stop its whole group

It sits after verify and before apply in the pipeline: it reads the spec and the plan only
(what apply left behind it observes on disk), so no module of apply's is needed.
"""

from .decide import make_launch
from .model import EnvChange, LaunchError, LaunchOptions, LaunchPlan, Observed, PortState, Probe
from .observe import observe
from .process import run

__all__ = ["EnvChange", "LaunchError", "LaunchOptions", "LaunchPlan", "Observed", "PortState", "Probe", "make_launch",
           "observe", "run"]
