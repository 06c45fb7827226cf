"""Bulk API 2.0 for the Salesforce emulator: query jobs and ingest jobs (wire reference 2.7).

Jobs finish at once, so that simple-salesforce's polling (`wait_for_job`: one sleep, then a
status read per loop) never stalls a test: a query is evaluated when its job is created and
reads `JobComplete` on the first status poll; an ingest job is processed when it is closed
(`UploadComplete`) and reads `JobComplete` on the next poll. The states a slower org passes
through (`InProgress`) are skipped, which no client can tell from a fast org.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.loopback import Request, Response, Router

from .ids import to_id18
from .org import Org, Screen
from .tables import Selection
from .values import OrgError

CSV_TYPE = "text/csv"
_DELIMITERS = {
    "COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`",
}
_LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
_INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
_MULTIPLE_UPLOADS = (
    "Found multiple contents for job: <{}>, please 'Close' / 'Abort' / 'Delete' the current Job "
    "then create a new Job and make sure you only do 'PUT' once on a given Job."
)


def bulk_error(status: int, code: str, message: str) -> Response:
    return Response(status, [{"errorCode": code, "message": message}])


@dataclass
class Job:
    """One Bulk API 2.0 job and what it holds: query rows, or uploaded CSV and its results."""

    info: dict[str, Any]
    selection: Selection | None = None
    upload: str | None = None
    successes: list[list[str]] = field(default_factory=list)
    failures: list[list[str]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        return str(self.info["state"])

    @property
    def delimiter(self) -> str:
        return _DELIMITERS.get(str(self.info.get("columnDelimiter")), ",")

    @property
    def line_ending(self) -> str:
        return _LINE_ENDINGS.get(str(self.info.get("lineEnding")), "\n")


class BulkApi:
    """The `jobs/query` and `jobs/ingest` resources over an `Org`."""

    def __init__(self, org: Org, screen: Callable[[], Screen | None]) -> None:
        self.org = org
        self._screen = screen
        self.jobs: dict[str, Job] = {}
        self.query_jobs_created = 0

    def routes(self, router: Router, prefix: str) -> None:
        for kind in ("query", "ingest"):
            base = f"{prefix}/jobs/{kind}"
            router.add("POST", base, getattr(self, f"create_{kind}_job"))
            router.add("GET", base, self.list_jobs)
            router.add("GET", base + "/{job_id}", self.job_info)
            router.add("PATCH", base + "/{job_id}", self.change_state)
            router.add("DELETE", base + "/{job_id}", self.delete_job)
        router.add("GET", f"{prefix}/jobs/query/{{job_id}}/results", self.query_results)
        router.add("PUT", f"{prefix}/jobs/ingest/{{job_id}}/batches", self.upload)
        router.add("GET", f"{prefix}/jobs/ingest/{{job_id}}/{{kind}}", self.ingest_results)

    # -- shared --

    def _new_info(self, version: str, body: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
        stamp = self.org.stamp()
        return {
            "id": self.org.new_id("750"),
            "operation": body.get("operation"),
            "object": body.get("object"),
            "createdById": self.org.user_id,
            "createdDate": stamp,
            "systemModstamp": stamp,
            "state": "Open",
            **extra,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(version),
            "lineEnding": body.get("lineEnding") or "LF",
            "columnDelimiter": body.get("columnDelimiter") or "COMMA",
        }

    def _job(self, job_id: str, kind: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or job.info["jobType"] != kind:
            raise OrgError("NOT_FOUND", "The requested resource does not exist")
        return job

    def list_jobs(self, request: Request, version: str) -> Response:
        kind = "V2Query" if "/jobs/query" in request.path else "V2Ingest"
        records = [job.info for job in self.jobs.values() if job.info["jobType"] == kind]
        return Response(200, {"done": True, "records": records, "nextRecordsUrl": None})

    def job_info(self, request: Request, version: str, job_id: str) -> Response:
        job = self._job(job_id, _kind(request))
        if job.state == "UploadComplete" and job.selection is not None:
            job.info["state"] = "JobComplete"
        return Response(200, job.info)

    def change_state(self, request: Request, version: str, job_id: str) -> Response:
        job = self._job(job_id, _kind(request))
        wanted = (request.json() or {}).get("state")
        if wanted == "Aborted" and job.state in ("Open", "UploadComplete", "InProgress"):
            job.info["state"] = "Aborted"
        elif wanted == "UploadComplete" and job.state == "Open" and job.selection is None:
            self._process(job)
            return Response(200, {**job.info, "state": "UploadComplete"})
        else:
            return bulk_error(400, "INVALIDJOBSTATE", f"Invalid state change: {wanted}")
        return Response(200, job.info)

    def delete_job(self, request: Request, version: str, job_id: str) -> Response:
        self._job(job_id, _kind(request))
        del self.jobs[job_id]
        return Response(204)

    # -- query jobs --

    def create_query_job(self, request: Request, version: str) -> Response:
        body = request.json() or {}
        operation = body.get("operation")
        if operation not in ("query", "queryAll"):
            return bulk_error(400, "INVALIDJOB", f"Invalid operation: {operation}")
        selection = self.org.select(
            str(body.get("query") or ""), include_deleted=operation == "queryAll",
            version=version,
        )
        if selection.count_only:
            return bulk_error(400, "INVALIDJOB", "Aggregate queries are not supported")
        info = self._new_info(version, {**body, "object": selection.sobject},
                              jobType="V2Query", numberRecordsProcessed=len(selection.rows),
                              retries=0, totalProcessingTime=0)
        info["state"] = "UploadComplete"
        self.jobs[info["id"]] = Job(info, selection=selection)
        self.query_jobs_created += 1
        return Response(200, info)

    def query_results(self, request: Request, version: str, job_id: str) -> Response:
        job = self._job(job_id, "V2Query")
        if job.state != "JobComplete" or job.selection is None:
            # The reference calls this "412-style"; the documented envelope is kept.
            return bulk_error(412, "JOB_NOT_COMPLETE", f"Job {job_id} is not complete")
        start = _decode_locator(request.arg("locator"))
        if start is None:
            return bulk_error(400, "INVALIDLOCATOR", "Invalid locator")
        rows = job.selection.rows
        size = int(request.arg("maxRecords") or len(rows) or 1)
        page = rows[start : start + max(size, 1)]
        end = start + len(page)
        headers = {
            "Sforce-NumberOfRecords": str(len(page)),
            "Sforce-Locator": _encode_locator(end) if end < len(rows) else "null",
        }
        return Response(200, self._query_csv(job, page), headers, CSV_TYPE)

    def _query_csv(self, job: Job, rows: list[Mapping[str, Any]]) -> str:
        """Header of API names, then every value double-quoted and null as an empty field."""
        selection = job.selection
        assert selection is not None
        sep, end = job.delimiter, job.line_ending
        lines = [sep.join(_quoted(name) for name in selection.columns)]
        for row in rows:
            projected = selection.project(row)
            lines.append(sep.join(
                _cell(_column_value(projected, name)) for name in selection.columns
            ))
        return end.join(lines) + end

    # -- ingest jobs --

    def create_ingest_job(self, request: Request, version: str) -> Response:
        body = request.json() or {}
        operation = body.get("operation")
        name = self.org.resolve(str(body.get("object") or ""))
        if name is None:
            return bulk_error(400, "INVALIDJOB",
                              f"sObject type '{body.get('object')}' is not supported")
        if operation not in _INGEST_OPERATIONS:
            return bulk_error(400, "INVALIDJOB", f"Invalid operation: {operation}")
        extra: dict[str, Any] = {"jobType": "V2Ingest"}
        if operation == "upsert":
            external = self._external_field(name, str(body.get("externalIdFieldName") or ""))
            if external is None:
                return bulk_error(400, "INVALIDJOB", "External ID field is not valid for upsert: "
                                  f"{body.get('externalIdFieldName')}")
            extra["externalIdFieldName"] = external
        info = self._new_info(version, {**body, "object": name}, **extra)
        info["contentUrl"] = f"services/data/v{version}/jobs/ingest/{info['id']}/batches"
        self.jobs[info["id"]] = Job(info)
        return Response(200, info)

    def _external_field(self, sobject: str, name: str) -> str | None:
        spec = self.org.spec(sobject)
        canonical = spec.canonical(name) if name else None
        if canonical is None:
            return None
        field_spec = spec.fields[canonical]
        return canonical if field_spec.indexed or field_spec.type == "id" else None

    def upload(self, request: Request, version: str, job_id: str) -> Response:
        job = self._job(job_id, "V2Ingest")
        if job.state != "Open":
            return bulk_error(409, "INVALIDJOBSTATE", f"Job {job_id} is not open")
        if job.upload is not None:
            return bulk_error(400, "BULK_API_ERROR", _MULTIPLE_UPLOADS.format(job_id))
        job.upload = request.text()
        return Response(201)

    def ingest_results(self, request: Request, version: str, job_id: str, kind: str) -> Response:
        job = self._job(job_id, "V2Ingest")
        if job.state != "JobComplete":
            return bulk_error(412, "JOB_NOT_COMPLETE", f"Job {job_id} is not complete")
        kinds = {
            "successfulresults": (["sf__Id", "sf__Created"], job.successes),
            "failedresults": (["sf__Id", "sf__Error"], job.failures),
            # Every uploaded row is processed, so nothing is ever left unprocessed.
            "unprocessedrecords": ([], []),
        }
        chosen = kinds.get(kind.lower())
        if chosen is None:
            raise OrgError("NOT_FOUND", "The requested resource does not exist")
        prefix, rows = chosen
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(prefix + job.header)
        writer.writerows(rows)
        return Response(200, out.getvalue(), {}, CSV_TYPE)

    def _process(self, job: Job) -> None:
        """Apply every uploaded row; the job completes (or fails on a bad header) at once."""
        reader = csv.reader(io.StringIO(job.upload or ""), delimiter=job.delimiter)
        rows = list(reader)
        job.header = rows[0] if rows else []
        spec = self.org.spec(str(job.info["object"]))
        for column in job.header:
            if spec.canonical(column) is None:
                job.info.update(state="Failed",
                                errorMessage=f"InvalidBatch : Field name not found : {column}")
                return
        columns = [str(spec.canonical(column)) for column in job.header]
        failed = 0
        for cells in rows[1:]:
            failed += not self._apply(job, columns, cells)
        job.info.update(
            state="JobComplete", numberRecordsProcessed=len(rows) - 1 if rows else 0,
            numberRecordsFailed=failed, retries=0, totalProcessingTime=0,
            apiActiveProcessingTime=0, apexProcessingTime=0,
        )

    def _apply(self, job: Job, columns: list[str], cells: list[str]) -> bool:
        # An empty cell leaves the field alone; `#N/A` clears it (reference 2.7).
        fields = {
            name: (None if cell == "#N/A" else cell)
            for name, cell in zip(columns, cells, strict=False) if cell != ""
        }
        record_id = str(fields.get("Id") or "")
        try:
            record_id, created = self._write(job, fields)
        except OrgError as error:
            trail = ",".join(error.fields)
            job.failures.append(
                [record_id, f"{error.error_code}:{error.message}:{trail} --", *cells]
            )
            return False
        job.successes.append([record_id, "true" if created else "false", *cells])
        return True

    def _write(self, job: Job, fields: dict[str, Any]) -> tuple[str, bool]:
        sobject, operation = str(job.info["object"]), job.info["operation"]
        screen = self._screen()
        if operation == "insert":
            return self.org.insert(sobject, fields, screen=screen), True
        record_id = str(fields.pop("Id", "") or "")
        if operation == "upsert":
            return self._upsert(sobject, str(job.info["externalIdFieldName"]), record_id, fields)
        if not record_id:
            raise OrgError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
        if operation == "update":
            self.org.update(sobject, record_id, fields, screen=screen)
        else:
            self.org.delete(sobject, record_id)
        return to_id18(record_id) or record_id, False

    def _upsert(
        self, sobject: str, external: str, record_id: str, fields: dict[str, Any]
    ) -> tuple[str, bool]:
        screen = self._screen()
        value = record_id if external == "Id" else fields.get(external)
        match = self.org.find_one(sobject, external, value) if value else None
        if match is not None:
            self.org.update(sobject, match, fields, screen=screen)
            return match, False
        if external == "Id" and value:
            raise OrgError("NOT_FOUND", "The requested resource does not exist", ["Id"])
        return self.org.insert(sobject, fields, screen=screen), True


def _kind(request: Request) -> str:
    return "V2Query" if "/jobs/query" in request.path else "V2Ingest"


def _encode_locator(offset: int) -> str:
    # Salesforce's locators are opaque; base64 of the row offset looks like theirs ("MjAwMDA").
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _decode_locator(locator: str | None) -> int | None:
    if not locator or locator == "null":
        return 0
    try:
        padded = locator + "=" * (-len(locator) % 4)
        return int(base64.b64decode(padded, validate=True).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def _column_value(projected: Mapping[str, Any], column: str) -> Any:
    if "." not in column:
        return projected.get(column)
    relationship, _, name = column.partition(".")
    parent = projected.get(relationship)
    return parent.get(name) if isinstance(parent, Mapping) else None


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return _quoted("true" if value else "false")
    return _quoted(str(value))
