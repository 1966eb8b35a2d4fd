"""Canonical URLs and code systems defined by this project.

The base is the project's canonical namespace: it identifies definitions, it is not fetched.
"""

CANONICAL_BASE = "https://sip-case.se/fhir"

# Code system of the information categories a consent covers and a disclosure check asks for.
CONSENT_CATEGORY_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/consent-category"
# The category the SIP service asks for before it discloses or activates a plan.
CONSENT_CATEGORY_SIP_PLAN = "sip-plan"
CONSENT_CATEGORIES: dict[str, str] = {
    "sip": "Consent to draw up a coordinated individual plan (SIP)",
    CONSENT_CATEGORY_SIP_PLAN: (
        "The SIP itself: its needs, goals, interventions and responsibilities"
    ),
    "health-care": "Health-care information from the region's records",
    "social-services": "Social-services information from the municipality's records",
    "relatives": "Relatives take part in the SIP",
    "cooperation": "Cooperation between the principals when the person declines a SIP",
}

# LOINC "Patient consent", the category IHE Privacy Consent on FHIR puts on every Consent.
LOINC_SYSTEM = "http://loinc.org"
LOINC_PATIENT_CONSENT = "59284-0"

CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_SCOPES = {"patient-privacy", "treatment", "adr", "research"}

# CarePlan.category: the plan is a SIP (RIV-TA GetCarePlans typeOfCarePlan code `SIP`).
CAREPLAN_CATEGORY_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/careplan-category"
CAREPLAN_CATEGORY_SIP = "SIP"

# Consent operations' Parameters.
CONSENT_DECISION_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/consent-decision"

# Extensions, for what R4 has no element for.
EXT_CONSENT_WITHDRAWAL = f"{CANONICAL_BASE}/StructureDefinition/consent-withdrawal"
EXT_RECORDED_BY = f"{CANONICAL_BASE}/StructureDefinition/recorded-by"
EXT_OVERALL_RESPONSIBILITY = f"{CANONICAL_BASE}/StructureDefinition/overall-responsibility"
EXT_RESPONSIBLE_PRINCIPAL = f"{CANONICAL_BASE}/StructureDefinition/responsible-principal"
EXT_COST_ALLOCATION = f"{CANONICAL_BASE}/StructureDefinition/cost-allocation"
EXT_PENDING_APPROVAL = f"{CANONICAL_BASE}/StructureDefinition/pending-approval"
# Each organisation's invitation to a plan: invited or accepted, when, and the unit and
# contact person it named when it accepted.
EXT_INVITATION = f"{CANONICAL_BASE}/StructureDefinition/invitation"
EXT_ORGANIZATION_KIND = f"{CANONICAL_BASE}/StructureDefinition/organization-kind"
EXT_INITIATIVE = f"{CANONICAL_BASE}/StructureDefinition/sip-initiative"
EXT_DEVIATION = f"{CANONICAL_BASE}/StructureDefinition/deviation"
# On a deviation's note: the intervention it concerns, and (once answered) the answer.
EXT_DEVIATION_INTERVENTION = f"{CANONICAL_BASE}/StructureDefinition/deviation-intervention"
EXT_DEVIATION_ANSWER = f"{CANONICAL_BASE}/StructureDefinition/deviation-answer"
# On a deviation the legal clock raised: the organisation it is against, and what it missed
# (the stay, the duty, when it was due).
EXT_DEVIATION_AGAINST = f"{CANONICAL_BASE}/StructureDefinition/deviation-against"
EXT_DEVIATION_MISSED_DEADLINE = f"{CANONICAL_BASE}/StructureDefinition/deviation-missed-deadline"
EXT_CONSENT_WITHDRAWN = f"{CANONICAL_BASE}/StructureDefinition/consent-withdrawn"
PRINCIPAL_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/principal"
INTERVENTION_KIND_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/intervention-kind"
PARTICIPANT_ROLE_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/sip-participant-role"
EXT_CONSENT_GIVER_ROLE = f"{CANONICAL_BASE}/StructureDefinition/consent-giver-role"
EXT_CONSENT_FORM = f"{CANONICAL_BASE}/StructureDefinition/consent-form"
EXT_ENTERED_IN_ERROR = f"{CANONICAL_BASE}/StructureDefinition/entered-in-error"
EXT_BLOCK_OVERRIDE = f"{CANONICAL_BASE}/StructureDefinition/block-override"
CONSENT_GIVER_ROLES = ("person", "child", "guardian", "god-man", "forvaltare", "representative")
CONSENT_FORMS = ("written", "oral", "digital")
# v3 ParticipationType: who receives the information, and whose information it is.
PARTICIPATION_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
RECIPIENT_ROLE, SOURCE_ROLE = "IRCP", "CST"
# What a reader was not shown (docs/disclosure.md): per custodian, the kind and number of
# entries withheld; and the security label on every resource from which something was.
EXT_WITHHELD_ENTRIES = f"{CANONICAL_BASE}/StructureDefinition/withheld-entries"
SECURITY_LABEL_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
SECURITY_LABEL_REDACTED = "REDACTED"
# A free text whose key was erased under a retention rule (docs/decisions/0007): the element
# keeps a text naming the erasure, and carries FHIR's data-absent-reason `masked` (the real
# value is not there) and this extension (when, under which rule) on its `_element`.
EXT_ERASED = f"{CANONICAL_BASE}/StructureDefinition/personal-data-erased"
DATA_ABSENT_REASON = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
