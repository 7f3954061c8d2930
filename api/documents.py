"""Printable documents (PDF) with Chinese text in an embedded font: the usage statement of the window (F9)."""
from __future__ import annotations

import functools
import importlib.resources
import io

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from api import policy
from api.masking import mask_id, mask_name
from api.services.application_notices import STATUS_LABELS
from api.services.people import policy_or_none
from api.timefmt import SHANGHAI

FONT = "WenQuanYiMicroHei"


@functools.cache
def font() -> str:
    """WenQuanYi Micro Hei (TrueType outlines, so reportlab embeds the glyphs used), from a pinned wheel: the PDF
    reads the same on any printer or phone, with no font installed there."""
    path = importlib.resources.files("paperang_p2_fonts_cjk") / "fonts" / "wqy-microhei.ttc"
    pdfmetrics.registerFont(TTFont(FONT, str(path), subfontIndex=0))
    return FONT


def styles() -> dict[str, ParagraphStyle]:
    name = font()
    return {
        "title": ParagraphStyle("title", fontName=name, fontSize=16, leading=22, alignment=1),
        "body": ParagraphStyle("body", fontName=name, fontSize=10, leading=15),
        "small": ParagraphStyle("small", fontName=name, fontSize=8, leading=12, textColor=colors.grey),
    }


def table(rows: list[list[str]], widths: list[float]) -> Table:
    t = Table(rows, colWidths=widths, repeatRows=1)
    t.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), font(), 9),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef7")),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#9aa5b1")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]))
    return t


def render(flowables: list, pagesize=A4, margins_mm: float = 15) -> bytes:
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=pagesize, leftMargin=margins_mm * mm, rightMargin=margins_mm * mm,
                            topMargin=margins_mm * mm, bottomMargin=margins_mm * mm,
                            title="家庭共济", author="职工医保个人账户家庭共济")
    doc.build(flowables)
    return out.getvalue()



def usage_statement(person, records, totals: dict, period_label: str, printed_at: str, printed_by: str) -> bytes:
    """共济使用记录单: every family payment of the person (as authorizer and as beneficiary), masked, with the sums
    per binding and month, as printed at the window."""
    s = styles()
    story = [Paragraph("职工医保个人账户家庭共济使用记录", s["title"]), Spacer(1, 4 * mm),
             Paragraph(f"参保人：{mask_name(person.name)}　身份证号：{mask_id(person.id_number)}", s["body"]),
             Paragraph(f"查询期间：{period_label}　打印时间：{printed_at}　经办：{printed_by}", s["body"]),
             Spacer(1, 4 * mm)]
    rows = [["时间", "就医机构", "使用人", "授权人", "金额（元）", "状态"]]
    labels = {}
    for r in records:
        labels[r.binding_id] = f"{mask_name(r.authorizer.name)} → {mask_name(r.beneficiary.name)}" \
                               f"（{policy.RELATIONS[r.binding.relation]}）"
        rows.append([r.created_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M"), r.institution.name[:16],
                     mask_name(r.beneficiary.name), mask_name(r.authorizer.name), policy.money(r.amount_fen),
                     "已退费" if r.refunded_at else "已支付"])
    if len(rows) == 1:
        rows.append(["—", "本期间没有家庭共济使用记录", "", "", "", ""])
    story.append(table(rows, [30 * mm, 50 * mm, 22 * mm, 22 * mm, 24 * mm, 18 * mm]))
    story += [Spacer(1, 5 * mm), Paragraph("按共济关系和月份合计（不含已退费）", s["body"]), Spacer(1, 2 * mm)]
    sums = [["共济关系（授权人 → 使用人）", "月份", "合计（元）"]]
    sums += [[labels[binding_id], month, policy.money(amount)] for (binding_id, month), amount in sorted(totals.items())]
    if len(sums) == 1:
        sums.append(["—", "—", "0.00"])
    story.append(table(sums, [90 * mm, 30 * mm, 30 * mm]))
    story += [Spacer(1, 6 * mm), Paragraph("说明：身份证号、姓名已作脱敏处理。家庭共济资金只能用于共济人员本人在定点医药机构"
                                           "发生的政策范围内个人负担的医疗费用。", s["small"])]
    return render(story)


def contribution_certificate(payment, printed_at: str) -> bytes:
    """居民医保缴费证明 of a 代缴 (R15): year, amount, both persons masked, the date paid."""
    s = styles()
    paid_at = payment.created_at.astimezone(SHANGHAI)
    rows = [["项目", "内容"],
            ["缴费年度", f"{payment.year} 年度"],
            ["险种", "城乡居民基本医疗保险（个人缴费）"],
            ["参保人（被代缴人）", f"{mask_name(payment.beneficiary.name)}　{mask_id(payment.beneficiary.id_number)}"],
            ["代缴人（授权人）", f"{mask_name(payment.payer.name)}　{mask_id(payment.payer.id_number)}"],
            ["亲属关系", f"参保人是代缴人的{policy.RELATIONS[payment.binding.relation]}"],
            ["缴费金额（元）", policy.money(payment.amount_fen)],
            ["支付方式", "职工医保个人账户家庭共济代缴"],
            ["缴费日期", paid_at.strftime("%Y-%m-%d %H:%M")],
            ["凭证编号", payment.id]]
    story = [Paragraph("城乡居民基本医疗保险缴费证明", s["title"]), Spacer(1, 6 * mm),
             table(rows, [50 * mm, 110 * mm]), Spacer(1, 6 * mm),
             Paragraph(f"打印时间：{printed_at}", s["body"]), Spacer(1, 4 * mm),
             Paragraph("说明：身份证号、姓名已作脱敏处理。本年度居民医保个人缴费已通过家庭共济代缴，请勿通过其他渠道重复缴费。",
                       s["small"])]
    return render(story)


PROGRESS_HELP = ("查询办理进度：微信、支付宝、随申办或国家医保服务平台 APP 搜索「家庭共济」→「申请进度」；"
                 "或拨打 12333；或凭本回执到医保经办窗口查询。审核结果将通过短信或消息通知授权人和共济人员。")


CHANNEL_LABELS = {"window": "医保大厅窗口", "wechat": "微信", "alipay": "支付宝", "suishenban": "随申办",
                  "nhsa_app": "国家医保服务平台 APP", "web": "网上服务大厅"}


def application_receipt(app, clerk, printed_at: str, size: str = "a4", filed_by: str | None = None) -> bytes:
    """回执单 of an application (《医保家庭共济申请表》, usually filed at the window by `filed_by`), printed by `clerk`:
    on A4, or on an 80 mm receipt roll."""
    region = policy_or_none(app.authorizer.region_code)
    office = f"{region.name if region else ''}医疗保障经办服务大厅（窗口）"
    limit = "不限" if app.monthly_limit_fen is None else f"{policy.money(app.monthly_limit_fen)} 元/月"
    per_payment = "不限" if app.per_payment_limit_fen is None else f"{policy.money(app.per_payment_limit_fen)} 元"
    seen = "、".join(policy.MATERIAL_KINDS.get(k, k) for k in (app.materials_seen or [])) or "—"
    proofs = "、".join(policy.MATERIAL_KINDS.get(m.kind, m.kind) for m in app.materials) or "无"
    rows = [
        ("受理编号", app.receipt_no),
        ("受理日期", app.created_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")),
        ("受理机构", office),
        ("受理渠道", CHANNEL_LABELS.get(app.channel, app.channel)),
        ("受理经办人", filed_by or "—"),
        ("打印经办人", clerk.username),
        ("授权人", f"{mask_name(app.authorizer.name)}　{mask_id(app.authorizer.id_number)}"),
        ("共济人员", f"{mask_name(app.beneficiary.name)}　{mask_id(app.beneficiary.id_number)}"),
        ("关系", f"共济人员是授权人的{policy.RELATIONS.get(app.relation, app.relation)}"),
        ("每月限额", limit),
        ("单次限额", per_payment),
        ("有效期至", app.valid_until.isoformat() if app.valid_until else "长期"),
        ("已查验证件", seen),
        ("证明材料", proofs),
        ("办理状态", STATUS_LABELS.get(app.status, app.status)),
    ]
    s = styles()
    narrow = size == "80mm"
    if narrow:
        body = ParagraphStyle("r-body", fontName=font(), fontSize=8, leading=11)
        title = ParagraphStyle("r-title", fontName=font(), fontSize=11, leading=15, alignment=1)
        small = ParagraphStyle("r-small", fontName=font(), fontSize=7, leading=10)
        story = [Paragraph("医保家庭共济申请回执单", title), Spacer(1, 2 * mm)]
        story += [Paragraph(f"{k}：{v}", body) for k, v in rows]
        story += [Spacer(1, 2 * mm), Paragraph(PROGRESS_HELP, small),
                  Paragraph(f"打印时间：{printed_at}　身份证号、姓名已脱敏", small)]
        # a roll has no pages: one page as long as the receipt (measured at the printable width), plus the margins
        frame_padding = 12  # points: the frame's 6 pt on each side
        height = sum(f.wrap(72 * mm - frame_padding, 10 ** 6)[1] for f in story) + 8 * mm + frame_padding + 4 * mm
        return render(story, pagesize=(80 * mm, height), margins_mm=4)
    cell = ParagraphStyle("cell", fontName=font(), fontSize=10, leading=14)
    t = Table([[Paragraph(k, cell), Paragraph(v, cell)] for k, v in rows], colWidths=[35 * mm, 140 * mm])
    t.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#9aa5b1")),
                           ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#e8eef7")),
                           ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
    story = [Paragraph("医保家庭共济申请回执单", s["title"]), Spacer(1, 2 * mm),
             Paragraph("（《医保家庭共济申请表》窗口受理凭证，请妥善保管）", ParagraphStyle(
                 "sub", parent=s["small"], alignment=1)), Spacer(1, 5 * mm), t, Spacer(1, 5 * mm),
             Paragraph(PROGRESS_HELP, s["body"]), Spacer(1, 3 * mm),
             Paragraph(f"打印时间：{printed_at}。身份证号、姓名已作脱敏处理。家庭共济资金只能用于共济人员本人在定点医药机构"
                       "发生的政策范围内个人负担的医疗费用；就医时请出示共济人员本人的医保卡或医保电子凭证。", s["small"])]
    return render(story)
