"""The emulated CRM v3 properties and pipelines endpoints (wire reference 1.6 and 1.7): read and
create an object type's properties, read the deal pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.hubspot.emulator_wire import HubSpotError
from connectors.hubspot.portal import DEAL_STAGES, ObjectTable, Portal, canonical_type
from connectors.loopback import Request, Response, Router


class SchemaApi:
    """`/crm/v3/properties` and `/crm/v3/pipelines` of a `Portal`; `table` is the objects API's
    lookup of the table an object type names, so both answer an unknown type alike."""

    def __init__(self, portal: Portal, table: Callable[[str], ObjectTable]) -> None:
        self.portal = portal
        self._table = table

    def routes(self, router: Router) -> None:
        properties = "/crm/v3/properties/{object_type}"
        router.add("GET", properties, self._properties)
        router.add("POST", properties, self._create_property)
        router.add("GET", f"{properties}/{{name}}", self._property)
        pipelines = "/crm/v3/pipelines/{object_type}"
        router.add("GET", pipelines, self._pipelines)
        router.add("GET", f"{pipelines}/{{pipeline_id}}", self._pipeline)

    # -- properties and pipelines ---------------------------------------------------------

    def _properties(self, request: Request, object_type: str) -> Response:
        table = self._table(object_type)
        return Response(200, {"results": [prop.wire() for prop in table.schema.values()]})

    def _property(self, request: Request, object_type: str, name: str) -> Response:
        prop = self._table(object_type).schema.get(name)
        if prop is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND",
                               f"Unable to find property with name {name}.")
        return Response(200, prop.wire())

    def _create_property(self, request: Request, object_type: str) -> Response:
        table = self._table(object_type)
        body = request.json() or {}
        absent = [k for k in ("name", "label", "type", "fieldType") if not body.get(k)]
        if absent:
            raise HubSpotError(400, "VALIDATION_ERROR",
                               f"Missing required fields: {', '.join(absent)}.")
        name = str(body["name"])
        if name in table.schema:
            raise HubSpotError(409, "OBJECT_ALREADY_EXISTS",
                               f"Property named '{name}' already exists.")
        options = [str(o.get("value")) for o in body.get("options") or []]
        self.portal.add_property(table.object_type, name, type=str(body["type"]),
                                 field_type=str(body["fieldType"]), label=str(body["label"]),
                                 options=options,
                                 has_unique_value=bool(body.get("hasUniqueValue")))
        prop = table.schema[name]
        prop.group_name = str(body.get("groupName") or prop.group_name)
        prop.description = str(body.get("description") or "")
        return Response(201, prop.wire())

    def _pipeline_body(self) -> dict[str, Any]:
        stamp = "2019-08-06T00:00:00.000Z"
        stages = [
            {"id": stage, "label": label, "displayOrder": order,
             "metadata": {"isClosed": "true" if closed else "false", "probability": chance},
             "createdAt": stamp, "updatedAt": stamp, "archived": False,
             "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}
            for order, (stage, label, chance, closed) in enumerate(DEAL_STAGES)
        ]
        return {"id": "default", "label": "Sales Pipeline", "displayOrder": 0, "stages": stages,
                "createdAt": stamp, "updatedAt": stamp, "archived": False}

    def _pipelines(self, request: Request, object_type: str) -> Response:
        kind = canonical_type(object_type)
        return Response(200, {"results": [self._pipeline_body()] if kind == "deals" else []})

    def _pipeline(self, request: Request, object_type: str, pipeline_id: str) -> Response:
        if canonical_type(object_type) != "deals" or pipeline_id != "default":
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Pipeline {pipeline_id} not found.")
        return Response(200, self._pipeline_body())
