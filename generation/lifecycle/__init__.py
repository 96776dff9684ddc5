"""The process's life: its runtime, start-up loads, shutdown, load state and catalog events."""
