"""Exact money: every sum and product of prices and costs is computed in EXACT, a
decimal context that raises instead of rounding, so a cost is never off by a digit."""

from __future__ import annotations

import decimal

ZERO = decimal.Decimal(0)
EXACT = decimal.Context(prec=400, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow])
