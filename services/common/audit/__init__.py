"""What runs inside every service for auditors: the hash chain written with each stored event,
signed checkpoints of the log's head, and the `/events` feed. The tools that check them from
outside live in `services.ops`."""
