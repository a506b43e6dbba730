"""YAML loading that remembers where every value came from.

Specs are merged from several files (a target plus the shared fragments it includes),
and an error must still name the file and line of the offending value. So instead of
plain dicts and lists we build `LMap`/`LSeq`, which are dicts and lists that also carry
a `Loc` for each key and item. Merging keeps those locations, and `locate()` walks a
pydantic error path back to the deepest located node.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..errors import SpecProblem


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


class _Constructor(yaml.constructor.SafeConstructor):
    pass


def _build(node: yaml.Node, file: str, problems: list[SpecProblem], path: str) -> Any:
    loc = Loc(file, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out = LMap(loc)
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                problems.append(SpecProblem(file, key_node.start_mark.line + 1, path,
                                            "YAML merge keys (<<) are not supported",
                                            "use `include:` to share parts between specs"))
                continue
            key = _Constructor().construct_object(key_node, deep=True)
            key_loc = Loc(file, key_node.start_mark.line + 1)
            sub = f"{path}.{key}" if path else str(key)
            if key in out:
                problems.append(SpecProblem(file, key_loc.line, sub,
                                            f"duplicate key {key!r} (first at line {out.key_locs[key].line})",
                                            "YAML keeps only the last one silently: remove one of them"))
                continue
            out[key] = _build(value_node, file, problems, sub)
            out.key_locs[key] = key_loc
        return out
    if isinstance(node, yaml.SequenceNode):
        seq = LSeq(loc)
        for i, item in enumerate(node.value):
            seq.append(_build(item, file, problems, f"{path}[{i}]"))
            seq.item_locs.append(Loc(file, item.start_mark.line + 1))
        return seq
    return _Constructor().construct_object(node, deep=True)


def load_located(path: Path, display: str) -> Any:
    """Parse one YAML file into LMap/LSeq/scalars. Raises SpecError-ready problems."""
    from ..errors import SpecError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecProblem(display, None, "", "file not found")]) from None
    except UnicodeDecodeError as e:
        raise SpecError([SpecProblem(display, None, "", f"not UTF-8 text ({e.reason})",
                                     "save the spec as UTF-8")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.context_mark or e.problem_mark  # where the broken construct starts
        line = mark.line + 1 if mark else None
        msg = " ".join(str(x) for x in (e.context, e.problem) if x)
        raise SpecError([SpecProblem(display, line, "", f"YAML syntax error: {msg}",
                                     "check indentation and quoting on that line")]) from None
    except yaml.YAMLError as e:
        raise SpecError([SpecProblem(display, None, "", f"YAML error: {e}")]) from None
    if node is None:
        raise SpecError([SpecProblem(display, 1, "", "file is empty",
                                     "a spec is a YAML mapping with at least `name:`")])
    problems: list[SpecProblem] = []
    data = _build(node, display, problems, "")
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
