"""The policy engine: rules R1–R10 of SPEC.md as region data plus small pure functions.

Everything here works on plain values (facts), never on the database, so the API, the bot and the workers
ask the same questions and get the same answers. A refusal is a stable code from `api.messages`.
"""
from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

# R3: 近亲属 since 2024-12; b is a's <relation>, and what a is to b.
RELATIONS = {
    "spouse": "配偶", "parent": "父母", "child": "子女", "sibling": "兄弟姐妹",
    "grandparent": "祖父母", "maternal_grandparent": "外祖父母",
    "grandchild": "孙子女", "maternal_grandchild": "外孙子女",
}
INVERSE = {
    "spouse": "spouse", "parent": "child", "child": "parent", "sibling": "sibling",
    "grandparent": "grandchild", "grandchild": "grandparent",
    "maternal_grandparent": "maternal_grandchild", "maternal_grandchild": "maternal_grandparent",
}
MATERIAL_KINDS = {
    "household_register": "户口簿", "marriage_certificate": "结婚证", "birth_certificate": "出生医学证明",
    "id_card": "身份证", "insurance_card": "医保卡", "commitment_letter": "承诺书", "other": "其他材料",
}
PROOF_KINDS = {"household_register", "marriage_certificate", "birth_certificate", "other"}
# R8: categories the family account may pay for, and by which kind of institution.
MEDICAL_CATEGORIES = {"drug", "treatment", "material"}
ITEM_CATEGORIES = MEDICAL_CATEGORIES | {"non_medical"}
AREAS = ("pooling", "province", "national")
AREA_NAMES = {"pooling": "本统筹区", "province": "本省", "national": "全国（跨省）"}
PENDING_APPLICATION = ("awaiting_consent", "submitted", "reviewing", "manual_review")
DEFAULT_MANUAL_REVIEW_DAYS = 5  # 审核时限 where a policy does not set manual_review_days


class PolicyError(ValueError):
    """A policy file that does not describe a valid policy."""


REVIEW_MODES = {
    "auto": "自动审核（登记可核实的直接通过，其余人工审核）",
    "manual": "人工审核",
    "none": "承诺制（登记可核实或签署承诺书即生效，无需审核）",
}
DEFAULT_CONSENT_DAYS = 7  # R13: days a beneficiary has to answer where a policy does not set consent_days


@dataclass(frozen=True)
class Policy:
    """One province's 家庭共济 rules (a file `policies/<province>.toml` of the registry).

    The file format is this dataclass: every field is a key of the file, a key that is not a field is refused, and
    each field has its check in `FIELD_CHECKS` (a field without one is a programming error, see `_check_table`).
    Fields are grouped in blocks by the rule they serve; add a block for a new rule rather than mixing into one.
    """
    # --- identity and channel -------------------------------------------------------------------------------
    province_code: str
    name: str
    relations: frozenset[str]
    app_name: str = ""                      # the channel people use (粤医保, 随申办 …)
    channel_path: str = ""                  # where in the channel (服务大厅→…→家庭共济), for the coverage checker
    # --- R1 what may be shared, R2/R7 where ----------------------------------------------------------------
    shareable: str = "all"                  # all | prior_year (历年账户 only, as 浙江/上海)
    reserve_fen: int = 0                    # what must stay in the account (山西: 100000)
    beneficiary_area: str = "national"      # where the beneficiary must be insured: pooling | province | national
    use_scope: str = "province"             # where the funds may be used: pooling | province | national (跨省)
    # --- R3/R5 caps ----------------------------------------------------------------------------------------
    max_spouses: int | None = 1
    one_father_one_mother: bool = True
    max_beneficiaries: int | None = None    # per authorizer (泰安: 8)
    max_authorizers: int | None = None      # per beneficiary (浙江 once: 1)
    # --- R4/R11 proof and review ---------------------------------------------------------------------------
    proof: frozenset[str] = frozenset({"registry", "materials"})  # registry | materials | commitment
    review: str = "auto"                    # auto | manual | none (承诺制: no reviewer), see REVIEW_MODES
    required_materials: tuple[str, ...] = ("id_card", "insurance_card")
    manual_review_days: int = DEFAULT_MANUAL_REVIEW_DAYS
    # --- R10 settlement and the authorizer's controls ------------------------------------------------------
    multi_authorizer_settlement: bool = True  # may one settlement draw on several authorizers?
    validity_window: bool = False           # the channel asks for 授权起止日期 (江苏, 贵州); shown, never required
    per_payment_limit: bool = False         # the channel offers a 单次最高支付额度 per member (山西); shown
    # --- R13 the beneficiary's own consent -----------------------------------------------------------------
    consent_age: int | None = None          # beneficiaries this old or older consent themselves (甘肃/海南/新疆: 16)
    consent_days: int = DEFAULT_CONSENT_DAYS  # how long the application waits for that answer
    # --- R14 automatic end and R15 居民医保 代缴 (see the block "R14–R15" below) ---
    end_on_pause: bool = True               # does a paused (暂停) authorizer end his bindings? 西安: false
    contributions: bool = False             # may the authorizer pay a relative's 居民医保 contribution (代缴)?
    # 普通门诊统筹 (HIS gateway, api/his/): see OutpatientPooling below; absent = the funds pay nothing
    outpatient_pooling: "OutpatientPooling" = field(default_factory=lambda: OutpatientPooling())

    @classmethod
    def from_dict(cls, data: dict) -> "Policy":
        """The policy a file's table describes; PolicyError naming each field that is unknown, missing or bad."""
        if not isinstance(data, dict):
            raise PolicyError("a policy must be a table of fields")
        problems = [f"{name}: unknown field" for name in sorted(set(data) - KNOWN_FIELDS)]
        problems += [f"{name}: missing" for name in sorted(REQUIRED_FIELDS - set(data))]
        values = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            try:
                if str(f.type).startswith("frozenset"):
                    value = frozenset(_strings(value, f.name))
                elif str(f.type).startswith("tuple"):
                    value = _strings(value, f.name)
            except (PolicyError, TypeError):
                problems.append(f"{f.name}: must be a list of strings")
                continue
            values[f.name] = value
        if "province_code" in values and _is_int(values["province_code"]):
            values["province_code"] = str(values["province_code"])
        if "outpatient_pooling" in values:  # a table of its own, parsed by its block below
            try:
                values["outpatient_pooling"] = OutpatientPooling.from_dict(values["outpatient_pooling"])
            except PolicyError as exc:
                problems.append(str(exc))
        if problems:
            raise PolicyError("; ".join(problems))
        policy = cls(**values)
        policy.validate()
        return policy

    def validate(self) -> None:
        """Each field's own check (FIELD_CHECKS), then the checks across fields; every problem named by field."""
        problems = []
        for f in fields(self):
            problem = FIELD_CHECKS[f.name](getattr(self, f.name))
            if problem:
                problems.append(f"{f.name}: {problem}")
        if problems:
            raise PolicyError("; ".join(problems))

    def to_public(self) -> dict:
        """What GET /policy and GET /policies show a person (the coverage checker)."""
        return {
            "province_code": self.province_code, "name": self.name, "app_name": self.app_name,
            "channel_path": self.channel_path,
            "relations": [{"value": r, "label": RELATIONS[r]} for r in RELATIONS if r in self.relations],
            "shareable": self.shareable, "reserve_fen": self.reserve_fen,
            "beneficiary_area": self.beneficiary_area, "use_scope": self.use_scope,
            "use_scope_label": AREA_NAMES[self.use_scope],
            "max_spouses": self.max_spouses, "one_father_one_mother": self.one_father_one_mother,
            "max_beneficiaries": self.max_beneficiaries, "max_authorizers": self.max_authorizers,
            "required_materials": [{"value": k, "label": MATERIAL_KINDS[k]} for k in self.required_materials],
            "proof": sorted(self.proof), "review_mode": self.review, "review_label": REVIEW_MODES[self.review],
            "manual_review_days": self.manual_review_days,
            "multi_authorizer_settlement": self.multi_authorizer_settlement,
            "validity_window": self.validity_window, "per_payment_limit": self.per_payment_limit,
            "consent_age": self.consent_age, "consent_days": self.consent_days if self.consent_age else None,
            "end_on_pause": self.end_on_pause, "contributions": self.contributions,
        }


def _one_of(values):
    return lambda v: None if isinstance(v, str) and v in values else f"must be one of {sorted(values)}"


def _text(required: bool):
    return lambda v: None if isinstance(v, str) and (v or not required) else \
        ("must be a non-empty string" if required else "must be a string")


def _flag(v) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _count(minimum: int, optional: bool):
    def check(v):
        if v is None and optional:
            return None
        if _is_int(v) and v >= minimum:
            return None
        return ("absent or " if optional else "") + f"an integer >= {minimum}"
    return lambda v: None if check(v) is None else "must be " + check(v)


def _subset(allowed, non_empty: bool = True):
    def check(v):
        if (non_empty and not v) or not set(v) <= set(allowed):
            return ("a non-empty " if non_empty else "a ") + f"subset of {sorted(allowed)}"
        return None
    return lambda v: None if check(v) is None else "must be " + check(v)


def _province_code(v) -> str | None:
    return None if isinstance(v, str) and len(v) == 2 and v.isdigit() else "must be two digits"


# One check per field, by name: a value a check does not know is refused with the field named. A block added to
# Policy adds its checks here (tests/test_provinces.py holds every field to having one).
FIELD_CHECKS = {
    "province_code": _province_code, "name": _text(True), "app_name": _text(False), "channel_path": _text(False),
    "relations": _subset(RELATIONS),
    "shareable": _one_of({"all", "prior_year"}),
    # money is integer fen: a float or a bool here is a mistake in the file, not something to round
    "reserve_fen": lambda v: None if _is_int(v) and v >= 0 else "must be an integer >= 0 (fen)",
    "beneficiary_area": _one_of(set(AREAS)), "use_scope": _one_of(set(AREAS)),
    "max_spouses": _count(1, True), "one_father_one_mother": _flag,
    "max_beneficiaries": _count(1, True), "max_authorizers": _count(1, True),
    "proof": _subset({"registry", "materials", "commitment"}),
    "review": _one_of(set(REVIEW_MODES)),
    "required_materials": _subset(MATERIAL_KINDS, non_empty=False),
    "manual_review_days": _count(1, False),
    "multi_authorizer_settlement": _flag, "validity_window": _flag, "per_payment_limit": _flag,
    "consent_age": _count(1, True), "consent_days": _count(1, False),
    "end_on_pause": _flag, "contributions": _flag,
    "outpatient_pooling": lambda v: None if isinstance(v, OutpatientPooling) else "must be a table",
}
KNOWN_FIELDS = frozenset(f.name for f in fields(Policy))
REQUIRED_FIELDS = frozenset(f.name for f in fields(Policy) if f.default is MISSING and f.default_factory is MISSING)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _strings(value, name: str) -> tuple[str, ...]:
    # a bare string would otherwise become a collection of its characters
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{name} must be a list of strings")
    return tuple(value)


def load_policy_file(path: Path) -> Policy:
    """The policy of a file, or PolicyError naming the file and each bad field ("62.toml: consent_age: …")."""
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    if data.get("province_code") != path.stem:
        raise PolicyError(f"{path.name}: province_code {data.get('province_code')!r} does not match the file name")
    try:
        return Policy.from_dict(data)
    except PolicyError as exc:
        raise PolicyError(f"{path.name}: {exc}") from None


# --- facts ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PersonFacts:
    """What the rules need to know about a person, read from the registry."""
    id_number: str
    insurance_type: str          # employee | resident
    status: str                  # normal | suspended | terminated
    region_code: str
    balance_fen: int = 0         # current + prior-year parts
    prior_year_fen: int = 0
    has_account: bool = False
    settlement_suspended: bool = False

    @property
    def male(self) -> bool:
        return int(self.id_number[16]) % 2 == 1


@dataclass(frozen=True)
class ExistingLink:
    """An active binding or an application in progress of one person, seen from his side: `relation` is what the
    counterpart is to him (his spouse, his parent …), `role` the part he plays in it (authorizer gives, beneficiary
    receives)."""
    relation: str
    counterpart: PersonFacts
    role: str = "authorizer"


def same_area(area: str, region_a: str, region_b: str) -> bool:
    if area == "national":
        return True
    if area == "province":
        return region_a[:2] == region_b[:2]
    return region_a[:4] == region_b[:4]  # 统筹区: the prefecture-level city


# --- R1–R5: who may bind whom ---------------------------------------------------------------------------------

def shareable_balance(policy: Policy, person: PersonFacts) -> int:
    """R1: what of the authorizer's balance relatives may use, after the reserve."""
    base = person.prior_year_fen if policy.shareable == "prior_year" else person.balance_fen
    return max(0, min(base, person.balance_fen - policy.reserve_fen))


def authorizer_refusal(policy: Policy, authorizer: PersonFacts) -> str | None:
    """R1: an employee, insured normally, whose account is usable and has a shareable balance."""
    if authorizer.insurance_type != "employee":
        return "AUTHORIZER_NOT_EMPLOYEE"
    if authorizer.status != "normal":
        return "AUTHORIZER_NOT_NORMAL"
    if not authorizer.has_account:
        return "AUTHORIZER_NO_ACCOUNT"
    if shareable_balance(policy, authorizer) <= 0:
        return "AUTHORIZER_BALANCE_ZERO"
    return None


def beneficiary_refusal(policy: Policy, authorizer: PersonFacts, beneficiary: PersonFacts | None) -> str | None:
    """R2: insured in basic medical insurance, normal, not the authorizer, in an admitted area."""
    if beneficiary is None or beneficiary.insurance_type not in ("employee", "resident"):
        return "BENEFICIARY_NOT_INSURED"
    if beneficiary.id_number == authorizer.id_number:
        return "SELF_BINDING"
    if beneficiary.status != "normal":
        return "BENEFICIARY_NOT_NORMAL"
    if not same_area(policy.beneficiary_area, authorizer.region_code, beneficiary.region_code):
        return "BENEFICIARY_OUT_OF_AREA"
    return None


def relation_choice_refusal(policy: Policy, relation: str) -> str | None:
    """R3, the relation alone: a 近亲属 relation this region admits (in-laws and typos are never one)."""
    if relation not in RELATIONS:
        return "RELATION_UNKNOWN"
    if relation not in policy.relations:
        return "RELATION_NOT_ALLOWED"
    return None


# Plausible age gaps in whole years (beneficiary's birth minus the authorizer's) for a relation named by its
# claimant: a parent is born at least 12 years before his child, a grandparent 24; a spouse is an adult.
_AGE_GAPS = {"parent": (None, -12), "grandparent": (None, -24), "maternal_grandparent": (None, -24),
             "child": (12, None), "grandchild": (24, None), "maternal_grandchild": (24, None)}
ADULT_AGE = 18


def beneficiary_number_refusal(relation: str, authorizer_birth: dt.date, beneficiary_birth: dt.date,
                               same_person: bool, today: dt.date) -> str | None:
    """R2/R3 from the ID numbers alone, before the registry is read: not the authorizer himself, and a birth date
    that can be true of the relation (a "parent" younger than his child is a typing error)."""
    if same_person:
        return "SELF_BINDING"
    if relation == "spouse":
        age = today.year - beneficiary_birth.year - ((today.month, today.day) < (beneficiary_birth.month,
                                                                                 beneficiary_birth.day))
        return None if age >= ADULT_AGE else "RELATION_AGE_IMPLAUSIBLE"
    low, high = _AGE_GAPS.get(relation, (None, None))
    gap = _years_between(authorizer_birth, beneficiary_birth)
    if (low is not None and gap < low) or (high is not None and gap > high):
        return "RELATION_AGE_IMPLAUSIBLE"
    return None


def _years_between(earlier: dt.date, later: dt.date) -> int:
    """Whole years from `earlier` to `later` (negative when `later` is before)."""
    if later < earlier:
        return -_years_between(later, earlier)
    return later.year - earlier.year - ((later.month, later.day) < (earlier.month, earlier.day))


def relation_refusal(policy: Policy, relation: str, authorizer: PersonFacts, beneficiary: PersonFacts,
                     authorizer_links: list[ExistingLink], beneficiary_links: list[ExistingLink],
                     beneficiary_policy: Policy | None = None) -> str | None:
    """R3 and R5: the relation is admitted here, the caps hold, and no duplicate exists.

    Each person's links are all his active bindings and applications in progress, as authorizer or beneficiary,
    seen from his side. The family caps count both people in both directions: nobody gets a second spouse, or a
    second father or mother, whoever of the two applies. The cap on authorizers per beneficiary is the stricter of
    the two regions' (浙江 limits its insured to one authorizer even when the authorizer's region does not).
    """
    if code := relation_choice_refusal(policy, relation):
        return code
    giving = [link for link in authorizer_links if link.role == "authorizer"]
    receiving = [link for link in beneficiary_links if link.role == "beneficiary"]
    if any(link.counterpart.id_number == beneficiary.id_number for link in giving):
        return "DUPLICATE_BINDING"
    if relation == "spouse" and policy.max_spouses is not None:
        if len(_others(authorizer_links, "spouse", beneficiary)) >= policy.max_spouses or \
                len(_others(beneficiary_links, "spouse", authorizer)) >= policy.max_spouses:
            return "SPOUSE_LIMIT"
    if relation in ("parent", "child") and policy.one_father_one_mother:
        # the child of the two already has a parent of the other one's sex: a second father or mother
        child_links, parent = (authorizer_links, beneficiary) if relation == "parent" else (beneficiary_links, authorizer)
        if any(link.relation == "parent" and link.counterpart.male == parent.male
               for link in child_links if link.counterpart.id_number != parent.id_number):
            return "PARENT_LIMIT"
    if policy.max_beneficiaries is not None and len(giving) >= policy.max_beneficiaries:
        return "BENEFICIARY_LIMIT"
    caps = [p.max_authorizers for p in (policy, beneficiary_policy) if p is not None and p.max_authorizers]
    if caps and len(receiving) >= min(caps):
        return "AUTHORIZER_LIMIT"
    return None


def _others(links: list[ExistingLink], relation: str, partner: PersonFacts) -> set[str]:
    """The people other than `partner` who are the owner's `relation` in his links."""
    return {link.counterpart.id_number for link in links
            if link.relation == relation and link.counterpart.id_number != partner.id_number}


def application_refusal(policy: Policy, authorizer: PersonFacts, beneficiary: PersonFacts | None, relation: str,
                        authorizer_links: list[ExistingLink], beneficiary_links: list[ExistingLink],
                        beneficiary_policy: Policy | None = None) -> str | None:
    """R1–R3 and R5 in the order a person would want to hear them; None when the application may go on."""
    return (authorizer_refusal(policy, authorizer)
            or beneficiary_refusal(policy, authorizer, beneficiary)
            or relation_refusal(policy, relation, authorizer, beneficiary, authorizer_links, beneficiary_links,
                                beneficiary_policy))


ONLINE_CHANNELS = ("wechat", "alipay", "suishenban", "nhsa_app", "web")


def identity_documents_missing(policy: Policy, channel: str, seen: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """R4, the identity part: the policy's `required_materials` (身份证, 医保卡 of both persons).

    Online, the login's 实名认证 has checked the applicant's identity and the registry holds both people's cards, so
    nothing more is asked; at the window (`window`), the clerk records each document he has seen, and what he has
    not seen is missing.
    """
    if channel in ONLINE_CHANNELS:
        return []
    return [kind for kind in policy.required_materials if kind not in seen]


def kinship_matches(relation: str, records: list[tuple[str, str, str]], a: str, b: str) -> bool:
    """R4: does the registry say b is a's `relation`? records are (id_a, id_b, relation) rows touching a and b."""
    if relation not in INVERSE:
        return False  # an in-law or a typo is never a confirmed 近亲属
    for rec_a, rec_b, rec_rel in records:
        if (rec_a, rec_b, rec_rel) == (a, b, relation) or (rec_a, rec_b, rec_rel) == (b, a, INVERSE[relation]):
            return True
    return False


@dataclass(frozen=True)
class ReviewOutcome:
    status: str                 # approved | manual_review | rejected
    code: str | None = None     # the reason when not approved


def review_outcome(policy: Policy, kinship_confirmed: bool, material_kinds: set[str]) -> ReviewOutcome:
    """R4 and R11: approve what the registry confirms, send proof to a reviewer, reject what has neither."""
    if kinship_confirmed and "registry" in policy.proof:
        if policy.review in ("auto", "none"):
            return ReviewOutcome("approved")
        return ReviewOutcome("manual_review", "MANUAL_REVIEW_REQUIRED")
    committed = "commitment" in policy.proof and "commitment_letter" in material_kinds
    if committed and policy.review == "none":  # 承诺制 (山东, 陕西): the signed 承诺书 is the proof, no reviewer
        return ReviewOutcome("approved")
    has_proof = ("materials" in policy.proof and bool(material_kinds & PROOF_KINDS)) or committed
    if has_proof:
        return ReviewOutcome("manual_review", "PROOF_UNDER_REVIEW")
    return ReviewOutcome("rejected", "KINSHIP_NOT_CONFIRMED")


def review_deadline(policy: Policy | None, entered_manual_review_at: dt.datetime) -> dt.datetime:
    """审核时限: the policy's days from entering manual review (the default where the region has no policy)."""
    days = policy.manual_review_days if policy else DEFAULT_MANUAL_REVIEW_DAYS
    return entered_manual_review_at + dt.timedelta(days=days)


# --- R13: the beneficiary's own consent -------------------------------------------------------------------------

def age_on(birth: dt.date, today: dt.date) -> int:
    """Whole years of age on `today` (a birthday counts on its day)."""
    return _years_between(birth, today)


def consent_rule(*policies: Policy | None) -> tuple[int, int] | None:
    """(consent_age, consent_days) where any of the policies (the authorizer's, the beneficiary's) asks for the
    beneficiary's own consent: the youngest such age, and the days of the policy that sets it; None otherwise."""
    asking = [p for p in policies if p is not None and p.consent_age is not None]
    if not asking:
        return None
    strictest = min(asking, key=lambda p: p.consent_age)
    return strictest.consent_age, strictest.consent_days


def consent_needed(beneficiary_birth: dt.date, today: dt.date, *policies: Policy | None) -> int | None:
    """R13: the days the beneficiary has to answer when he must consent himself (old enough where a policy
    asks), None when he skips the step (too young, or no policy asks)."""
    rule = consent_rule(*policies)
    if rule is None or age_on(beneficiary_birth, today) < rule[0]:
        return None
    return rule[1]


# --- R7–R10: settlement ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FamilySource:
    """An active binding the patient may draw on, with what it can give now."""
    binding_id: str
    authorizer: PersonFacts
    policy: Policy                 # the authorizer's region policy governs his account
    created_at: dt.datetime
    priority: int | None = None
    monthly_limit_fen: int | None = None
    used_this_month_fen: int = 0
    per_payment_limit_fen: int | None = None
    valid_until: dt.date | None = None
    valid_from: dt.date | None = None
    beneficiary: PersonFacts | None = None  # R14: the patient, so that a changed beneficiary stops the binding too


def in_effect(valid_from: dt.date | None, valid_until: dt.date | None, today: dt.date) -> bool:
    """R10 validity window (江苏: 授权起止日期): both dates count, and a missing one sets no bound."""
    return (valid_from is None or valid_from <= today) and (valid_until is None or today <= valid_until)


def validity_window_refusal(valid_from: dt.date | None, valid_until: dt.date | None) -> str | None:
    """A window that ends before it begins is no window."""
    if valid_from is not None and valid_until is not None and valid_from > valid_until:
        return "VALID_FROM_AFTER_UNTIL"
    return None


def validity_note(valid_from: dt.date | None, valid_until: dt.date | None, today: dt.date) -> str | None:
    """What a person reads of a binding outside its window, with the dates."""
    if valid_from is not None and today < valid_from:
        return f"尚未生效：自 {valid_from:%Y年%m月%d日} 起可用"
    if valid_until is not None and today > valid_until:
        return f"已过授权期限：{valid_until:%Y年%m月%d日} 前可用"
    return None


def settlement_refusal(patient: PersonFacts, credential_is_patients: bool, institution_designated: bool) -> str | None:
    """R8 (designated only) and R9 (own credential, not suspended) before any money moves."""
    if not institution_designated:
        return "NOT_DESIGNATED"
    if not credential_is_patients:
        return "IMPERSONATION"
    if patient.settlement_suspended:
        return "SETTLEMENT_SUSPENDED"
    if patient.status != "normal":
        return "PATIENT_NOT_NORMAL"
    return None


def eligible_fen(items: list[dict]) -> int:
    """R8: only medical items (drugs, care, devices/consumables) may be paid from an account."""
    return sum(item["amount_fen"] for item in items if item["category"] in MEDICAL_CATEGORIES)


def family_source_available(source: FamilySource, institution_region: str, today: dt.date) -> int:
    """R1 still true of the authorizer (R14: and of the beneficiary, when known), R7 and R10 limits: what this
    binding may pay now. A binding whose people no longer qualify pays nothing, even before the sweep ends it."""
    if source.beneficiary is not None:
        if binding_end_code(source.policy, source.authorizer, source.beneficiary):
            return 0
    elif source.authorizer.insurance_type != "employee" or source.authorizer.status not in \
            (("normal",) if source.policy.end_on_pause else ("normal", "suspended")):
        return 0
    if not in_effect(source.valid_from, source.valid_until, today):
        return 0
    if not same_area(source.policy.use_scope, source.authorizer.region_code, institution_region):
        return 0
    available = shareable_balance(source.policy, source.authorizer)
    if source.monthly_limit_fen is not None:
        available = min(available, max(0, source.monthly_limit_fen - source.used_this_month_fen))
    if source.per_payment_limit_fen is not None:
        available = min(available, source.per_payment_limit_fen)
    return max(0, available)


def order_family_sources(sources: list[FamilySource]) -> list[FamilySource]:
    """R10: the beneficiary's chosen order, then the oldest binding first."""
    return sorted(sources, key=lambda s: (s.priority is None, s.priority or 0, s.created_at, s.binding_id))


@dataclass
class PaymentPlan:
    own_account_fen: int = 0
    family: list[tuple[str, int]] = field(default_factory=list)  # (binding_id, amount_fen)
    cash_fen: int = 0


def plan_payment(personal_burden_fen: int, eligible_burden_fen: int, own_available_fen: int,
                 sources: list[FamilySource], institution_region: str, today: dt.date,
                 patient_policy: Policy | None = None) -> PaymentPlan:
    """R10: own account first, then family accounts in order, then cash.

    `eligible_burden_fen` is the part of the personal burden that accounts may pay (R8); the rest is cash.
    Whether one settlement may use several authorizers is the patient's region policy.
    """
    if personal_burden_fen < 0:
        raise ValueError("personal_burden_fen must be >= 0")
    plan = PaymentPlan()
    payable = max(0, min(personal_burden_fen, eligible_burden_fen))
    plan.own_account_fen = min(payable, max(0, own_available_fen))
    remaining = payable - plan.own_account_fen
    multi = patient_policy.multi_authorizer_settlement if patient_policy else True
    for source in order_family_sources(sources):
        if remaining <= 0:
            break
        amount = min(remaining, family_source_available(source, institution_region, today))
        if amount <= 0:
            continue
        plan.family.append((source.binding_id, amount))
        remaining -= amount
        if not multi:
            break
    plan.cash_fen = personal_burden_fen - plan.own_account_fen - sum(a for _, a in plan.family)
    return plan


def split_debit(amount_fen: int, current_fen: int, prior_fen: int, family_policy: Policy | None = None) -> tuple[int, int]:
    """Which part of an account pays `amount_fen`: (from 当年, from 历年).

    For the patient himself (`family_policy` None): the current year first, then the prior years (先当年后历年).
    For a relative (the authorizer's `family_policy`): the prior years first — where only 历年 may be shared
    (上海, 浙江) nothing else — then the current year.
    """
    if family_policy is None:
        from_current = min(amount_fen, current_fen)
        return from_current, amount_fen - from_current
    if family_policy.shareable == "prior_year":
        return 0, amount_fen
    from_prior = min(amount_fen, prior_fen)
    return amount_fen - from_prior, from_prior


# --- R14–R15: automatic end, 居民医保 代缴 -------------------------------------------------------------------------

END_CODES = ("AUTHORIZER_INSURANCE_CHANGED", "BENEFICIARY_INSURANCE_CHANGED", "OUT_OF_AREA")


def binding_end_code(policy: Policy | None, authorizer: PersonFacts, beneficiary: PersonFacts) -> str | None:
    """R14: why an active binding no longer qualifies (its end code), or None while it does.

    `policy` is the authorizer's region policy (None: his region has left the scheme, which is OUT_OF_AREA).
    The authorizer must still be an employee insured normally — or paused, where the policy keeps a paused
    authorizer's bindings (`end_on_pause = false`, 西安); the beneficiary insured (职工 or 居民) and normal; and the
    beneficiary still within the policy's `beneficiary_area` of the authorizer. Balances play no part: an empty
    account pays nothing but ends nothing.
    """
    still_insured = ("normal", "suspended") if policy is not None and not policy.end_on_pause else ("normal",)
    if authorizer.insurance_type != "employee" or authorizer.status not in still_insured:
        return "AUTHORIZER_INSURANCE_CHANGED"
    if beneficiary.insurance_type not in ("employee", "resident") or beneficiary.status != "normal":
        return "BENEFICIARY_INSURANCE_CHANGED"
    if policy is None or not same_area(policy.beneficiary_area, authorizer.region_code, beneficiary.region_code):
        return "OUT_OF_AREA"
    return None


CONTRIBUTION_STATUSES = ("due", "paid")


def contribution_refusal(policy: Policy, authorizer: PersonFacts, beneficiary: PersonFacts,
                         due_fen: int | None, status: str | None) -> str | None:
    """R15: may the authorizer pay the beneficiary's 居民医保 individual contribution of a year (代缴) now?

    `due_fen` / `status` are the registry's row for that person and year (None: the registry has none). The
    whole amount or nothing: an account that cannot pay all of it pays none of it.
    """
    if not policy.contributions:
        return "CONTRIBUTIONS_NOT_OFFERED"
    if beneficiary.insurance_type != "resident":
        return "BENEFICIARY_NOT_RESIDENT"
    if status is None or due_fen is None or due_fen <= 0:
        return "NOTHING_DUE"
    if status == "paid":
        return "ALREADY_PAID"
    if shareable_balance(policy, authorizer) < due_fen:
        return "BALANCE_SHORT"
    return None


def money(fen: int) -> str:
    """86.50: fen as 元 with two decimals, for people to read (never for arithmetic)."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


# --- 普通门诊统筹: the funds' part of an outpatient bill (the HIS gateway's hifp_pay) ------------------------------

@dataclass(frozen=True)
class OutpatientPooling:
    """A region's outpatient pooling rule (门诊统筹), the `[outpatient_pooling]` table of its policy file.

    Every amount is per calendar year: the 起付线 the insured pays himself first, the share of the rest the fund
    pays, and the most the fund pays in a year. Nothing set is 0, so a region without the table pays nothing.
    Only the HIS gateway applies it; the native POST /institution/settlements takes pooled_fen from the institution.
    """
    deductible_fen: int = 0        # 起付线 (年度)
    ratio_percent: int = 0         # 支付比例, 0–100
    annual_cap_fen: int = 0        # 年度最高支付限额

    @classmethod
    def from_dict(cls, data) -> "OutpatientPooling":
        if not isinstance(data, dict) or set(data) - {"deductible_fen", "ratio_percent", "annual_cap_fen"}:
            raise PolicyError("outpatient_pooling must be a table of deductible_fen, ratio_percent, annual_cap_fen")
        rule = cls(**data)
        for name in ("deductible_fen", "ratio_percent", "annual_cap_fen"):
            value = getattr(rule, name)
            if not _is_int(value) or value < 0:
                raise PolicyError(f"outpatient_pooling.{name} must be an integer >= 0")
        if rule.ratio_percent > 100:
            raise PolicyError("outpatient_pooling.ratio_percent must be at most 100")
        return rule


@dataclass(frozen=True)
class PooledPart:
    deductible_fen: int   # what of this bill went to the year's 起付线 (act_pay_dedc)
    pooled_fen: int       # what the fund pays (hifp_pay)


def outpatient_pooled(rule: OutpatientPooling, eligible_fen: int, deductible_used_fen: int,
                      pooled_this_year_fen: int) -> PooledPart:
    """The fund's part of `eligible_fen` (the bill's 政策范围内 amount) given what the year has seen so far: the
    rest of the 起付线 first, then `ratio_percent` of what is above it (fen rounded half up), within the year's cap."""
    if eligible_fen < 0:
        raise ValueError("eligible_fen must be >= 0")
    deductible = min(eligible_fen, max(0, rule.deductible_fen - deductible_used_fen))
    above = eligible_fen - deductible
    share = (above * rule.ratio_percent * 2 + 100) // 200  # half up, in integers
    pooled = max(0, min(share, rule.annual_cap_fen - pooled_this_year_fen))
    return PooledPart(deductible_fen=deductible, pooled_fen=pooled)
