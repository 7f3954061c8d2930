"""The policy engine: rules R1–R10 of SPEC.md as region data plus small pure functions.

Everything here works on plain values (facts), never on the database, so the API, the bot and the workers
ask the same questions and get the same answers. A refusal is a stable code from `api.messages`.
"""
from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field, replace
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
PENDING_APPLICATION = ("submitted", "reviewing", "manual_review")
DEFAULT_MANUAL_REVIEW_DAYS = 5  # 审核时限 where a policy does not set manual_review_days


class PolicyError(ValueError):
    """A policy file that does not describe a valid policy."""


@dataclass(frozen=True)
class Policy:
    """One province's 家庭共济 rules (a file `policies/<province>.toml` of the registry)."""
    province_code: str
    name: str
    app_name: str
    relations: frozenset[str]
    shareable: str = "all"                  # all | prior_year (历年账户 only, as 浙江/上海)
    reserve_fen: int = 0                    # what must stay in the account (山西: 100000)
    beneficiary_area: str = "national"      # where the beneficiary must be insured: pooling | province | national
    use_scope: str = "province"             # where the funds may be used: pooling | province | national (跨省)
    max_spouses: int | None = 1
    one_father_one_mother: bool = True
    max_beneficiaries: int | None = None    # per authorizer (泰安: 8)
    max_authorizers: int | None = None      # per beneficiary (浙江 once: 1)
    proof: frozenset[str] = frozenset({"registry", "materials"})  # registry | materials | commitment
    review: str = "auto"                    # auto: registry-confirmed relations pass without a reviewer | manual
    required_materials: tuple[str, ...] = ("id_card", "insurance_card")
    manual_review_days: int = DEFAULT_MANUAL_REVIEW_DAYS
    multi_authorizer_settlement: bool = True  # may one settlement draw on several authorizers?
    # --- R14 automatic end and R15 居民医保 代缴 (see the block "R14–R15" below) ---
    end_on_pause: bool = True               # does a paused (暂停) authorizer end his bindings? 西安: false
    contributions: bool = False             # may the authorizer pay a relative's 居民医保 contribution (代缴)?
    # 普通门诊统筹 (HIS gateway, api/his/): see OutpatientPooling below; absent = the funds pay nothing
    outpatient_pooling: "OutpatientPooling" = field(default_factory=lambda: OutpatientPooling())

    @classmethod
    def from_dict(cls, data: dict) -> "Policy":
        if not isinstance(data, dict):
            raise PolicyError("a policy must be a table of fields")
        try:
            policy = cls(
                province_code=str(data["province_code"]), name=data["name"], app_name=data.get("app_name", ""),
                relations=frozenset(_strings(data["relations"], "relations")),
                shareable=data.get("shareable", "all"), reserve_fen=data.get("reserve_fen", 0),
                beneficiary_area=data.get("beneficiary_area", "national"),
                use_scope=data.get("use_scope", "province"),
                max_spouses=data.get("max_spouses", 1), one_father_one_mother=data.get("one_father_one_mother", True),
                max_beneficiaries=data.get("max_beneficiaries"), max_authorizers=data.get("max_authorizers"),
                proof=frozenset(_strings(data.get("proof", ["registry", "materials"]), "proof")),
                review=data.get("review", "auto"),
                required_materials=_strings(data.get("required_materials", ["id_card", "insurance_card"]),
                                            "required_materials"),
                manual_review_days=data.get("manual_review_days", DEFAULT_MANUAL_REVIEW_DAYS),
                multi_authorizer_settlement=data.get("multi_authorizer_settlement", True),
                end_on_pause=data.get("end_on_pause", True), contributions=data.get("contributions", False),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PolicyError(f"missing or bad field: {exc}") from None
        if "outpatient_pooling" in data:  # the HIS gateway's pooling rule, parsed by its own block below
            policy = replace(policy, outpatient_pooling=OutpatientPooling.from_dict(data["outpatient_pooling"]))
        policy.validate()
        return policy

    def validate(self) -> None:
        problems = []
        if len(self.province_code) != 2 or not self.province_code.isdigit():
            problems.append("province_code must be two digits")
        if not isinstance(self.name, str) or not self.name:
            problems.append("name must be a non-empty string")
        if not self.relations or not self.relations <= RELATIONS.keys():
            problems.append(f"relations must be a non-empty subset of {sorted(RELATIONS)}")
        if self.shareable not in ("all", "prior_year"):
            problems.append("shareable must be all or prior_year")
        # money is integer fen: a float or a bool here is a mistake in the file, not something to round
        if not _is_int(self.reserve_fen) or self.reserve_fen < 0:
            problems.append("reserve_fen must be an integer >= 0 (fen)")
        if self.beneficiary_area not in AREAS or self.use_scope not in AREAS:
            problems.append(f"beneficiary_area and use_scope must be one of {AREAS}")
        for name in ("max_spouses", "max_beneficiaries", "max_authorizers"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                problems.append(f"{name} must be absent or an integer >= 1")
        for name in ("one_father_one_mother", "multi_authorizer_settlement", "end_on_pause", "contributions"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false")
        if not self.proof or not self.proof <= {"registry", "materials", "commitment"}:
            problems.append("proof must be a subset of registry, materials, commitment")
        if self.review not in ("auto", "manual"):
            problems.append("review must be auto or manual")
        if not set(self.required_materials) <= MATERIAL_KINDS.keys():
            problems.append("required_materials has an unknown kind")
        if not _is_int(self.manual_review_days) or self.manual_review_days < 1:
            problems.append("manual_review_days must be an integer >= 1")
        if problems:
            raise PolicyError("; ".join(problems))

    def to_public(self) -> dict:
        """What GET /policy shows a person."""
        return {
            "province_code": self.province_code, "name": self.name, "app_name": self.app_name,
            "relations": [{"value": r, "label": RELATIONS[r]} for r in RELATIONS if r in self.relations],
            "shareable": self.shareable, "reserve_fen": self.reserve_fen,
            "beneficiary_area": self.beneficiary_area, "use_scope": self.use_scope,
            "use_scope_label": AREA_NAMES[self.use_scope],
            "max_beneficiaries": self.max_beneficiaries, "max_authorizers": self.max_authorizers,
            "required_materials": [{"value": k, "label": MATERIAL_KINDS[k]} for k in self.required_materials],
            "proof": sorted(self.proof), "review_mode": self.review, "manual_review_days": self.manual_review_days,
            "multi_authorizer_settlement": self.multi_authorizer_settlement,
            "end_on_pause": self.end_on_pause, "contributions": self.contributions,
        }


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _strings(value, name: str) -> tuple[str, ...]:
    # a bare string would otherwise become a collection of its characters
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{name} must be a list of strings")
    return tuple(value)


def load_policy_file(path: Path) -> Policy:
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    if data.get("province_code") != path.stem:
        raise PolicyError(f"province_code {data.get('province_code')!r} does not match the file name")
    return Policy.from_dict(data)


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
        if policy.review == "auto":
            return ReviewOutcome("approved")
        return ReviewOutcome("manual_review", "MANUAL_REVIEW_REQUIRED")
    has_proof = ("materials" in policy.proof and bool(material_kinds & PROOF_KINDS)) or \
                ("commitment" in policy.proof and "commitment_letter" in material_kinds)
    if has_proof:
        return ReviewOutcome("manual_review", "PROOF_UNDER_REVIEW")
    return ReviewOutcome("rejected", "KINSHIP_NOT_CONFIRMED")


def review_deadline(policy: Policy | None, entered_manual_review_at: dt.datetime) -> dt.datetime:
    """审核时限: the policy's days from entering manual review (the default where the region has no policy)."""
    days = policy.manual_review_days if policy else DEFAULT_MANUAL_REVIEW_DAYS
    return entered_manual_review_at + dt.timedelta(days=days)


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
