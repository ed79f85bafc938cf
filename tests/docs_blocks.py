"""The fenced code blocks of README.md and docs/*.md and their docs-test marks.

The convention (docs/testing.md): an HTML comment on the line right before a block,
``<!-- docs-test: skip (REASON) -->`` or ``<!-- docs-test: slow -->``, says whether and when a
test runs it; ``python`` and ``bash``/``sh`` blocks are code, ``text`` blocks are not.
"""
import dataclasses
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = ["README.md"] + sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))
CODE_LANGUAGES = {"python": "python", "bash": "bash", "sh": "bash"}
LANGUAGES = set(CODE_LANGUAGES) | {"text"}

_FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>\S*)[ ]*\n(?P<code>.*?)\n(?P=indent)```[ ]*$",
                    re.S | re.M)
_MARK = re.compile(r"<!-- docs-test: (?P<mark>.*?) -->\s*$")
_PIP = re.compile(r"^\s*pip install [^&|;]*?(&&\s*|$)")


@dataclasses.dataclass
class Block:
    page: str
    line: int          # 1-based line of the opening fence
    lang: str          # "python", "bash" or the fence's own info string
    code: str
    mark: str          # "" (default run), "slow" or "skip (REASON)"; anything else is an error

    @property
    def id(self):
        return f"{self.page}:{self.line}"

    @property
    def is_code(self):
        return self.lang in ("python", "bash")

    @property
    def skipped(self):
        return self.mark.startswith("skip")

    @property
    def slow(self):
        return self.mark == "slow"


def blocks(page):
    """Every fenced block of ``page`` (a path relative to the repository root), in order."""
    text = (ROOT / page).read_text(encoding="utf-8")
    out = []
    for m in _FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = _MARK.match(before.strip())
        indent = m.group("indent")
        code = "\n".join(line[len(indent):] if line.startswith(indent) else line
                         for line in m.group("code").split("\n"))
        out.append(Block(page=page, line=text.count("\n", 0, m.start()) + 1,
                         lang=CODE_LANGUAGES.get(m.group("lang"), m.group("lang")), code=code,
                         mark=mark.group("mark").strip() if mark else ""))
    return out


def all_blocks():
    return [b for page in PAGES for b in blocks(page)]


def shell_script(code):
    """A bash block as a script to run: ``pip install`` parts are left out (the tests run in an
    installed environment), continuation lines are kept."""
    lines = []
    for line in code.replace("\\\n", " ").split("\n"):
        line = _PIP.sub("", line)
        if line.strip():
            lines.append(line)
    return "set -euo pipefail\n" + "\n".join(lines) + "\n"
