"""The examples of a Markdown page: its fenced blocks, the directives before them, and the
paths it names. Pure parsing; docs/README.md says what the conventions mean for writers."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

RUN_LANGUAGES = {"bash": "shell", "sh": "shell", "python": "python"}
OUTPUT_LANGUAGE = "text"  # not run; right after a run block: that block's expected stdout
BLOCK_WORDS = {"background", "check"}
BLOCK_KEYS = {"ready", "requires"}
PAGE_WORDS = {"service"}

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*(?P<kind>examples?):(?P<body>.*?)-->\s*$")
_INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


class PageError(ValueError):
    """The page breaks the conventions (unknown language, directive, ...); the message says where."""


@dataclasses.dataclass
class Block:
    language: str  # "shell", "python" or "text"
    code: str
    line: int  # 1-based line of the opening fence
    end_line: int  # 1-based line of the closing fence
    background: bool = False
    check: bool = False
    ready: str = ""  # background: an http:// URL answering 200, or grpc://HOST:PORT serving
    requires: tuple[str, ...] = ()  # programs that must be on PATH, else the block is skipped
    expected: str | None = None  # the stdout shown right after it (a ```text block)

    @property
    def runs(self) -> bool:
        return self.language != OUTPUT_LANGUAGE


@dataclasses.dataclass
class Page:
    path: Path
    blocks: list[Block]  # run blocks only, in page order
    service: bool  # the page expects `metering up` running before its first block
    prose: str  # the text outside fenced blocks

    def uses(self, text: str) -> bool:
        return any(text in block.code for block in self.blocks)


def _directive(body: str, where: str, allowed_words: set[str], allowed_keys: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for token in body.split():
        key, sep, value = token.partition("=")
        if (sep and key not in allowed_keys) or (not sep and key not in allowed_words):
            raise PageError(f"{where}: unknown directive {token!r}")
        out[key] = value if sep else "yes"
    return out


def parse(path: Path) -> Page:
    lines = path.read_text().split("\n")
    blocks: list[Block] = []
    prose: list[str] = []
    page_words: dict[str, str] = {}
    pending: dict[str, str] | None = None  # the directive just before the next fence
    i = 0
    while i < len(lines):
        where = f"{path.name}:{i + 1}"
        opening = _FENCE.match(lines[i])
        directive = _DIRECTIVE.match(lines[i])
        if directive and directive["kind"] == "examples":
            page_words |= _directive(directive["body"], where, PAGE_WORDS, set())
        elif directive:
            pending = _directive(directive["body"], where, BLOCK_WORDS, BLOCK_KEYS)
        elif opening:
            i, block = _block(lines, i, opening, where)
            if block.runs:
                _apply(block, pending or {}, where)
                blocks.append(block)
            elif pending:
                raise PageError(f"{where}: a directive before a ```text block")
            elif blocks and blocks[-1].end_line < block.line and _blank_between(lines, blocks[-1], block):
                if blocks[-1].background:
                    raise PageError(f"{where}: a background block has no output to compare")
                blocks[-1].expected = block.code
            pending = None
            continue
        elif lines[i].strip():
            if pending is not None:
                raise PageError(f"{where}: a directive must come right before a fenced block")
            prose.append(lines[i])
        i += 1
    return Page(path, blocks, bool(page_words.get("service")), "\n".join(prose))


def _block(lines: list[str], start: int, opening: re.Match[str], where: str) -> tuple[int, Block]:
    indent, fence, info = len(opening["indent"]), opening["fence"], opening["info"].strip()
    language = info.split()[0] if info else ""
    if language in RUN_LANGUAGES:
        kind = RUN_LANGUAGES[language]
    elif language == OUTPUT_LANGUAGE:
        kind = OUTPUT_LANGUAGE
    else:
        raise PageError(f"{where}: fenced block of language {language!r}; use bash, sh, python or text")
    body: list[str] = []
    for j in range(start + 1, len(lines)):
        if lines[j].strip().startswith(fence[0] * len(fence)) and not lines[j].strip().strip(fence[0]):
            code = "\n".join(line[indent:] if line[:indent].strip() == "" else line for line in body)
            return j + 1, Block(kind, code + "\n", start + 1, j + 1)
        body.append(lines[j])
    raise PageError(f"{where}: fenced block never closed")


def _apply(block: Block, words: dict[str, str], where: str) -> None:
    block.background = "background" in words
    block.check = "check" in words
    block.ready = words.get("ready", "")
    block.requires = tuple(p for p in words.get("requires", "").split(",") if p)
    if block.background != bool(block.ready):
        raise PageError(f"{where}: `background` and `ready=URL` go together")
    if (block.background or block.check) and block.language != "shell":
        raise PageError(f"{where}: background and check apply to shell blocks only")
    if "grpcurl" in block.code and "grpcurl" not in block.requires:
        raise PageError(f"{where}: a block using grpcurl needs `<!-- example: requires=grpcurl -->`")


def _blank_between(lines: list[str], before: Block, after: Block) -> bool:
    return all(not line.strip() for line in lines[before.end_line:after.line - 1])


def inline_code(text: str) -> list[str]:
    return _INLINE_CODE.findall(text)


def links(text: str) -> list[str]:
    return _LINK.findall(text)
