"""The care coordinators' and the person's web client: server-rendered pages that read and
write only through the SIP and consent services' FHIR APIs, with the signed-in user's own
token. It keeps nothing of its own beyond the signed session cookie."""
