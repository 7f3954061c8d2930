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
