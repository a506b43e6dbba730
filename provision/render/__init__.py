"""Render stage: spec x host x plan (x lockfile) -> the files `provision compile` and `dockerfile` write.

    compile.py    every artifact of a target for a host, as text (pure), and the one writer
    checklist.py  the post-install checklist that verify runs
    shims.py      the startup shims (torch.hub from its cache, gradio_client's boolean schemas), from the spec
    dockerfile.py a container image of a target for some hosts' GPUs: Dockerfile, compose.yaml (pure)
    dockercontext.py  the build context around them: provision's tree, the wheels, written without loss

Text comes from the templates in templates/, through provision.templating.
"""
