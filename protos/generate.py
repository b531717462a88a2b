"""Regenerate the Python code for protos/metering/v1/*.proto into metering/v1/.

Run: python protos/generate.py [OUT_DIR]   (OUT_DIR defaults to the repository root)
The generated files are committed; tests/test_protos.py fails when they are stale.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import grpc_tools  # type: ignore[import-untyped]  # grpcio-tools ships no stubs or py.typed
from grpc_tools import protoc

PROTOS = pathlib.Path(__file__).resolve().parent
ROOT = PROTOS.parent


def _include_dirs() -> list[str]:
    from google.api import annotations_pb2  # googleapis-common-protos ships the .proto sources

    return [
        str(PROTOS),
        str(pathlib.Path(grpc_tools.__file__).parent / "_proto"),
        str(pathlib.Path(annotations_pb2.__file__).parent.parent.parent),
    ]


def generate(out_dir: pathlib.Path) -> list[pathlib.Path]:
    sources = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "metering" / "v1").glob("*.proto"))
    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["protoc", *(f"-I{d}" for d in _include_dirs())]
    includes = list(args)
    args += [f"--python_out={out_dir}", f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", *sources]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    package = out_dir / "metering" / "v1"  # metering/ itself also holds hand-written shared helpers
    docstring = '"""Generated from protos/metering/v1 by protos/generate.py. Do not edit."""\n'
    (package / "__init__.py").write_text(docstring)
    (package / "comments.py").write_text(_comments(includes, sources, out_dir))
    return sorted(p for p in package.rglob("*") if p.is_file() and p.suffix in {".py", ".pyi"})


def _comments(includes: list[str], sources: list[str], out_dir: pathlib.Path) -> str:
    """metering/v1/comments.py: the .proto comment of every message, field, enum value, service and method,
    by full name (the Python code protoc writes keeps no comments; /openapi.json describes with these)."""
    from google.protobuf import descriptor_pb2

    set_path = out_dir / "metering" / "v1" / ".descriptor_set.binpb"
    if protoc.main([*includes, "--include_source_info", f"--descriptor_set_out={set_path}", *sources]) != 0:
        raise SystemExit("protoc failed")
    files = descriptor_pb2.FileDescriptorSet.FromString(set_path.read_bytes()).file
    set_path.unlink()
    found: dict[str, str] = {}
    for file in files:
        for location in file.source_code_info.location:
            name = _element_name(file, list(location.path))
            text = " ".join(" ".join(line.strip() for line in part.strip().splitlines())
                            for part in (location.leading_comments, location.trailing_comments) if part.strip())
            if name and text:
                found[name] = text
    lines = [f"    {name!r}: {found[name]!r}," for name in sorted(found)]
    return ('"""Generated from protos/metering/v1 by protos/generate.py: the comments of the .proto files by full\n'
            'name. Do not edit."""\n\nCOMMENTS: dict[str, str] = {\n' + "\n".join(lines) + "\n}\n")


def _element_name(file: Any, path: list[int]) -> str:
    """The full name of what a source location's path names: a message (4), its nested messages (3),
    fields (2) and enums (4 within a message, 5 at the top) and their values (2), a service (6) and its
    methods (2); "" for anything else (options, a file's own comments)."""
    message = {2: "field", 3: "nested_type", 4: "enum_type"}
    children: dict[str, dict[int, str]] = {"message_type": message, "nested_type": message,
                                           "enum_type": {2: "value"}, "service": {2: "method"}}
    table: dict[int, str] | None = {4: "message_type", 5: "enum_type", 6: "service"}
    name, node = file.package, file
    if not path:
        return ""
    while path:
        if len(path) < 2 or table is None or path[0] not in table:
            return ""
        attr = table[path[0]]
        node = getattr(node, attr)[path[1]]
        name = f"{name}.{node.name}"
        table = children.get(attr)
        path = path[2:]
    return str(name)


if __name__ == "__main__":
    written = generate(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
    print(f"generated {len(written)} files")
