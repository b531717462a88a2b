"""google.api.http rules, read from the service descriptors at runtime.

A `Binding` is one HTTP rule of one unary method (the rule itself or one of its
additional_bindings); its `Template` is the compiled path template:

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    Verb     = ":" LITERAL ;
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor as pb_descriptor
from google.protobuf import message as pb_message
from google.protobuf import message_factory

log = logging.getLogger(__name__)
_FIELD_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclasses.dataclass(frozen=True)
class Template:
    source: str
    regex: re.Pattern[str]
    variables: tuple[str, ...]  # field paths, in the order of the regex groups v0, v1, ...
    openapi_path: str  # "/v1/events/{event_id}:void"

    def match(self, path: str) -> dict[str, str] | None:
        found = self.regex.match(path)
        if found is None:
            return None
        return {field: found.group(f"v{i}") for i, field in enumerate(self.variables)}


def parse_template(source: str) -> Template:
    if not source.startswith("/"):
        raise ValueError(f"path template must start with '/': {source!r}")
    body, verb = _split_verb(source[1:])
    variables: list[str] = []
    regex_parts: list[str] = []
    doc_parts: list[str] = []
    for segment in _split_top(body, "/"):
        if segment.startswith("{"):
            if not segment.endswith("}"):
                raise ValueError(f"unclosed variable in {source!r}")
            field, _, inner = segment[1:-1].partition("=")
            if not _FIELD_PATH.match(field):
                raise ValueError(f"bad field path {field!r} in {source!r}")
            inner_regex = "/".join(_segment_regex(s, source) for s in (inner or "*").split("/"))
            regex_parts.append(f"(?P<v{len(variables)}>{inner_regex})")
            variables.append(field)
            doc_parts.append("{" + field + "}")
        else:
            regex_parts.append(_segment_regex(segment, source))
            doc_parts.append(segment)
    suffix = ":" + verb if verb else ""
    regex = re.compile("^/" + "/".join(regex_parts) + re.escape(suffix) + "$")
    return Template(source, regex, tuple(variables), "/" + "/".join(doc_parts) + suffix)


def _segment_regex(segment: str, source: str) -> str:
    if segment == "*":
        return "[^/]+"
    if segment == "**":
        return ".*"
    if not segment or any(c in segment for c in "{}*"):
        raise ValueError(f"bad segment {segment!r} in {source!r}")
    return re.escape(segment)


def _split_top(text: str, sep: str) -> list[str]:
    """Splits on `sep` outside braces."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        depth += c == "{"
        depth -= c == "}"
        if c == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _split_verb(text: str) -> tuple[str, str]:
    """`events/{event_id}:void` -> (`events/{event_id}`, `void`): a ':' outside braces in the last segment."""
    last = _split_top(text, "/")[-1]
    pieces = _split_top(last, ":")
    if len(pieces) == 1:
        return text, ""
    verb = pieces[-1]
    return text[: len(text) - len(verb) - 1], verb


@dataclasses.dataclass(frozen=True)
class Binding:
    service: pb_descriptor.ServiceDescriptor
    method: pb_descriptor.MethodDescriptor
    http_method: str  # GET, POST, PUT, PATCH, DELETE or a custom verb
    template: Template
    body: str  # "" (no body), "*" (the whole request) or a top-level field name
    response_body: str  # "" (the whole response) or a top-level field name
    index: int  # 0 for the rule itself, n for its n-th additional binding

    @property
    def rpc_path(self) -> str:
        return f"/{self.service.full_name}/{self.method.name}"

    @property
    def operation_id(self) -> str:
        suffix = f"{self.index + 1}" if self.index else ""
        return f"{self.service.name}_{self.method.name}{suffix}"

    @property
    def input_type(self) -> type[pb_message.Message]:
        found: type[pb_message.Message] = message_factory.GetMessageClass(self.method.input_type)
        return found

    @property
    def output_type(self) -> type[pb_message.Message]:
        found: type[pb_message.Message] = message_factory.GetMessageClass(self.method.output_type)
        return found


def bindings(services: Iterable[pb_descriptor.ServiceDescriptor]) -> list[Binding]:
    """Every HTTP binding of every unary method of `services`, validated against the messages."""
    found: list[Binding] = []
    for service in services:
        for method in service.methods:
            options = method.GetOptions()
            if not options.HasExtension(annotations_pb2.http):
                continue
            if method.client_streaming or method.server_streaming:
                log.warning("%s.%s: streaming methods have no REST route", service.name, method.name)
                continue
            rule = options.Extensions[annotations_pb2.http]
            for index, one in enumerate([rule, *rule.additional_bindings]):
                found.append(_binding(service, method, one, index))
    return found


def _binding(
    service: pb_descriptor.ServiceDescriptor,
    method: pb_descriptor.MethodDescriptor,
    rule: http_pb2.HttpRule,
    index: int,
) -> Binding:
    pattern = rule.WhichOneof("pattern")
    if pattern is None:
        raise ValueError(f"{method.full_name}: http rule without a pattern")
    if pattern == "custom":
        verb, path = rule.custom.kind.upper(), rule.custom.path
    else:
        verb, path = pattern.upper(), getattr(rule, pattern)
    template = parse_template(path)
    for field_path in template.variables:
        _check_field(method.input_type, field_path, method.full_name)
    if rule.body not in ("", "*") and rule.body not in method.input_type.fields_by_name:
        raise ValueError(f"{method.full_name}: body field {rule.body!r} not in {method.input_type.name}")
    if rule.response_body and rule.response_body not in method.output_type.fields_by_name:
        raise ValueError(f"{method.full_name}: response_body {rule.response_body!r} not in {method.output_type.name}")
    return Binding(service, method, verb, template, rule.body, rule.response_body, index)


def _check_field(desc: pb_descriptor.Descriptor, path: str, where: str) -> None:
    parts = path.split(".")
    for i, part in enumerate(parts):
        field = desc.fields_by_name.get(part)
        if field is None:
            raise ValueError(f"{where}: path variable {path!r}: no field {part!r} in {desc.name}")
        if i < len(parts) - 1:
            if field.message_type is None:
                raise ValueError(f"{where}: path variable {path!r}: {part!r} is not a message")
            desc = field.message_type
        elif field.is_repeated or field.message_type is not None:
            raise ValueError(f"{where}: path variable {path!r} must name a singular scalar field")
