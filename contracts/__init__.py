"""What the SIP and consent services and their clients agree on.

Identifier systems, canonical URLs and code systems, the consent decision exchange, and the
actor that every event records. Nothing here does I/O.
"""
