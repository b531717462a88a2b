"""The seed's usage models (seed 003), pydantic v2, with the seed's exact field names and types.

Money is a float here because the seed says so; the server keeps and sums it as exact decimals,
and the *_decimal helpers of metering_client.seed give the exact values when needed.
"""

from __future__ import annotations

from datetime import datetime
from typing import List, Optional  # noqa: UP035 - the seed's spelling

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(protected_namespaces=())  # fields named model_name, model_provider


class ModelUsage(_Model):
    """Usage statistics for a specific model."""

    model_name: str
    model_provider: str
    total_input_tokens: int
    total_output_tokens: int
    total_cost: float
    last_used: datetime


class RequestSummary(_Model):
    """Summary of a request."""

    request_id: str
    timestamp: datetime
    model_name: str
    model_provider: str
    input_tokens: int
    output_tokens: int
    total_cost: float
    status: str
    error_message: Optional[str] = None  # noqa: UP045


class ClientUsageData(_Model):
    """Detailed usage data for a client."""

    client_id: str
    total_requests: int
    successful_requests: int
    failed_requests: int
    total_input_tokens: int
    total_output_tokens: int
    total_cost: float
    models_used: List[ModelUsage]  # noqa: UP006
    recent_requests: List[RequestSummary]  # noqa: UP006


class RequestDetails(_Model):
    """Detailed information about a specific request."""

    request_id: str
    timestamp: datetime
    model_name: str
    model_provider: str
    client_id: str
    user_id: str
    config_json: str
    request_raw: str
    request_json: str
    response_json: str
    response_raw: str
    input_tokens: int
    output_tokens: int
    input_cost: float
    output_cost: float
    total_cost: float
    status: str
    error_message: Optional[str] = None  # noqa: UP045
