"""Tools that run beside the services, on the operator's or auditor's machine: verifying the
hash chain, replay, export, rebuilding read models from zero, offline access to a service's
stores, and the published event schemas. They may import both services; nothing in the
services imports them (docs/decisions/0002)."""
