"""Render stage: typed models in, text out, through jinja2 templates in templates/.

Only this module knows jinja2. Templates get plain dicts (models dumped at the boundary)
and fail loudly on a missing name (StrictUndefined) rather than printing an empty string.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .settings import templates_dir


@lru_cache(maxsize=1)
def _env():  # type: ignore[no-untyped-def]
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(template: str, **context: Any) -> str:
    return _env().get_template(template).render(**context)
