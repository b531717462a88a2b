"""The runner on small pages of plain shell and Python (no service): outputs compared,
failures reported, state carried between blocks, placeholders, check forms, background."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.docs import pages, runner


def run_page(tmp_path: Path, text: str, cwd: Path | None = None) -> runner.PageRun:
    path = tmp_path / "page.md"
    path.write_text(text)
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    env = runner.page_env(os.environ, database_url="postgresql://unused", redis_url="redis://unused",
                          grpc_port=50999, http_port=8999, scratch=scratch, queue="unused")
    env["PWD"] = str(cwd or tmp_path)
    run = runner.PageRun(pages.parse(path), env, scratch, 50999, 8999)
    with run.running():
        run.run_all()
    return run


@pytest.mark.parametrize("expected, actual, ok", [
    ("1000 0 0\n", "1000 0 0\n", True),
    ("1000 0 0\n", "999 1 0\n", False),
    ('{"id": "…", "n": 1}', '{"id": "01a2", "n": 1}\n\n', True),
    ('{"id": "…", "n": 1}', '{"id": "01a2", "n": 2}', False),
    ("…\nlast", "a\nb\nlast", True),
    ("a  b\t c", "a b c   ", True),  # runs of blanks are one
    ("a\nb", "a\nb\nc", False),  # the whole output, not a prefix
])
def test_matches(expected, actual, ok):
    assert runner.matches(expected, actual) is ok


def test_state_outputs_and_placeholders(tmp_path):
    run = run_page(tmp_path, """
```bash
KEY=mk_test_123
echo "grpc 127.0.0.1:50051 http 127.0.0.1:8000"
```

```text
grpc 127.0.0.1:50051 http 127.0.0.1:8000
```

```python
import os
print("mk_...", os.environ["KEY"], "127.0.0.1:50051")
```

```text
mk_test_123 mk_test_123 127.0.0.1:50999
```
""")
    assert run.ran == 2 and not run.skipped


def test_a_wrong_output_fails(tmp_path):
    with pytest.raises(runner.ExampleFailed, match="not what the page shows"):
        run_page(tmp_path, "```python\nprint(999, 1, 0)\n```\n\n```text\n1000 0 0\n```\n")


def test_a_failing_command_fails(tmp_path):
    with pytest.raises(runner.ExampleFailed, match="exited 3"):
        run_page(tmp_path, "```bash\ntrue | (exit 3) | true\necho never\n```\n")  # pipefail


def test_a_key_placeholder_without_key_fails(tmp_path):
    with pytest.raises(runner.ExampleFailed, match="used before a block set KEY"):
        run_page(tmp_path, '```python\nprint("mk_...")\n```\n')


def test_missing_programs_skip_the_block(tmp_path):
    run = run_page(tmp_path, "<!-- example: requires=no-such-program-here -->\n```bash\nno-such-program-here\n```\n")
    assert run.ran == 0 and run.skipped == ["page.md:2 needs no-such-program-here"]


@pytest.mark.parametrize("command, form", [
    ("./dev test", "./dev test --collect-only -q"),
    ("./dev test tests/server -k ingest   # the server's", "./dev test tests/server -k ingest --collect-only -q"),
    ('pytest tests -k "a or b"', "pytest tests -k 'a or b' --collect-only -q"),
    ("METERING_HYPOTHESIS_EXAMPLES=2000 .venv/bin/python -m pytest tests/worker",
     "METERING_HYPOTHESIS_EXAMPLES=2000 .venv/bin/python -m pytest tests/worker --collect-only -q"),
    (".venv/bin/python -m bench --quick", ".venv/bin/python -m bench --quick --help"),
    ("python -m bench.stress --only worker-kill", "python -m bench.stress --only worker-kill --help"),
])
def test_check_forms(command, form):
    assert runner.check_form(command) == form


def test_check_blocks_hold_only_tests_and_benchmarks():
    with pytest.raises(runner.ExampleFailed, match="only pytest or bench"):
        runner.check_form("rm -rf build")


def test_a_check_block_that_selects_nothing_fails(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    with pytest.raises(runner.ExampleFailed, match="exited 5"):
        run_page(tmp_path, "<!-- example: check -->\n```bash\n"
                           "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest test_one.py -k two\n```\n")


def test_background_blocks_run_until_the_page_ends(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "healthz").write_text("ok")
    run = run_page(tmp_path, f"""
<!-- example: background ready=http://127.0.0.1:{port}/healthz -->
```bash
python -m http.server --bind 127.0.0.1 {port}
```

```bash
curl -s http://127.0.0.1:{port}/healthz
```

```text
ok
```
""")
    assert run.ran == 2 and not run.background
    with pytest.raises(ConnectionRefusedError):  # stopped with the page
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
