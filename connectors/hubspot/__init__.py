"""HubSpot: the loopback emulator (`emulator.py`); the connector arrives with the pull issue."""
