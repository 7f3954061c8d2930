"""Operator commands (`flask --app api …`), one module per area."""
