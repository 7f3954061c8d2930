"""One message being handled: who sent it, what it says, and how its answer is remembered under its msgid."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert

from api.extensions import db
from api.his import envelope as env
from api.models import HisMessage, Institution


@dataclass
class Context:
    institution: Institution
    envelope: dict
    infno: str
    msgid: str
    digest: str          # of infno and input: the same msgid with another input is refused
    refmsg_time: str

    def answer(self, output: dict, warn_msg: str = "") -> dict:
        return env.answer(output, self.refmsg_time, self.institution.region_code, warn_msg)

    def remember(self, answer: dict) -> None:
        """Keeps the answer under the msgid, in the caller's transaction (with what the message changed); a
        concurrent copy of the message that was answered first makes this an IntegrityError at once."""
        db.session.execute(insert(HisMessage.__table__), {
            "institution_id": self.institution.id, "msgid": self.msgid, "infno": self.infno,
            "request_hash": self.digest, "answer": env.to_store(answer)})
