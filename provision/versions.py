"""Small, strict parsers for the dotted numbers this domain is full of.

CUDA versions (`12.1`), compute capabilities (`8.6`, `12.0`), driver versions
(`535.183.01`) and the `cu121` tags of PyTorch builds. They compare as integer
tuples; a string compare would put `12.0` before `8.6` and `9.0` after `12.0`.
"""

from __future__ import annotations

import re
from functools import total_ordering

_DOTTED = re.compile(r"^\d+(\.\d+)*$")
_CU_TAG = re.compile(r"^cu(\d+)$")


@total_ordering
class Dotted:
    """A dotted version of plain integers, compared numerically."""

    __slots__ = ("parts", "text")

    def __init__(self, text: str) -> None:
        text = str(text).strip()
        if not _DOTTED.fullmatch(text):
            raise ValueError(f"{text!r} is not a dotted version like 12.1 or 535.183.01")
        self.text = text
        self.parts = tuple(int(p) for p in text.split("."))

    def _key(self, n: int) -> tuple[int, ...]:
        return self.parts + (0,) * (n - len(self.parts))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dotted):
            return NotImplemented
        n = max(len(self.parts), len(other.parts))
        return self._key(n) == other._key(n)

    def __lt__(self, other: "Dotted") -> bool:
        n = max(len(self.parts), len(other.parts))
        return self._key(n) < other._key(n)

    def __hash__(self) -> int:
        return hash(self.parts)

    def __repr__(self) -> str:
        return f"Dotted({self.text!r})"

    def __str__(self) -> str:
        return self.text

    @property
    def major(self) -> int:
        return self.parts[0]

    def major_minor(self) -> "Dotted":
        return Dotted(".".join(str(p) for p in self._key(2)[:2]))


def cuda_from_tag(tag: str) -> Dotted:
    """`cu121` -> 12.1, `cu118` -> 11.8, `cu130` -> 13.0 (last digit is the minor)."""
    m = _CU_TAG.match(tag)
    if not m or len(m.group(1)) < 3:
        raise ValueError(f"{tag!r} is not a CUDA build tag like cu121 or cu128")
    digits = m.group(1)
    return Dotted(f"{int(digits[:-1])}.{int(digits[-1])}")


def tag_from_cuda(cuda: Dotted | str) -> str:
    d = Dotted(str(cuda)) if not isinstance(cuda, Dotted) else cuda
    major, minor = d._key(2)[:2]
    return f"cu{major}{minor}"


def cc_arch(cc: Dotted) -> str:
    """Compute capability 8.6 -> `sm_86`, 12.0 -> `sm_120`."""
    major, minor = cc._key(2)[:2]
    return f"sm_{major}{minor}"
