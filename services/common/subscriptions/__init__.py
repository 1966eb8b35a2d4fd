"""Topic-based subscriptions (FHIR Subscriptions R5 Backport IG, R4 form): a record system
subscribes to a topic with filters and a rest-hook endpoint; a worker follows the event log
and tells it, at least once and in order, only what it may read at the moment of delivery.
docs/decisions/0006-subscriptions.md says why it is built this way."""
