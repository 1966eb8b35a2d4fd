"""Secure messages between the organisations taking part in one plan or one inpatient stay,
served as FHIR `Communication` (docs/decisions/0012-messages.md)."""
