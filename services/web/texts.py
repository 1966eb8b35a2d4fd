"""What the pages say, in Swedish: the names of codes, and a refusal from a service put in
words a coordinator or the person understands. Code and URLs stay English."""

from __future__ import annotations

from services.web.fhir_client import Issue, Refused

PLAN_STATUS = {
    "draft": "Utkast",
    "active": "Aktiv",
    "completed": "Avslutad",
    "revoked": "Avbruten",
    "on-hold": "Vilande",
}
PRINCIPAL = {"region": "Region", "municipality": "Kommun", "other": "Annan aktör"}
INTERVENTION_KIND = {
    "treatment": "Behandling",
    "care": "Vård",
    "support": "Stöd",
    "preventive": "Förebyggande",
    "rehabilitating": "Rehabilitering",
    "self-care": "Egenvård",
    "other": "Annat",
}
# CarePlan.activity.detail.status as the API gives it.
ACTIVITY_STATUS = {
    "not-started": "Planerad",
    "in-progress": "Pågår",
    "completed": "Genomförd",
    "stopped": "Avbruten",
    "cancelled": "Avbruten",
}
# The operation's own codes (`$set-intervention-status`).
INTERVENTION_STATUS = {
    "planned": "Planerad",
    "in-progress": "Pågår",
    "done": "Genomförd",
    "stopped": "Avbruten",
}
GOAL_OUTCOME = {
    "achieved": "Uppnått",
    "partially-achieved": "Delvis uppnått",
    "not-achieved": "Inte uppnått",
}
CLOSE_REASON = {
    "goals-reached": "Målen är nådda",
    "person-withdrew": "Personen vill inte längre ha en SIP",
    "moved": "Personen har flyttat",
    "died": "Personen har avlidit",
    "replaced": "Ersatt av en ny plan",
}
PARTICIPANT_KIND = {
    "person": "Personen själv",
    "relative": "Närstående",
    "guardian": "Vårdnadshavare",
    "representative": "Ställföreträdare (god man, förvaltare)",
    "professional": "Yrkesperson",
}
ROLE = {
    "coordinator": "Samordnare",
    "professional": "Yrkesperson",
    "auditor": "Granskare",
    "integration": "Verksamhetssystem",
    "patient": "Personen",
}
WITHHELD_KIND = {
    "need": "behov",
    "goal": "mål",
    "goal-assessment": "måluppföljning",
    "intervention": "insatser",
    "participant": "deltagare",
    "meeting": "möten",
    "meeting-notes": "mötesanteckningar",
    "follow-up": "uppföljningar",
    "cost-allocation": "kostnadsfördelning",
    "deviation": "avvikelser",
    "deviation-answer": "svar på avvikelser",
    "change": "ändringar",
    "rejection-reason": "skäl till avböjda ändringar",
    "title": "rubrik",
    "description": "beskrivning",
}

# A refused rule (OperationOutcome details, CodeSystem/rule) said plainly.
RULE = {
    "activation-requires-consent": (
        "Planen kan inte aktiveras: personens samtycke saknas för att huvudmännen ska få dela "
        "uppgifter med varandra. Registrera samtycke (eller kontrollera att det inte har "
        "återkallats eller gått ut) och försök igen."
    ),
    "changes-to-approve": "Det finns inga föreslagna ändringar att godkänna.",
    "changes-to-reject": "Det finns inga föreslagna ändringar att avböja.",
    "closed-plan-unchanged": "Planen är avslutad och kan inte längre ändras.",
    "cost-agreed-once": "Kostnadsfördelningen är redan godkänd av er.",
    "cost-share-amount": "Ange antingen procent eller belopp för varje andel.",
    "cost-shares-whole": "Andelarna måste tillsammans bli 100 procent.",
    "cost-shares-between-principals": "Kostnader fördelas bara mellan region och kommun.",
    "default-split-only-when-unclear": (
        "Standardfördelningen (1/3 och 2/3) gäller bara när båda huvudmännen angett att "
        "fördelningen är oklar."
    ),
    "deviation-answered-once": "Avvikelsen är redan besvarad.",
    "deviation-against-another": "En avvikelse rapporteras mot en annan organisation än er egen.",
    "follow-up-of-active-plan": "Uppföljning görs av en aktiv plan.",
    "meeting-place": "Ange en plats eller en videolänk för mötet.",
    "meeting-approval-needs-the-person": (
        "Ändringar godkänns på ett möte bara om personen (eller vårdnadshavare eller "
        "ställföreträdare) deltog."
    ),
    "organization-invited-once": "Organisationen är redan inbjuden till planen.",
    "overall-responsibility-changes": "Huvudansvaret kan inte ändras så.",
    "overall-responsibility-principal": (
        "Huvudansvaret ligger hos en huvudman: region eller kommun."
    ),
    "overall-responsibility-transfer-reason": "Ange varför huvudansvaret flyttas.",
    "relative-needs-person-agreement": "En närstående deltar bara om personen samtycker till det.",
    "replaced-by-plan": "Ange vilken plan som ersätter denna.",
    "responsible-principal-matches-organization": (
        "Den ansvariga organisationen måste höra till den huvudman som anges som ansvarig."
    ),
    "intervention-has-performer": "Ange vem som utför insatsen.",
    "stopped-intervention-reason": "Ange varför insatsen avbryts.",
    "invitation-accepted-once": "Inbjudan är redan accepterad.",
}

STATUS = {
    400: "Uppgifterna kunde inte tas emot.",
    403: "Du har inte behörighet att göra detta.",
    404: "Det finns ingen sådan plan som du får se.",
    409: "Ändringen strider mot en regel för planen.",
    412: "Någon annan har ändrat planen medan du arbetade.",
    422: "Uppgifterna kunde inte tas emot.",
}


def refusal_in_swedish(refused: Refused) -> list[str]:
    """One plain sentence per issue; the service's own words (English) only as a last resort,
    after a Swedish sentence, so the user can tell support exactly what was said."""
    sentences = []
    for issue in refused.issues or [Issue("")]:
        sentence = RULE.get(issue.rule or "") or STATUS.get(refused.status, "Något gick fel.")
        if issue.rule not in RULE and issue.message:
            sentence = f"{sentence} ({issue.message})"
        sentences.append(sentence)
    return sentences


def parameter_of(issue: Issue) -> str | None:
    """The operation parameter an issue is about, from its FHIRPath (`Parameters.parameter
    ('text')...` or a bare name), so the message stands beside that field."""
    expression = issue.expression or ""
    if "parameter('" in expression:
        return expression.split("parameter('", 1)[1].split("'", 1)[0]
    if expression and expression.replace("_", "").isalnum():
        return expression
    for quote in ("'", '"'):
        if issue.message.startswith(quote):
            return issue.message[1:].split(quote, 1)[0] or None
    return None
