"""What every layer of the service shares: its domain errors (common.errors).

The bottom layer: it imports nothing of the service (.importlinter)."""
