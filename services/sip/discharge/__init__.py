"""Discharge from inpatient care (samverkan vid utskrivning, LSU 2017:612): the stay, its legal
clock and who pays for the waiting days. docs/decisions/0008-discharge-stay.md says why it is
part of the SIP service."""
