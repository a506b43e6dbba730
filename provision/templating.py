"""Text out of typed data, through the jinja2 templates in templates/: the one jinja2 user.

Every value a template prints goes through one escaping step chosen by the output's
language (jinja2's `finalize`), so a template cannot forget it:

- shell scripts (`*.sh.j2`): shlex-quoted; a value holding a newline or another control
  character is refused (no quoting makes a newline safe inside a comment);
- line-oriented files (.pth shims, requirements.txt, .wslconfig, lockfile headers): a value
  must be one line; a .pth line that would start with `import` (which Python executes) is refused;
- HTML pages (`*.html.j2`: the build index): HTML-escaped, control characters refused;
- Python (`*.py.j2`: the startup shims): every value a Python literal (a string as `ascii()`
  writes it, on one line whatever it holds); anything but a string, a bool, an int or None refused;
- the one .pth that runs code (`shims.pth.j2`: `import _provision_shims`, a fixed line): no value
  at all may be printed into it, so nothing from a spec or a host can reach a line Python runs;
- YAML for Ansible (`*.yml.j2`): every value a JSON scalar or list (JSON is YAML), control
  characters and Jinja delimiters (`{{`, `{%`, `{#`, which Ansible would evaluate) refused;
- Dockerfiles (`Dockerfile.j2`): a value is one double-quoted word (`"`, `\\` and `$` escaped, so
  Docker expands no variable in it: ENV, LABEL); a command is the `exec` filter's JSON array
  (RUN, CMD, HEALTHCHECK, COPY: no shell, no expansion); a bare token (an image, a stage, a
  flag) is the `word` filter's, which allows no space, quote or `$`; a comment is the `comment`
  filter's; control characters refused everywhere (a newline would start an instruction);
- Compose files (`compose.yaml.j2`): as YAML above, and `$` doubled (compose interpolates `${X}`);
- everything else (Markdown, plain text): printed as it is.

Output that is deliberately raw shell (a fragment provision itself wrote) is wrapped in
`Raw` by the caller, or marked `| safe` in a template (a macro's output, already quoted
inside), and stays rare. Templates fail loudly on a missing name (StrictUndefined).
"""

from __future__ import annotations

import re
import shlex
from functools import lru_cache
from typing import Any

from markupsafe import Markup

from .errors import ProvisionError
from .ids import CONTROL
from .settings import templates_dir


class Raw(str):
    """A value that is already safe in its output language (provision wrote it); printed unquoted."""


class UnsafeValue(ProvisionError):
    """A value that cannot be written safely into a generated file (a newline in a path, say)."""


def _refuse(value: str, template: str, why: str) -> None:
    raise UnsafeValue(f"{template}: refusing to write {value[:80]!r}: {why}",
                      hint="this value came from a spec, a host file or the command line: remove the control "
                           "character (a newline or a tab) from it")


def _shell(template: str):  # type: ignore[no-untyped-def]
    def finalize(value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, (Raw, Markup)):  # provision's own text (`| safe` in a template): as it is
            return value
        text = str(value)
        if CONTROL.search(text):
            _refuse(text, template, "it holds a control character, which no shell quoting makes safe everywhere")
        return shlex.quote(text)
    return finalize


def _lines(template: str, pth: bool):  # type: ignore[no-untyped-def]
    def finalize(value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float)):
            return value
        text = str(value)
        if CONTROL.search(text):
            _refuse(text, template, "every value in this file must stay on its own line")
        if pth and text.lstrip().startswith("import"):
            _refuse(text, template, "a .pth line starting with `import` is code Python runs at start-up")
        return text
    return finalize


def _python(template: str):  # type: ignore[no-untyped-def]
    def finalize(value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, str)):
            return ascii(value) if isinstance(value, str) else repr(value)
        raise UnsafeValue(f"{template}: cannot write a {type(value).__name__} as a Python literal",
                          hint="pass it as JSON text (a string)")
    return finalize


def _code_pth(template: str):  # type: ignore[no-untyped-def]
    def finalize(value: Any) -> Any:
        raise UnsafeValue(f"{template}: refusing to print {str(value)[:80]!r} into a .pth file Python executes",
                          hint="this file is one fixed line; the shims read their settings from their own module")
    return finalize


def _html(template: str):  # type: ignore[no-untyped-def]
    import html

    def finalize(value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, (Raw, Markup)):
            return value
        text = str(value)
        if CONTROL.search(text):
            _refuse(text, template, "a value in a page must stay on one line")
        return html.escape(text, quote=True)
    return finalize


_JINJA = ("{{", "{%", "{#")


def _yaml(template: str):  # type: ignore[no-untyped-def]
    import json

    def check(v: Any) -> None:
        if isinstance(v, str):
            if CONTROL.search(v):
                _refuse(v, template, "every value in this file must stay on its own line")
            if any(d in v for d in _JINJA):
                _refuse(v, template, "Ansible evaluates {{ }}, {% %} and {# #} in the values it reads")
        elif isinstance(v, (list, tuple)):
            for x in v:
                check(x)
        elif isinstance(v, dict):
            for k, x in v.items():
                check(k)
                check(x)
        elif not (v is None or isinstance(v, (bool, int, float))):
            raise TypeError(f"{template}: cannot write a {type(v).__name__} as YAML")

    def finalize(value: Any) -> Any:
        if isinstance(value, Raw):
            return value
        check(value)
        return json.dumps(value, ensure_ascii=True)
    return finalize


_WORD = re.compile(r"[A-Za-z0-9/-][A-Za-z0-9._/:@+=,-]*")


def _dockerfile(template: str):  # type: ignore[no-untyped-def]
    def finalize(value: Any) -> Any:
        if isinstance(value, (Raw, Markup)):  # a filter's output below, or provision's own text
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if not isinstance(value, str):
            raise UnsafeValue(f"{template}: cannot write a {type(value).__name__} into a Dockerfile",
                              hint="pass a string, or a list through the `exec` filter")
        if CONTROL.search(value):
            _refuse(value, template, "a newline or another control character would end the instruction")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'
    return finalize


def _docker_filters(template: str) -> dict[str, Any]:
    """`exec` (a JSON array: RUN, CMD, COPY), `word` (a bare token) and `comment` (a line's text)."""
    import json

    def one_line(v: Any) -> str:
        if not isinstance(v, (str, int)) or isinstance(v, bool):
            raise UnsafeValue(f"{template}: cannot write a {type(v).__name__} into a Dockerfile")
        text = str(v)
        if CONTROL.search(text):
            _refuse(text, template, "a newline or another control character would end the instruction")
        return text

    def exec_(argv: Any) -> Raw:
        if not isinstance(argv, (list, tuple)) or not argv:
            raise UnsafeValue(f"{template}: `exec` takes a non-empty list of arguments")
        return Raw(json.dumps([one_line(a) for a in argv], ensure_ascii=True))

    def word(v: Any) -> Raw:
        text = one_line(v)
        if not _WORD.fullmatch(text):
            _refuse(text, template, "a bare Dockerfile token has no space, quote, backslash or `$`")
        return Raw(text)

    return {"exec": exec_, "word": word, "comment": lambda v: Raw(one_line(v))}


def _compose(template: str):  # type: ignore[no-untyped-def]
    as_yaml = _yaml(template)

    def finalize(value: Any) -> Any:
        if isinstance(value, Raw):
            return value
        return as_yaml(value).replace("$", "$$")  # compose reads `$$` as one `$` and expands no variable
    return finalize


def language(template: str) -> str:
    name = template.rsplit("/", 1)[-1]
    if name == "Dockerfile.j2":
        return "dockerfile"
    if name == "compose.yaml.j2":
        return "compose"
    if name.endswith(".sh.j2"):
        return "shell"
    if name.endswith(".html.j2"):
        return "html"
    if name.endswith((".yml.j2", ".yaml.j2")):
        return "yaml"
    if name.endswith(".py.j2"):
        return "python"
    if name == "pth.j2":
        return "pth"
    if name == "shims.pth.j2":
        return "code-pth"
    if name in ("requirements.txt.j2", "wslconfig.j2", "conda-lock-header.j2", "dockerignore.j2"):
        return "lines"
    return "text"


@lru_cache(maxsize=32)
def _env(lang: str, template: str):  # type: ignore[no-untyped-def]
    import jinja2

    finalize = {"shell": _shell(template), "pth": _lines(template, True), "lines": _lines(template, False),
                "html": _html(template), "yaml": _yaml(template), "python": _python(template),
                "code-pth": _code_pth(template), "dockerfile": _dockerfile(template),
                "compose": _compose(template)}.get(lang)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        finalize=finalize,
    )
    if lang == "dockerfile":
        env.filters.update(_docker_filters(template))
    return env


def render(template: str, **context: Any) -> str:
    lang = language(template)
    # one environment per language; the template name only labels the error messages
    env = _env(lang, template if lang != "text" else "")
    return env.get_template(template).render(**context)
