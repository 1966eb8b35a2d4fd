"""What the pages say, in Swedish: the names of codes, and a refusal from a service put in
words a coordinator or the person understands. Code and URLs stay English."""

from __future__ import annotations

import re

from services.common.personal_data.retention import DEFAULT_RULES
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
    # A stay's steps (services/sip/discharge/disclosure.py).
    "admission-notice": "inskrivningsmeddelande",
    "ready-notice": "meddelande om utskrivningsklar",
    "ready-withdrawal": "återkallad utskrivningsklar",
    "care-contact": "fast vårdkontakt",
    "sip-call": "kallelse till SIP",
    "information-transfer": "informationsöverföring",
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
    "person-pages-for-the-person": (
        "Sidorna under ”Mina planer” är till för personen själv, inloggad med e-legitimation. "
        "Som personal hittar du planerna i arbetslistan."
    ),
    "own-plan": "Du kan bara ändra i din egen plan.",
    "consent-withdrawal-is-final": (
        "Samtycket är redan återkallat. Vill du dela igen ger du ett nytt samtycke."
    ),
    "consent-entered-in-error": "Samtycket registrerades av misstag och gäller inte.",
    # The plan page's edits (services/web/plan_forms.py).
    "activate-only-draft": "Bara ett utkast kan aktiveras.",
    "activation-needs-both-principals": (
        "Planen kan aktiveras först när både region och kommun deltar. Bjud in den som saknas."
    ),
    "activation-needs-overall-responsibility": (
        "Ange vem som har huvudansvaret innan planen aktiveras."
    ),
    "activation-needs-a-need": "Registrera minst ett behov innan planen aktiveras.",
    "activation-needs-an-intervention": "Lägg till minst en insats innan planen aktiveras.",
    "activation-needs-follow-up-date": "Sätt ett datum för uppföljning innan planen aktiveras.",
    "known-need": "Planen har inget sådant behov.",
    "known-goal": "Planen har inget sådant mål.",
    "known-intervention": "Planen har ingen sådan insats.",
    "known-meeting": "Planen har inget sådant möte.",
    "known-deviation": "Planen har ingen sådan avvikelse.",
    "intervention-organization-takes-part": (
        "Organisationen måste delta i planen. Bjud in den först."
    ),
    "participant-organization-takes-part": (
        "En yrkesperson företräder en organisation som deltar i planen."
    ),
    "intervention-responsible-principal": "Välj region, kommun eller annan aktör som ansvarig.",
    "intervention-status": "Välj en av statusarna i listan.",
    "organization-kind": "Välj region, kommun eller annan aktör.",
    "participant-kind": "Välj hur personen deltar.",
    "close-reason": "Välj ett av skälen i listan.",
    "approver": "Godkännandet kunde inte registreras så.",
    "deviation-by-participant": "Bara en organisation som deltar i planen kan göra detta.",
    "version-conflict": "Någon annan har ändrat planen medan du arbetade.",
    # The conditions of the role matrix (docs/role-matrix.md).
    "own-organization": "Bara din egen organisations planer kan ändras så.",
    "starting-or-responsible": (
        "Bara den organisation som startade planen eller som har huvudansvaret kan aktivera den."
    ),
    "principal-takes-part": (
        "Bara en huvudman (region eller kommun) som deltar i planen kan göra detta."
    ),
    "organization-takes-part": "Bara en organisation som deltar i planen kan göra detta.",
    "staff-record-a-meetings-approval": (
        "Personal registrerar bara ett godkännande som personen gav på ett möte där personen "
        "(eller vårdnadshavare eller ställföreträdare) deltog. Personen kan också godkänna "
        "själv med sin egen inloggning."
    ),
    "person-approves": "Bara personen själv kan godkänna ändringar med sin inloggning.",
    "overall-responsible": (
        "Bara den organisation som har huvudansvaret för planen kan avsluta den."
    ),
    "person-withdraws": (
        "Personen kan avsluta sin plan med skälet att hen inte längre vill ha en SIP."
    ),
    "deviation-against-caller": "Bara den organisation som avvikelsen gäller kan besvara den.",
}
# Goal.achievementStatus as the API gives it.
GOAL_ACHIEVEMENT = {
    "in-progress": "Pågår",
    # The SIP service gives a partly achieved goal as `improving`.
    "improving": "Delvis uppnått",
    "worsening": "Går bakåt",
    "no-change": "Ingen förändring",
    "sustaining": "Upprätthålls",
    "no-progress": "Inga framsteg",
    "achieved": "Uppnått",
    "not-achieved": "Inte uppnått",
}
GOAL_LIFECYCLE = {
    "proposed": "Föreslaget, väntar på personens godkännande",
    "active": "Aktivt",
    "completed": "Avslutat",
    "cancelled": "Avbrutet",
}
INVITATION_STATUS = {"invited": "Inbjuden", "accepted": "Har accepterat"}

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
    """The operation parameter an issue is about, from its FHIRPath
    (`Parameters.parameter.where(name='text')...` or a bare name), so the message stands
    beside that field."""
    expression = issue.expression or ""
    named = re.search(r"name='([^']+)'", expression)
    if named:
        return named.group(1)
    if expression and expression.replace("_", "").isalnum():
        return expression
    for quote in ("'", '"'):
        if issue.message.startswith(quote):
            return issue.message[1:].split(quote, 1)[0] or None
    return None


# Starting a plan, registering consent and the plan's timeline (routes/start.py, timeline.py).
INITIATIVE = {
    "region-unit": "En enhet i regionen",
    "municipal-unit": "En enhet i kommunen",
    "person": "Personen själv",
    "relative": "En närstående",
}
CONSENT_GIVER_ROLE = {
    "person": "Personen själv",
    "guardian": "Vårdnadshavare",
    "child": "Barnet självt (bedömt moget nog)",
    "god-man": "God man",
    "forvaltare": "Förvaltare",
    "representative": "Annan ställföreträdare",
}
CONSENT_FORM = {"written": "Skriftligt", "oral": "Muntligt", "digital": "Digitalt"}
CONSENT_KIND = {"permit": "Samtycke", "block": "Spärr"}
CONSENT_STATE = {
    "active": "Gäller",
    "withdrawn": "Återkallat",
    "expired": "Har gått ut",
    "not-yet": "Gäller från ett senare datum",
    "entered-in-error": "Registrerat av misstag",
}
CONSENT_CATEGORY = {
    "sip": "att en SIP upprättas",
    "sip-plan": "planens innehåll (behov, mål, insatser, ansvar)",
    "health-care": "uppgifter från regionens journaler",
    "social-services": "uppgifter från socialtjänstens akter",
    "relatives": "att närstående deltar",
    "cooperation": "samverkan mellan huvudmännen utan SIP",
}
# Provenance.activity.text: the operation's name, or the event's for a creation.
COMMAND = {
    "Started": "Planen påbörjad",
    "invite-organization": "Organisation inbjuden",
    "accept-invitation": "Inbjudan accepterad",
    "add-participant": "Deltagare tillagd",
    "record-need": "Behov registrerat",
    "set-goal": "Mål satt",
    "revise-goal": "Mål ändrat",
    "assess-goal": "Mål bedömt",
    "assign-intervention": "Insats tilldelad",
    "set-intervention-status": "Insatsens status ändrad",
    "assign-overall-responsibility": "Huvudansvar tilldelat",
    "schedule-meeting": "SIP-möte planerat",
    "record-meeting": "SIP-möte dokumenterat",
    "set-follow-up": "Uppföljning planerad",
    "record-follow-up": "Uppföljning genomförd",
    "allocate-cost": "Kostnadsfördelning föreslagen",
    "agree-cost-allocation": "Kostnadsfördelning godkänd",
    "approve-changes": "Ändringar godkända",
    "activate": "Planen aktiverad",
    "close": "Planen avslutad",
    "report-deviation": "Avvikelse rapporterad",
    "answer-deviation": "Avvikelse besvarad",
    "consent-withdrawn": "Samtycke har upphört (noterat av systemet)",
}
RULE.update(
    {
        "consent-period-order": "Samtyckets slutdatum ligger före startdatumet.",
        "consent-maturity-judgement": (
            "Ett barn samtycker själv bara när någon har bedömt att barnet är moget nog: ange "
            "vem som bedömde, när (inte ett datum framåt i tiden) och på vilken grund. Annars "
            "är det vårdnadshavarna som samtycker."
        ),
        "consent-giver-role": "Ange i vilken egenskap samtycket lämnas.",
        "consent-performer": "Ange vem som lämnade samtycket.",
        "consent-organization-hsa-id": (
            "Ange organisationernas HSA-id, till exempel SE2321000016-7P31."
        ),
        "consent-form": "Ange hur samtycket lämnades: skriftligt eller muntligt.",
        "consent-category-required": "Ange vad samtycket gäller.",
        "valid-person-identifier": (
            "Personnumret är inte giltigt: kontrollera födelsedatumet och kontrollsiffran."
        ),
        "valid-datetime": "Datumet kunde inte läsas. Skriv det som ÅÅÅÅ-MM-DD.",
        "organization-kind": "Ange vilken sorts organisation det är: region, kommun eller annan.",
        "plan-starting-organization": "Planen startas av din egen organisation.",
        "sip-initiative": "Ange vem som tog initiativet till planen.",
        "own-organization": "Du kan bara starta en plan för din egen organisation.",
        "plan-starts-as-draft": "En ny plan börjar som utkast.",
    }
)

# A form posted without the version of the record its page showed (a hand-made post).
MISSING_PLAN_VERSION = "Formuläret saknar planens version. Ladda om sidan och försök igen."
MISSING_STAY_VERSION = "Formuläret saknar vistelsens version. Ladda om sidan och försök igen."

# The inpatient stay (discharge, LSU 2017:612).
STAY_CHANGED = (
    "Någon annan har ändrat vistelsen medan du arbetade. Se hur den ser ut nu och försök igen."
)
# Communication.category (the SIP service's CodeSystem/communication-category).
MESSAGE_CATEGORY = {"message": "Meddelande", "admission-notice": "Inskrivningsmeddelande"}
STAY_STATUS = {
    "admitted": "Inskriven",
    "ready": "Utskrivningsklar",
    "discharged": "Utskriven",
}
RECIPIENT_KIND = {
    "primary-care": "Primärvård",
    "social-services": "Kommunens socialtjänst",
    "municipal-health-care": "Kommunal hälso- och sjukvård",
}
# A Task's duty code (the stay's duties) and a missed deadline's.
DUTY = {
    "admission-notice": "Skicka inskrivningsmeddelande",
    "care-contact": "Utse fast vårdkontakt",
    "sip-call": "Kalla till SIP",
    "information-transfer": "Överföra information",
}
# What raised a deviation the stay's legal clock found (`Plan.DeviationReported` v2 `source`).
MISSED_DEADLINE = "Missad tidsfrist enligt lagen (2017:612) om samverkan vid utskrivning"
MISSED_DEADLINE_DUE = "senast"
MISSED_DEADLINE_STAY = "Till vårdtillfället"
STAY_RULE = {
    "receipt-by-recipient": "Bara en enhet som meddelandet gick till kan bekräfta mottagandet.",
    "receipt-once": "Mottagandet är redan bekräftat.",
    "care-contact-by-primary-care": "Fast vårdkontakt utses av primärvården som fick "
    "inskrivningsmeddelandet.",
    "care-contact-named-once": "Fast vårdkontakt är redan utsedd.",
    "disclosure-requires-consent-or-judgement": "Personens samtycke saknas. Skriv en "
    "sekretessprövning (att sekretess inte hindrar uppgiften) eller registrera samtycke.",
    "withdraw-when-ready": "Personen är inte utskrivningsklar just nu.",
    "ready-once": "Personen är redan utskrivningsklar.",
    "sip-called-by-care-contact": "SIP kallas av den fasta vårdkontaktens enhet.",
    "sip-called-once": "SIP är redan kallad för vistelsen.",
    "sip-needs-both-principals": "SIP kallas när både region och kommun behövs efter "
    "utskrivningen.",
    "discharged-stay-unchanged": "Personen är utskriven: vistelsen ändras inte längre.",
    "by-the-hospital": "Det steget tas av sjukhusets avdelning.",
    "admitted-by-the-hospital": "Personen skrivs in av någon som arbetar för sjukhuset.",
    "admission-not-in-future": "Inskrivningen kan inte ligga senare än nu.",
    # The admission form sent again (the back button) for another person: its key is taken.
    "identifier-unique-per-organization": "Formuläret har redan skickats och skrev då in en "
    "annan person. Kontrollera uppgifterna och skicka igen.",
    "care-need-judged-once": "Behovet av insatser efter utskrivningen är redan bedömt.",
    "notice-after-judgement": "Bedöm först om personen behöver insatser efter utskrivningen: "
    "inskrivningsmeddelandet skickas efter den bedömningen.",
    "admission-notice-sent-once": "Inskrivningsmeddelandet är redan skickat.",
    "notice-to-units-concerned": "Meddelandet ska gå till en enhet hos varje huvudman vars "
    "insatser behövs: regionens primärvård och kommunens enhet, enligt bedömningen.",
    "outpatient-unavailable-by-region": "Det registreras av sjukhusets avdelning eller av "
    "primärvården som fick inskrivningsmeddelandet.",
    "outpatient-unavailable-once": "Det är redan registrerat att regionens öppna vård inte är "
    "tillgänglig.",
}
# A value the stay refuses as invalid (the API's diagnostics, which name no rule of their own).
INVALID_VALUE = {
    "recipients: each unit once": "Varje enhet kan bara anges en gång.",
    "recipients: one primary-care unit: the person's own": (
        "Ange en enda enhet i primärvården: personens egen."
    ),
    "recipients: the municipal units are of one municipality": (
        "Kommunens enheter ska höra till en och samma kommun."
    ),
    "estimated_discharge: the discharge is after the admission": (
        "Den beräknade utskrivningen ska ligga efter inskrivningen."
    ),
}
RULE.update(STAY_RULE)  # one table of refusals: refusal_in_swedish says these too

# A text erased under a retention rule (docs/decisions/0007), shown in its place; the default
# rules by their Swedish names, a rule configured otherwise as it is written.
ERASED_TEXT = "Raderad {date} enligt {rule}"
RETENTION_RULE = {
    DEFAULT_RULES["region"].rule: "patientjournal, 10 år efter sista anteckningen (PDL 3:17)",
    DEFAULT_RULES["municipality"].rule: (
        "socialtjänstakt, 5 år efter sista anteckningen (SoL 12:1)"
    ),
}
