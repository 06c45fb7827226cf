"""What every emulated Salesforce REST endpoint shares: the top-level error envelope (reference
2.8), the 404 message, the Collections size limit and a record's `attributes`.
"""

from __future__ import annotations

from typing import Any

from connectors.loopback import Response

MAX_COLLECTION = 200
NOT_FOUND = "The requested resource does not exist"


def errors(code: str, message: str, status: int = 400, fields: list[str] | None = None) -> Response:
    """Salesforce's top-level error envelope: a JSON array (reference 2.8)."""
    entry: dict[str, Any] = {"message": message, "errorCode": code}
    if fields:
        entry["fields"] = fields
    return Response(status, [entry])


def record_url(sobject: str, record_id: str, version: str) -> str:
    return f"/services/data/v{version}/sobjects/{sobject}/{record_id}"


def attributes(sobject: str, record_id: str, version: str) -> dict[str, str]:
    return {"type": sobject, "url": record_url(sobject, record_id, version)}
