"""Apply stage: `provision apply` executes a plan, step by step, idempotent and resumable.

    execute.py     the step loop: hashed inputs, state.json, skip, resume, --from-step
    context.py     what every step is handed (plan, options, paths)
    commands.py    running a command with a log, a status line, and a diagnosis on failure
    sources.py     the sources step
    envsteps.py    env creation, the locked pip half, the pin guard
    extensions.py  the CUDA extension builds and their cache
    diagnose.py    what a failed build log means, and the fix
"""

from .context import ApplyError, ApplyOptions, Ctx
from .execute import apply

__all__ = ["ApplyError", "ApplyOptions", "Ctx", "apply"]
