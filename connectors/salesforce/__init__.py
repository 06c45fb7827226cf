"""Salesforce: the connector (`connector.py`, through simple-salesforce; `schema.py` for
describe and the mapped fields) and the loopback emulator (`emulator.py`, `bulk.py` for Bulk
API 2.0, the in-memory org in `org.py` with `ids.py`, `values.py` and `tables.py`, and its SOQL
subset in `soql.py` and the `soql_*.py` next to it)."""
