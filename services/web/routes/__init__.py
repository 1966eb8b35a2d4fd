"""A router per screen: sign-in, worklist, starting a plan, the plan, its timeline, and the
person's own pages."""
