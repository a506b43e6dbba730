"""Verify stage: prove an environment (and, before it exists, the host) does what the plan said.

    doctor.py  host facts judged as ok / warn / fail with a fix (also `verify --preflight`)
    checks.py  the compiled checklist: host-side checks, and the in-env run of runner.py
    runner.py  runs inside the target's own Python; imports nothing of provision
"""
