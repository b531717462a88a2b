"""Which budgets cover a usage, and which budgets a caller may read.

A usage (the CheckRequest's fields, defaulted as ingest defaults an event) is covered by
a budget when every filter of the budget's scope matches it: the usage's value of the
field is one of the filter's values ("" matching an unset field, as in the query
engine). `status` and `price_version` are not known before the call is made: a filter
on them covers every usage (the call may end up in it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from metering.v1 import budgets_pb2
from server.budgets.budget import Budget, Scope
from server.core.errors import InvalidArgument, PermissionDenied
from server.core.events import KINDS, TEXT_DIMENSIONS
from server.core.principal import Principal
from server.ingest.validation import MAX_ID_LENGTH, MAX_LABEL_VALUE, MAX_LABELS

Usage = dict[str, str]  # field ("model", "labels.task", "batch") -> value; "" or absent: unset
UNKNOWN_BEFORE_THE_CALL = frozenset({"status", "price_version"})
_LABEL = re.compile(r"^[A-Za-z0-9_.:/-]{1,64}$")
_CURRENCY = re.compile(r"^[a-z]{3}$")


def covers(scope: Scope, usage: Usage) -> bool:
    return all(field in UNKNOWN_BEFORE_THE_CALL or usage.get(field, "") in values for field, values in scope)


class CoverIndex:
    """Budgets by one (field, value) each of their scopes requires, so a usage is matched
    against the few budgets that could cover it rather than all of an organization's."""

    _ORDER = ("api_key_id", "user_id", "client_id", "project_id", "model", "provider", "kind")

    def __init__(self, budgets: Iterable[Budget]) -> None:
        self.everywhere: list[Budget] = []
        self.by_value: dict[tuple[str, str], list[Budget]] = {}
        for budget in budgets:
            fields = dict(budget.scope)
            key = next((f for f in (*self._ORDER, *fields) if f in fields and f not in UNKNOWN_BEFORE_THE_CALL),
                       None)
            if key is None:
                self.everywhere.append(budget)
                continue
            for value in fields[key]:
                self.by_value.setdefault((key, value), []).append(budget)
        self.fields = sorted({field for field, _ in self.by_value})

    def covering(self, usage: Usage) -> list[Budget]:
        """The budgets covering `usage`, by budget_id (the order their rows are locked in)."""
        found = {b.budget_id: b for b in self.everywhere if covers(b.scope, usage)}
        for field in self.fields:
            for budget in self.by_value.get((field, usage.get(field, "")), ()):
                if covers(budget.scope, usage):
                    found[budget.budget_id] = budget
        return [found[k] for k in sorted(found)]


def visible_to(budget: Budget, principal: Principal) -> bool:
    """Whether a caller may read a budget: an organization admin reads all; a scoped caller
    (a member, a project key) only budgets whose scope lies inside what it may read of the
    usage (Principal.read_scope): restricted to its project, its user or its own key."""
    scope = dict(budget.scope)
    for field, own in zip(("project_id", "user_id", "api_key_id"), principal.read_scope(), strict=True):
        if own is not None and not (field in scope and set(scope[field]) <= {own}):
            return False
    return True


def _scoped(field: str, given: str, own: str | None, forced: str | None) -> str:
    """A dimension defaulted to the caller's own, kept inside a scoped caller's scope
    (the rule of server/ingest/validation.py, for a usage not yet recorded)."""
    if forced is not None and given and given != forced:
        raise PermissionDenied(f"{field}: this key may only check usage of {forced!r}", field=field)
    return forced if forced is not None else given or own or ""


def usage_scope(request: budgets_pb2.CheckRequest, principal: Principal) -> Usage:
    """The fields of the coming usage, as ingest would record them for this caller."""
    usage: Usage = {}
    for name in TEXT_DIMENSIONS:
        value = getattr(request, name)
        if len(value) > MAX_ID_LENGTH or "\x00" in value:
            raise InvalidArgument(name, f"at most {MAX_ID_LENGTH} characters, no NUL")
        usage[name] = value
    member_user = None if principal.is_admin else principal.user_id
    usage["project_id"] = _scoped("project_id", usage["project_id"], None, principal.project_id)
    usage["user_id"] = _scoped("user_id", usage["user_id"], principal.user_id, member_user)
    key_bound = None if principal.is_admin or principal.user_id is not None else principal.api_key_id
    usage["api_key_id"] = _scoped("api_key_id", usage["api_key_id"], principal.api_key_id, key_bound)
    kind = request.kind.strip()
    if kind and kind not in KINDS:
        raise InvalidArgument("kind", f"unknown kind {kind[:64]!r}; one of {', '.join(sorted(KINDS))}")
    usage["kind"] = kind
    usage["batch"] = "true" if request.batch else "false"
    currency = (request.currency.strip() or "usd").lower()
    if not _CURRENCY.match(currency):
        raise InvalidArgument("currency", "must be a three-letter ISO 4217 code")
    usage["currency"] = currency
    if len(request.labels) > MAX_LABELS:
        raise InvalidArgument("labels", f"at most {MAX_LABELS} entries")
    for key, value in request.labels.items():
        if not _LABEL.match(key):
            raise InvalidArgument(f"labels.{key[:64]}", "name must be 1-64 of [A-Za-z0-9_.:/-]")
        if len(value) > MAX_LABEL_VALUE or "\x00" in value:
            raise InvalidArgument(f"labels.{key}", f"at most {MAX_LABEL_VALUE} characters, no NUL")
        usage[f"labels.{key}"] = value
    return usage
