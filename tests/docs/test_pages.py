"""The page parser: blocks, directives, expected outputs, and the mistakes it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs import pages


def page(tmp_path: Path, text: str) -> pages.Page:
    path = tmp_path / "page.md"
    path.write_text(text)
    return pages.parse(path)


def test_blocks_directives_and_outputs(tmp_path):
    parsed = page(tmp_path, """# T
<!-- examples: service -->

```bash
echo hi   # a comment
```

```text
hi
```

A sample, not an output:

```text
not compared
```

<!-- example: background ready=http://127.0.0.1:8000/healthz -->
```sh
metering up
```

<!-- example: requires=grpcurl,jq -->
```bash
grpcurl -plaintext 127.0.0.1:50051 list | jq .
```

1. In a list:

   ```python
   print(1)
   ```
""")
    assert parsed.service
    assert [(b.language, b.line) for b in parsed.blocks] == [("shell", 4), ("shell", 19), ("shell", 24), ("python", 30)]
    first, up, grpcurl, script = parsed.blocks
    assert first.expected == "hi\n" and first.code == "echo hi   # a comment\n"
    assert up.background and up.ready == "http://127.0.0.1:8000/healthz" and up.expected is None
    assert grpcurl.requires == ("grpcurl", "jq")
    assert script.code == "print(1)\n"  # the list's indent removed
    assert "A sample" in parsed.prose and "not compared" not in parsed.prose


@pytest.mark.parametrize("text, message", [
    ("```console\n$ ls\n```\n", "language 'console'"),
    ("```\nls\n```\n", "language ''"),
    ("```bash\nls\n", "never closed"),
    ("```bash\ngrpcurl -plaintext x list\n```\n", "requires=grpcurl"),
    ("<!-- example: background -->\n```bash\nmetering up\n```\n", "go together"),
    ("<!-- example: verbose -->\n```bash\nls\n```\n", "unknown directive 'verbose'"),
    ("<!-- example: check -->\nSome prose.\n```bash\nls\n```\n", "right before a fenced block"),
    ("<!-- example: check -->\n```python\nprint(1)\n```\n", "shell blocks only"),
    ("<!-- example: background ready=http://x -->\n```bash\nmetering up\n```\n\n```text\nup\n```\n",
     "no output to compare"),
])
def test_mistakes_are_refused(tmp_path, text, message):
    with pytest.raises(pages.PageError, match=message):
        page(tmp_path, text)


def test_inline_code_and_links():
    prose = "See `server/storage/migrations/` and ``two`` [ops](operations.md#running) [web](https://x.org)."
    assert pages.inline_code(prose) == ["server/storage/migrations/"]
    assert pages.links(prose) == ["operations.md#running", "https://x.org"]
