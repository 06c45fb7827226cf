"""HubSpot: the connector (`connector.py`, through hubspot-api-client: `transport.py` for the
calls, `crm.py`, `search.py` and `marketing.py` for the reads, `writer.py` for the writes) and
the loopback emulator (`emulator.py` with its `emulator_*.py` endpoints, over `portal.py`)."""
