"""What auditors use: the hash chain over every stored event, signed checkpoints, the event
feed, verification, replay, export, and rebuilding read models from zero."""
