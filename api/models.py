"""The schema: typed SQLAlchemy 2 models of the registry, applications, bindings, ledger and outbox."""
import datetime as dt
import secrets
import uuid

from sqlalchemy import (JSON, BigInteger, Boolean, CheckConstraint, Date, DateTime, ForeignKey, Index, Integer,
                        String, Text, TypeDecorator, UniqueConstraint, text)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.extensions import db


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator):
    """Stores UTC on every backend (SQLite keeps no offset) and always returns an aware UTC datetime."""
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=dt.timezone.utc)


# --- registry -----------------------------------------------------------------------------------------------

class RegionPolicy(db.Model):
    """地区政策: the 家庭共济 rules of one province (first two digits of a region code)."""
    __tablename__ = "region_policies"
    province_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    data: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Person(db.Model):
    """参保人: an insured person of the registry (职工 employee or 居民 resident)."""
    __tablename__ = "persons"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(50))
    insurance_type: Mapped[str] = mapped_column(String(10))  # employee | resident
    status: Mapped[str] = mapped_column(String(12))  # normal | suspended | terminated
    region_code: Mapped[str] = mapped_column(String(6), index=True)
    card_number: Mapped[str] = mapped_column(String(32), index=True)
    phone: Mapped[str] = mapped_column(String(20))
    settlement_suspended: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    suspension_reason: Mapped[str | None] = mapped_column(String(200))
    suspended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    accounts: Mapped[list["LedgerAccount"]] = relationship(back_populates="person", order_by="LedgerAccount.id")

    @property
    def province_code(self) -> str:
        return self.region_code[:2]


class Institution(db.Model):
    """定点医药机构 (or a non-designated one): a hospital or pharmacy that settles bills."""
    __tablename__ = "institutions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    region_code: Mapped[str] = mapped_column(String(6))
    designated: Mapped[bool] = mapped_column(Boolean)
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the key, never the key


class Kinship(db.Model):
    """亲属关系登记: b is a's `relation` in the simulated population/marriage registry."""
    __tablename__ = "kinship"
    __table_args__ = (UniqueConstraint("id_number_a", "id_number_b"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_number_a: Mapped[str] = mapped_column(String(18), index=True)
    id_number_b: Mapped[str] = mapped_column(String(18), index=True)
    relation: Mapped[str] = mapped_column(String(24))


# --- ledger -------------------------------------------------------------------------------------------------

class LedgerAccount(db.Model):
    """账户: a ledger account. A person's 个人账户 is two of them: the current-year part and the 历年 part."""
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint("kind NOT IN ('personal_current', 'personal_prior') OR balance_fen >= 0",
                        name="personal_not_negative"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # personal_current | personal_prior | registry | institution
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), index=True)
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institutions.id"), index=True)
    balance_fen: Mapped[int] = mapped_column(BigInteger, default=0)

    person: Mapped[Person | None] = relationship(back_populates="accounts")


class LedgerTransaction(db.Model):
    """记账凭证: one movement of money; its postings sum to zero."""
    __tablename__ = "ledger_transactions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # registry_load | settlement | refund | transfer
    reference: Mapped[str | None] = mapped_column(String(64), unique=True)  # makes a movement happen once
    memo: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    postings: Mapped[list["Posting"]] = relationship(back_populates="transaction", order_by="Posting.id")


class Posting(db.Model):
    """分录: one leg of a transaction, in integer 分; positive raises the account's balance."""
    __tablename__ = "postings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    binding_id: Mapped[str | None] = mapped_column(ForeignKey("bindings.id"), index=True)

    transaction: Mapped[LedgerTransaction] = relationship(back_populates="postings")
    account: Mapped[LedgerAccount] = relationship()


# --- people, staff, channels --------------------------------------------------------------------------------

class ChannelAccount(db.Model):
    """渠道账号: a mini-program / app user id (openid) bound to a person by 实名认证."""
    __tablename__ = "channel_accounts"
    __table_args__ = (UniqueConstraint("channel", "openid"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    openid: Mapped[str] = mapped_column(String(128))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    person: Mapped[Person] = relationship()


class StaffUser(db.Model):
    """工作人员: window clerk (窗口经办人), reviewer (审核员) or admin."""
    __tablename__ = "staff_users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list] = mapped_column(JSON)
    # the province whose insured this clerk or reviewer serves; None = national (an operator's deliberate choice)
    region_code: Mapped[str | None] = mapped_column(String(2))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Material(db.Model):
    """申请材料: an uploaded proof (户口簿, 结婚证, 出生医学证明 …), stored outside the web root."""
    __tablename__ = "materials"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), index=True)
    uploaded_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    kind: Mapped[str] = mapped_column(String(32))
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- applications and bindings ------------------------------------------------------------------------------

application_materials = db.Table(
    "application_materials",
    db.Column("application_id", ForeignKey("applications.id"), primary_key=True),
    db.Column("material_id", ForeignKey("materials.id"), primary_key=True),
)


def new_receipt_no() -> str:
    """受理编号 GJ<date><8 hex>: the date the person sees on the receipt, Beijing's (Asia/Shanghai), not UTC's."""
    from api.timefmt import SHANGHAI
    return "GJ" + utcnow().astimezone(SHANGHAI).strftime("%Y%m%d") + secrets.token_hex(4).upper()


class Application(db.Model):
    """共济申请: an authorizer's request to let a relative use his personal account."""
    __tablename__ = "applications"
    __table_args__ = (
        Index("uq_applications_pending_pair", "authorizer_id", "beneficiary_id", unique=True,
              sqlite_where=text("status IN ('awaiting_consent', 'submitted', 'reviewing', 'manual_review')"),
              postgresql_where=text("status IN ('awaiting_consent', 'submitted', 'reviewing', 'manual_review')")),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    receipt_no: Mapped[str] = mapped_column(String(20), unique=True, default=new_receipt_no)
    authorizer_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    beneficiary_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    relation: Mapped[str] = mapped_column(String(24))
    monthly_limit_fen: Mapped[int | None] = mapped_column(BigInteger)
    per_payment_limit_fen: Mapped[int | None] = mapped_column(BigInteger)
    valid_from: Mapped[dt.date | None] = mapped_column(Date)
    valid_until: Mapped[dt.date | None] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(16))
    created_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    # R4 at the window: the identity documents the clerk saw (online, 实名认证 stands for them)
    materials_seen: Mapped[list | None] = mapped_column(JSON)
    # awaiting_consent (R13) | submitted | reviewing | manual_review | approved | rejected | withdrawn | expired
    status: Mapped[str] = mapped_column(String(16), index=True, default="submitted")
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # a reviewing worker's claim
    # while in manual_review: the policy's deadline (审核时限), after which the sweeper expires it
    review_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    # R13, while awaiting_consent: when the beneficiary's silence expires it (the policy's consent_days)
    consent_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    review_attempts: Mapped[int] = mapped_column(Integer, default=0)
    reason_code: Mapped[str | None] = mapped_column(String(40))
    binding_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    authorizer: Mapped[Person] = relationship(foreign_keys=[authorizer_id])
    beneficiary: Mapped[Person] = relationship(foreign_keys=[beneficiary_id])
    materials: Mapped[list[Material]] = relationship(secondary=application_materials)
    events: Mapped[list["ApplicationEvent"]] = relationship(order_by="ApplicationEvent.id",
                                                            back_populates="application")


class ApplicationEvent(db.Model):
    """申请进度: one transition of an application, with time, actor and reason."""
    __tablename__ = "application_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(40))  # applicant | beneficiary | system | staff:<username>
    reason_code: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(String(200))

    application: Mapped[Application] = relationship(back_populates="events")


class Binding(db.Model):
    """共济关系: the authorizer's account may pay the beneficiary's personal burden while active."""
    __tablename__ = "bindings"
    __table_args__ = (
        Index("uq_bindings_active_pair", "authorizer_id", "beneficiary_id", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    authorizer_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    beneficiary_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    relation: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(10), default="active")  # active | revoked
    monthly_limit_fen: Mapped[int | None] = mapped_column(BigInteger)
    per_payment_limit_fen: Mapped[int | None] = mapped_column(BigInteger)
    valid_from: Mapped[dt.date | None] = mapped_column(Date)
    valid_until: Mapped[dt.date | None] = mapped_column(Date)
    priority: Mapped[int | None] = mapped_column(Integer)  # beneficiary's order of use; None = by age
    application_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(40))
    revoke_reason: Mapped[str | None] = mapped_column(String(200))

    authorizer: Mapped[Person] = relationship(foreign_keys=[authorizer_id])
    beneficiary: Mapped[Person] = relationship(foreign_keys=[beneficiary_id])


# --- settlements --------------------------------------------------------------------------------------------

class Settlement(db.Model):
    """结算: one bill settled at an institution; the family account pays part of the personal burden."""
    __tablename__ = "settlements"
    __table_args__ = (UniqueConstraint("institution_id", "idempotency_key"),
                      Index("ix_settlements_institution_created", "institution_id", "created_at", "id"))
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    items: Mapped[list] = mapped_column(JSON)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    eligible_fen: Mapped[int] = mapped_column(BigInteger)
    pooled_fen: Mapped[int] = mapped_column(BigInteger)
    personal_burden_fen: Mapped[int] = mapped_column(BigInteger)
    own_account_fen: Mapped[int] = mapped_column(BigInteger)
    cash_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10), default="settled")  # settled | refunded
    transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    refund_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    refunded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    institution: Mapped[Institution] = relationship()
    patient: Mapped[Person] = relationship()
    family_payments: Mapped[list["FamilyPayment"]] = relationship(
        back_populates="settlement", order_by="FamilyPayment.position")


class FamilyPayment(db.Model):
    """共济使用记录: what one binding paid towards a settlement — the usage record every reader of R12 sees.

    Written in the settlement's transaction beside its ledger postings (which stay the money's truth); kept as rows
    of their own so that usage queries read one indexed table, whatever the size of the ledger.
    """
    __tablename__ = "family_payments"
    __table_args__ = (
        Index("ix_family_payments_authorizer", "authorizer_id", "created_at", "id"),
        Index("ix_family_payments_beneficiary", "beneficiary_id", "created_at", "id"),
        Index("ix_family_payments_binding", "binding_id", "created_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    settlement_id: Mapped[str] = mapped_column(ForeignKey("settlements.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # the order in which the sources paid
    binding_id: Mapped[str] = mapped_column(ForeignKey("bindings.id"))
    authorizer_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    beneficiary_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    refunded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    settlement: Mapped[Settlement] = relationship(back_populates="family_payments")
    binding: Mapped[Binding] = relationship()
    authorizer: Mapped[Person] = relationship(foreign_keys=[authorizer_id])
    beneficiary: Mapped[Person] = relationship(foreign_keys=[beneficiary_id])
    institution: Mapped[Institution] = relationship()


class ImpersonationAttempt(db.Model):
    """冒名就医: a settlement refused because the credential was not the patient's own (R9), recorded against the
    credential's holder; repeated attempts suspend his networked settlement."""
    __tablename__ = "impersonation_attempts"
    __table_args__ = (Index("ix_impersonation_attempts_holder", "holder_id", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))  # None: nobody's credential
    patient_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    credential_kind: Mapped[str] = mapped_column(String(10))  # card | voucher | unknown
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- notifications, audit, idempotency ----------------------------------------------------------------------

class Notification(db.Model):
    """通知: an inbox message and its outbox delivery through the person's channel."""
    __tablename__ = "notifications"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    application_id: Mapped[str | None] = mapped_column(String(32), index=True)
    binding_id: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))  # wechat | alipay | sms
    # pending | sending (handed to the provider, outcome unknown until sent) | sent | failed
    delivery_status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    sending_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # the lease of a `sending` delivery
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Delivery(db.Model):
    """What a channel adapter sent for a notification; unique per notification, so nothing is sent twice."""
    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notification_id: Mapped[str] = mapped_column(ForeignKey("notifications.id"), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict] = mapped_column(JSON)
    sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEvent(db.Model):
    """审计日志: who did what, for staff actions and security events."""
    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict | None] = mapped_column(JSON)


class IdempotencyRecord(db.Model):
    """The first answer to a request sent with an Idempotency-Key, replayed for the same key and body."""
    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("scope", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
