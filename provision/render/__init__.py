"""Render stage: spec x host x plan (x lockfile) -> the files `provision compile` writes.

    compile.py    every artifact of a target for a host, as text (pure), and the one writer
    checklist.py  the post-install checklist that verify runs

Text comes from the templates in templates/, through provision.templating.
"""
