"""Salesforce: the loopback emulator (`emulator.py`) and its SOQL subset (`soql.py` and
the `soql_*.py` next to it); the connector arrives with the pull issue."""
