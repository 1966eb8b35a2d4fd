"""Versioned schema migrations (Alembic), one history per service database.

`sip migrate` (runner.py) brings a database to the code's head; a service process only checks
the version (schema_version.py) and refuses to start on any other, so replicas never create
schema, let alone at the same instant.
"""
