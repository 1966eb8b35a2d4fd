"""FHIR transactions and batches at the base (`POST /fhir` with a Bundle of type `transaction`
or `batch`): each entry is sent through the service's own routes, so it is checked by exactly
the code of the single request, and a transaction's writes are held in a unit of work and
appended in one store transaction."""
