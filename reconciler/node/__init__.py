"""This node's own znodes: registration, `alive`, status and resources (`registration`)."""
