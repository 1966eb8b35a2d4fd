"""What the SIP and consent services and their clients agree on.

Identifier systems, canonical URLs and code systems, the consent decision exchange, the
actor that every event records, and which fields of the stored creation events name the
person and the custodian. Nothing here does I/O.
"""
