"""Salesforce: the loopback emulator (`emulator.py`) and its SOQL subset (`soql.py`); the
connector arrives with the pull issue."""
