"""Render stage: spec x host x plan (x lockfile) -> the files `provision compile` writes.

    compile.py    every artifact of a target for a host, as text (pure), and the one writer
    checklist.py  the post-install checklist that verify runs
    shims.py      the startup shims (torch.hub from its cache, gradio_client's boolean schemas), from the spec

Text comes from the templates in templates/, through provision.templating.
"""
