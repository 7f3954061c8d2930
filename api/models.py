"""The schema: typed SQLAlchemy 2 models of the registry, applications, bindings, ledger and outbox."""
import datetime as dt
import secrets
import uuid

from sqlalchemy import (JSON, BigInteger, Boolean, CheckConstraint, Date, DateTime, ForeignKey, Index, Integer,
                        String, Text, TypeDecorator, UniqueConstraint, text)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.extensions import db
from api.timefmt import SHANGHAI


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
    kind: Mapped[str] = mapped_column(String(20))  # registry_load | account_credit | settlement | refund | transfer
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
    created_by_staff: Mapped[StaffUser | None] = relationship()  # the clerk who filed it at the window
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
    status: Mapped[str] = mapped_column(String(10), default="active")  # active | revoked | ended (R14)
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
    # R14: ended by a registry change — AUTHORIZER_INSURANCE_CHANGED | BENEFICIARY_INSURANCE_CHANGED | OUT_OF_AREA
    end_code: Mapped[str | None] = mapped_column(String(40))
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

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


# --- R15: 居民医保 代缴 -----------------------------------------------------------------------------------------

class ResidentContribution(db.Model):
    """居民医保个人缴费: what a resident owes for a year, from the registry (resident_contributions.csv), and
    whether it is paid — through the registry's other channels or through 代缴 here."""
    __tablename__ = "resident_contributions"
    __table_args__ = (UniqueConstraint("person_id", "year"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    year: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(8))  # due | paid
    paid_by: Mapped[str | None] = mapped_column(String(10))  # registry | family (代缴 here)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    person: Mapped[Person] = relationship()


class ContributionPayment(db.Model):
    """代缴记录: an authorizer paid a relative's contribution from his account; one per contribution, ever."""
    __tablename__ = "contribution_payments"
    __table_args__ = (
        Index("ix_contribution_payments_payer", "payer_id", "created_at", "id"),
        Index("ix_contribution_payments_beneficiary", "beneficiary_id", "created_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    contribution_id: Mapped[int] = mapped_column(ForeignKey("resident_contributions.id"), unique=True)
    binding_id: Mapped[str] = mapped_column(ForeignKey("bindings.id"))
    payer_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    beneficiary_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    year: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"))
    channel: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    binding: Mapped[Binding] = relationship()
    payer: Mapped[Person] = relationship(foreign_keys=[payer_id])
    beneficiary: Mapped[Person] = relationship(foreign_keys=[beneficiary_id])


# --- HIS gateway (the national platform's interface, api/his/) ----------------------------------------------

class InstitutionSigningKey(db.Model):
    """接口签名密钥: an institution's API key as the `_api_signature` HMAC needs it — the key itself, not its hash —
    stored encrypted (Fernet, a key derived from SECRET_KEY) and written by the registry import of institutions.csv."""
    __tablename__ = "institution_signing_keys"
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64))  # the api_key_hash it was imported with
    ciphertext: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CatalogueItem(db.Model):
    """医保目录: an item of the medical-insurance catalogue (`med_list_codg`) and its category; an item that is not
    in it is 全自费."""
    __tablename__ = "catalogue_items"
    code: Mapped[str] = mapped_column(String(50), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(12))  # drug | treatment | material | non_medical


class HisVisit(db.Model):
    """就诊 (mdtrt_id): an outpatient visit registered by 2201, with what 2203 uploaded about it."""
    __tablename__ = "his_visits"
    id: Mapped[str] = mapped_column(String(30), primary_key=True)  # mdtrt_id
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    insutype: Mapped[str] = mapped_column(String(6))
    med_type: Mapped[str] = mapped_column(String(6))
    ipt_otp_no: Mapped[str] = mapped_column(String(30))
    mdtrtinfo: Mapped[dict | None] = mapped_column(JSON)  # 2203's mdtrtinfo and diseinfo, as sent
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class HisFeeDetail(db.Model):
    """费用明细 (2204): one line of a visit's bill, in the batch (chrg_bchno) that 2206/2207 settle."""
    __tablename__ = "his_fee_details"
    __table_args__ = (UniqueConstraint("visit_id", "feedetl_sn"),
                      Index("ix_his_fee_details_batch", "visit_id", "chrg_bchno"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    visit_id: Mapped[str] = mapped_column(ForeignKey("his_visits.id"))
    chrg_bchno: Mapped[str] = mapped_column(String(30))
    feedetl_sn: Mapped[str] = mapped_column(String(30))
    med_list_codg: Mapped[str] = mapped_column(String(50))
    medins_list_codg: Mapped[str] = mapped_column(String(150))
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(12))  # the catalogue's, or non_medical when not in it (全自费)
    in_catalogue: Mapped[bool] = mapped_column(Boolean)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    cnt: Mapped[str] = mapped_column(String(24))
    pric: Mapped[str] = mapped_column(String(24))


class HisSettlement(db.Model):
    """医保结算记录 (setl_id): a 2207 settlement or the 2208/2601 reversal of one, with the amounts of the national
    list that our Settlement does not keep (the 起付线 part, the 全自费 part) and the balance after the trade."""
    __tablename__ = "his_settlements"
    __table_args__ = (
        # a batch is settled once at a time (again only after its reversal)
        Index("uq_his_settlements_batch", "visit_id", "chrg_bchno", unique=True,
              sqlite_where=text("kind = 'settle' AND reversed_at IS NULL"),
              postgresql_where=text("kind = 'settle' AND reversed_at IS NULL")),
        Index("ix_his_settlements_patient_year", "patient_id", "year"),
    )
    setl_id: Mapped[str] = mapped_column(String(30), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # settle | reversal
    settlement_id: Mapped[str] = mapped_column(ForeignKey("settlements.id"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    visit_id: Mapped[str] = mapped_column(ForeignKey("his_visits.id"))
    chrg_bchno: Mapped[str] = mapped_column(String(30))
    msgid: Mapped[str] = mapped_column(String(40), index=True)
    year: Mapped[int] = mapped_column(Integer)  # Beijing calendar year: the pooling rule's year
    medfee_fen: Mapped[int] = mapped_column(BigInteger)
    fulamt_ownpay_fen: Mapped[int] = mapped_column(BigInteger)
    deductible_fen: Mapped[int] = mapped_column(BigInteger)
    hifp_fen: Mapped[int] = mapped_column(BigInteger)
    acct_fen: Mapped[int] = mapped_column(BigInteger)
    mulaid_fen: Mapped[int] = mapped_column(BigInteger)
    cash_fen: Mapped[int] = mapped_column(BigInteger)
    balc_fen: Mapped[int] = mapped_column(BigInteger)
    acct_used: Mapped[bool] = mapped_column(Boolean)
    original_setl_id: Mapped[str | None] = mapped_column(String(30))  # a reversal's settlement
    reversed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class HisMessage(db.Model):
    """报文 (msgid): the first answer to an institution's message, replayed for the same msgid and input; a 2207
    voided by 2601 冲正 stays here as voided, so that a late copy of it settles nothing."""
    __tablename__ = "his_messages"
    __table_args__ = (UniqueConstraint("institution_id", "msgid"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    msgid: Mapped[str] = mapped_column(String(40))
    infno: Mapped[str] = mapped_column(String(6))
    request_hash: Mapped[str] = mapped_column(String(64))
    answer: Mapped[dict | None] = mapped_column(JSON)  # None: voided before it arrived
    voided: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
