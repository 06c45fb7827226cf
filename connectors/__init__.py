"""CRM connectors and their loopback emulators; each CRM is a package of its own.

Imports run one way: connectors may use the core's kernel (value types, the Connector protocol,
errors), and the core finds connectors by name through entry points, never by import.
"""
