"""What every layer of the service shares: its domain errors (common.errors), and the id of the
request under way on every log line (common.log_context).

The bottom layer: it imports nothing of the service (.importlinter)."""
