"""The emulated REST API's metadata resources: the versions list, the resources of a version,
`limits/` (wire reference 2.9), the global describe and an sObject's basic info and describe
(2.4).
"""

from __future__ import annotations

from collections.abc import Callable

from connectors.loopback import Request, Response, Router

from .bulk import BulkApi
from .emulator_wire import MAX_COLLECTION
from .org import Org


class DescribeApi:
    """Metadata of an `Org`. `sobject` is the sObject API's lookup of the canonical name a URL
    names, so both answer an unknown sObject alike; `usage` reads (api calls used, daily
    limit) when `limits/` is asked, and `bulk` the Bulk API 2.0 query jobs created."""

    def __init__(self, org: Org, sobject: Callable[[str], str],
                 usage: Callable[[], tuple[int, int]], bulk: BulkApi) -> None:
        self.org = org
        self._sobject = sobject
        self._usage = usage
        self._bulk = bulk

    def routes(self, router: Router, prefix: str) -> None:
        router.add("GET", "/services/data", self._versions)
        router.add("GET", prefix, self._resources)
        router.add("GET", f"{prefix}/limits", self._limits)
        router.add("GET", f"{prefix}/sobjects", self._describe_global)
        sobject = f"{prefix}/sobjects/{{sobject}}"
        router.add("GET", sobject, self._basic_info)
        router.add("GET", f"{sobject}/describe", self._describe)

    def _versions(self, request: Request) -> Response:
        return Response(200, [
            {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"},
            {"label": "Spring '24", "url": "/services/data/v60.0", "version": "60.0"},
            {"label": "Summer '24", "url": "/services/data/v61.0", "version": "61.0"},
            {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"},
        ])

    def _resources(self, request: Request, version: str) -> Response:
        base = f"/services/data/v{version}"
        names = ("sobjects", "query", "queryAll", "limits", "composite", "jobs")
        return Response(200, {name: f"{base}/{name}" for name in names})

    def _limits(self, request: Request, version: str) -> Response:
        """`GET limits/` in the shape of reference 2.9."""
        def entry(maximum: int, used: int = 0) -> dict[str, int]:
            return {"Max": maximum, "Remaining": max(0, maximum - used)}

        jobs = self._bulk.query_jobs_created
        api_usage, daily_limit = self._usage()
        return Response(200, {
            "ActiveScratchOrgs": entry(3), "ConcurrentAsyncGetReportInstances": entry(200),
            "ConcurrentSyncReportRuns": entry(20), "DailyAnalyticsDataflowJobExecutions":
                entry(60), "DailyApiRequests": entry(daily_limit, api_usage),
            "DailyAsyncApexExecutions": entry(250_000), "DailyBulkApiBatches": entry(15_000),
            "DailyBulkApiRequests": entry(10_000), "DailyBulkV2QueryFileStorageMB":
                entry(976_562), "DailyBulkV2QueryJobs": entry(10_000, jobs),
            "DailyDurableGenericStreamingApiEvents": entry(10_000),
            "DailyDurableStreamingApiEvents": entry(10_000), "DailyGenericStreamingApiEvents":
                entry(10_000), "DailyStandardVolumePlatformEvents": entry(10_000),
            "DailyStreamingApiEvents": entry(10_000), "DailyWorkflowEmails": entry(2_000),
            "DataStorageMB": entry(1_024), "FileStorageMB": entry(20_480),
            "HourlyAsyncReportRuns": entry(1_200), "HourlyDashboardRefreshes": entry(200),
            "HourlyDashboardResults": entry(5_000), "HourlyDashboardStatuses": entry(999_999_999),
            "HourlyODataCallout": entry(20_000), "HourlySyncReportRuns": entry(500),
            "HourlyTimeBasedWorkflow": entry(1_000), "MassEmail": entry(5_000),
            "SingleEmail": entry(5_000), "StreamingApiConcurrentClients": entry(2_000),
        })

    def _describe_global(self, request: Request, version: str) -> Response:
        return Response(200, {
            "encoding": "UTF-8", "maxBatchSize": MAX_COLLECTION,
            "sobjects": [self.org.spec(n).summary(version) for n in self.org.sobject_names()],
        })

    def _describe(self, request: Request, version: str, sobject: str) -> Response:
        return Response(200, self.org.describe(self._sobject(sobject), version))

    def _basic_info(self, request: Request, version: str, sobject: str) -> Response:
        summary = self.org.spec(self._sobject(sobject)).summary(version)
        return Response(200, {"objectDescribe": summary, "recentItems": []})
