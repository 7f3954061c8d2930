"""The audit trail of staff actions and security events."""
from api.extensions import db
from api.masking import mask_text
from api.models import AuditEvent


def record(actor: str, action: str, target: str | None = None, detail: dict | None = None) -> None:
    """Adds an audit event to the caller's transaction (free text is masked like a log line)."""
    if detail:
        detail = {k: mask_text(v) if isinstance(v, str) else v for k, v in detail.items()}
    db.session.add(AuditEvent(actor=actor, action=action, target=target, detail=detail))
