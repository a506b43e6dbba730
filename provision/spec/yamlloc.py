"""YAML loading that remembers where every value came from.

Specs are merged from several files (a target plus the shared fragments it includes),
and an error must still name the file and line of the offending value. So instead of
plain dicts and lists we build `LMap`/`LSeq`, which are dicts and lists that also carry
a `Loc` for each key and item. Merging keeps those locations, and `locate()` walks a
pydantic error path back to the deepest located node.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import SpecProblem

if TYPE_CHECKING:  # PyYAML is imported when a spec is parsed, not when a cached one is read (cache.py)
    import yaml


@dataclass(frozen=True)
class Loc:
    file: str
    line: int  # 1-based


class LMap(dict):
    """A dict that knows the location of itself and of each key."""

    def __init__(self, loc: Loc) -> None:
        super().__init__()
        self.loc = loc
        self.key_locs: dict[Any, Loc] = {}


class LSeq(list):
    """A list that knows the location of itself and of each item."""

    def __init__(self, loc: Loc) -> None:
        super().__init__()
        self.loc = loc
        self.item_locs: list[Loc] = []


@lru_cache(maxsize=1)
def _constructor_class() -> type:
    import yaml

    class _Constructor(yaml.constructor.SafeConstructor):
        pass

    return _Constructor


MAX_DEPTH = 64  # a spec nests a handful of levels; 20000 would overflow the composer's recursion
MAX_ALIASES = 1000
MAX_NODES = 50_000  # after aliases are expanded: an alias bomb (a: &a [x, x], b: &b [*a, *a], ...) stops here
MAX_BYTES = 1 << 20


_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("map", "seq", "str", "int", "float", "bool", "null")}


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0


def _scalar(node: yaml.Node, file: str, problems: list[SpecProblem], path: str) -> Any:
    import yaml

    try:
        return _constructor_class()().construct_object(node, deep=True)
    except (ValueError, OverflowError, yaml.constructor.ConstructorError) as e:
        problems.append(SpecProblem(file, node.start_mark.line + 1, path, f"cannot read this value: {e}",
                                    "quote it if it is text; numbers must be ordinary sizes"))
        return None


def _build(node: yaml.Node, file: str, problems: list[SpecProblem], path: str, budget: _Budget | None = None) -> Any:
    import yaml

    budget = budget or _Budget()
    budget.nodes += 1
    if budget.nodes > MAX_NODES:
        raise _TooBig(Loc(file, node.start_mark.line + 1))
    loc = Loc(file, node.start_mark.line + 1)
    if node.tag not in _TAGS:  # !!python/object and friends: SafeLoader would refuse them; so do we, by name
        problems.append(SpecProblem(file, loc.line, path, f"YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')} "
                                    "is not allowed in a spec", "write plain values: strings, numbers, lists, mappings"))
        return None
    if isinstance(node, yaml.MappingNode):
        out = LMap(loc)
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                problems.append(SpecProblem(file, key_node.start_mark.line + 1, path,
                                            "YAML merge keys (<<) are not supported",
                                            "use `include:` to share parts between specs"))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(SpecProblem(file, key_node.start_mark.line + 1, path,
                                            "a mapping key must be a plain value, not a list or a mapping"))
                continue
            key = _scalar(key_node, file, problems, path)
            key_loc = Loc(file, key_node.start_mark.line + 1)
            sub = f"{path}.{key}" if path else str(key)
            if key in out:
                problems.append(SpecProblem(file, key_loc.line, sub,
                                            f"duplicate key {key!r} (first at line {out.key_locs[key].line})",
                                            "YAML keeps only the last one silently: remove one of them"))
                continue
            out[key] = _build(value_node, file, problems, sub, budget)
            out.key_locs[key] = key_loc
        return out
    if isinstance(node, yaml.SequenceNode):
        seq = LSeq(loc)
        for i, item in enumerate(node.value):
            seq.append(_build(item, file, problems, f"{path}[{i}]", budget))
            seq.item_locs.append(Loc(file, item.start_mark.line + 1))
        return seq
    return _scalar(node, file, problems, path)


class _TooBig(Exception):
    def __init__(self, loc: Loc) -> None:
        self.loc = loc


def _shape(text: str, display: str) -> None:
    """Depth and alias count from the event stream (the parser is iterative, the composer is not)."""
    import yaml

    from ..errors import SpecError

    depth = aliases = 0
    for ev in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise SpecError([SpecProblem(display, ev.start_mark.line + 1, "",
                                             f"nested more than {MAX_DEPTH} levels deep", "is this a spec?")])
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(ev, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise SpecError([SpecProblem(display, ev.start_mark.line + 1, "",
                                             f"more than {MAX_ALIASES} YAML aliases (*name)",
                                             "a spec shares parts with `include:`, not with thousands of aliases")])


def load_located(path: Path, display: str) -> Any:
    """Parse one YAML file into LMap/LSeq/scalars. Raises SpecError-ready problems."""
    import yaml

    from ..errors import SpecError
    from ..readers import InputError, read_text

    try:
        text = read_text(path, "a spec", MAX_BYTES).text
    except InputError as e:
        msg = e.message.split(": ", 1)[-1] if e.message.startswith(str(path)) else e.message
        if "no such file" in msg:
            raise SpecError([SpecProblem(display, None, "", "file not found", "check the path")]) from None
        raise SpecError([SpecProblem(display, None, "", msg, e.hint or "save the spec as UTF-8 text")]) from None
    try:
        _shape(text, display)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.context_mark or e.problem_mark  # where the broken construct starts
        line = mark.line + 1 if mark else None
        msg = " ".join(str(x) for x in (e.context, e.problem) if x)
        raise SpecError([SpecProblem(display, line, "", f"YAML syntax error: {msg}",
                                     "check indentation and quoting on that line")]) from None
    except yaml.YAMLError as e:
        raise SpecError([SpecProblem(display, None, "", f"YAML error: {e}")]) from None
    except RecursionError:
        raise SpecError([SpecProblem(display, None, "", "nested too deeply to read", "is this a spec?")]) from None
    if node is None:
        raise SpecError([SpecProblem(display, 1, "", "file is empty",
                                     "a spec is a YAML mapping with at least `name:`")])
    problems: list[SpecProblem] = []
    try:
        data = _build(node, display, problems, "")
    except _TooBig as e:
        raise SpecError([SpecProblem(e.loc.file, e.loc.line, "", f"expands to more than {MAX_NODES} values "
                                     "(YAML aliases repeating each other: an alias bomb?)",
                                     "write the spec out, or share parts with `include:`")]) from None
    if problems:
        raise SpecError(problems)
    return data


def merge(base: Any, over: Any) -> Any:
    """Merge `over` onto `base`: mappings key by key, lists concatenated, scalars replaced."""
    if isinstance(base, LMap) and isinstance(over, LMap):
        out = LMap(over.loc)
        for src in (base, over):
            for k, v in src.items():
                if k in out:
                    out[k] = merge(out[k], v)
                else:
                    out[k] = v
                out.key_locs[k] = src.key_locs[k]
        return out
    if isinstance(base, LSeq) and isinstance(over, LSeq):
        out_seq = LSeq(over.loc)
        for src in (base, over):
            out_seq.extend(src)
            out_seq.item_locs.extend(src.item_locs)
        return out_seq
    return over


def locate(root: Any, loc: Iterable[Any]) -> tuple[Loc | None, str]:
    """Follow an error path through located data: (deepest location, user-facing path).

    Elements that are not keys or indexes of the data (pydantic's union tags, say)
    are skipped, so the path reads as the user wrote it: `pip.packages[3].version`.
    """
    node, best = root, getattr(root, "loc", None)
    parts: list[str] = []
    for el in loc:
        if isinstance(node, LMap) and el in node:
            best = node.key_locs.get(el, best)
            node = node[el]
            parts.append(f".{el}" if parts else str(el))
        elif isinstance(node, LSeq) and isinstance(el, int) and 0 <= el < len(node):
            best = node.item_locs[el]
            node = node[el]
            parts.append(f"[{el}]")
        elif isinstance(node, LMap) and isinstance(el, str) and not _is_tag(node, el):
            # a missing or unknown key: name it, keep the parent's line
            parts.append(f".{el}" if parts else el)
            node = None
        # else: a tag or validator name, not part of the user's data
    return best, "".join(parts)


def _is_tag(node: LMap, el: str) -> bool:
    """Pydantic puts union tags (`import`, `GitSource`) and validator names in paths."""
    if node.get("kind") == el:
        return True
    return el[:1].isupper() or el.startswith(("function-", "tagged-union")) or "[" in el


def plain(data: Any) -> Any:
    """Strip locations: LMap/LSeq -> dict/list (for hashing and dumping)."""
    if isinstance(data, dict):
        return {k: plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [plain(v) for v in data]
    return data
