"""coopflow: run an inter-agency cooperation agreement as durable YAML state machines."""

__version__ = "0.1.0"
