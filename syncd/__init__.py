"""syncd: a self-hosted HubSpot <-> Salesforce sync daemon (see ARCHITECTURE.md)."""
