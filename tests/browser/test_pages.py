"""The pages in a real browser (Chromium), offline: a person binds a relative on `/`, a reviewer approves it on
`/staff`, the person reads the approval; the chat panel completes a binding with its buttons; a clerk files a window
application and downloads the 回执单; the 医保电子凭证 is a QR code a scanner reads; `/api/docs` renders with the
network cut off. Each page is saved as a screenshot under test-artifacts/screenshots/."""
import csv
import io
import re

import pytest
from PIL import Image
from pypdf import PdfReader

from api import settings
from tests.browser.conftest import shot
from tests.lifecycle_helpers import run_worker

PNG = settings.ROOT / "tests" / "browser" / "sample-proof.png"  # a 户口簿 page, drawn
FULL_ID = re.compile(r"(?<![0-9])[1-9][0-9]{16}[0-9Xx](?![0-9])")


def demo(line: int) -> dict:
    """The demo person on that line of fixtures/demo/persons.csv (line 1 is the header)."""
    with (settings.ROOT / "fixtures" / "demo" / "persons.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))[line - 2]


def work(app) -> None:
    """The review and notification workers, once through their queues."""
    with app.app_context():
        run_worker()


def settle(app, patient: dict, amount_fen: int) -> None:
    """A designated pharmacy of the demo (P44010601) settles the patient's bill, shown with his own card."""
    with app.app_context():
        answer = app.test_client().post("/api/v1/institution/settlements", headers={
            "X-Institution-Key": "demo-key-p44010601", "Idempotency-Key": f"browser-{amount_fen}"}, json={
            "patient_id_number": patient["id_number"], "credential": patient["card_number"], "pooled_fen": 0,
            "items": [{"code": "XA01", "name": "阿莫西林胶囊", "category": "drug", "amount_fen": amount_fen}]})
        assert answer.status_code == 201 and answer.json["family"], answer.json


def login_person(page, line: int, channel: str = "wechat") -> None:
    page.goto(page.base + "/")
    page.click(f"[data-channel={channel}]")
    page.click(f"button.person[data-line='{line}']")
    page.wait_for_selector("[data-service=family_binding]")


def login_staff(page, username: str) -> None:
    page.goto(page.base + "/staff")
    page.fill("#username", username)
    page.fill("#password", "password-1")
    page.click("#login")
    page.wait_for_selector("#tabs button")


def no_problems(page) -> None:
    assert page.blocked == [], f"requests to other hosts: {page.blocked}"
    assert page.problems == [], page.problems


def fits_the_phone(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"], "sideways scrolling"


def test_a_person_binds_a_relative_a_reviewer_approves_and_the_person_reads_the_approval(app, page):
    wu, zheng = demo(10), demo(11)  # 吴海燕 and 郑小龙: the registry does not know them, so a reviewer decides
    page.goto(page.base + "/")
    page.wait_for_selector("button.person")
    fits_the_phone(page)
    shot(page, "01-sim-login")
    login_person(page, 10, "alipay")
    assert "支付宝" in page.inner_text("#channel-strip")
    fits_the_phone(page)
    shot(page, "02-sim-home")
    page.click("[data-service=family_binding]")
    page.select_option("#relation", "child")
    page.fill("#beneficiary-name", zheng["name"])
    page.fill("#beneficiary-id", zheng["id_number"])
    page.set_input_files("#material-file", str(PNG))
    page.wait_for_selector("text=户口簿：已上传")
    page.fill("#monthly-limit", "300")
    fits_the_phone(page)
    shot(page, "03-sim-bind-form")
    page.click("#submit-application")
    receipt_no = page.inner_text("#receipt-no")
    assert receipt_no.startswith("GJ")
    work(app)
    page.click("button:has-text('刷新')")
    page.wait_for_selector("[data-status=manual_review]")
    shot(page, "03b-sim-application-timeline")

    staff = page.new_tab({"width": 1280, "height": 900})
    login_staff(staff, "reviewer1")
    card = staff.wait_for_selector("[data-review]")
    assert receipt_no in card.inner_text() and zheng["id_number"] not in card.inner_text()
    staff.click("[data-material]")
    staff.wait_for_selector("img.proof")
    assert staff.evaluate("document.querySelector('img.proof').naturalWidth") > 0
    shot(staff, "04-staff-review-queue")
    staff.click("[data-decision=approve]")
    staff.wait_for_selector(f"text={receipt_no}：审核通过")
    work(app)

    page.goto(page.base + "/")
    page.wait_for_selector("[data-service=family_binding]")
    page.click("#tabs [data-go=inbox]")
    page.wait_for_selector("[data-notification=application_approved]")
    assert "审核通过" in page.inner_text("#view")
    shot(page, "05-sim-inbox-approved")
    settle(app, zheng, 8000)  # 郑小龙 buys 80 元 of medicine at a designated pharmacy: the family account pays
    page.click("#tabs [data-go=bindings]")
    page.wait_for_selector("[data-binding] .chart svg")
    assert page.locator("[data-binding] .chart svg rect[height]:not([height=\"0\"])").count() == 1  # this month
    assert "本月已用 80.00 元" in page.inner_text("[data-binding]")
    assert "剩余 220.00 元" in page.inner_text("[data-binding]")
    fits_the_phone(page)
    shot(page, "06-sim-bindings-chart")
    no_problems(page)
    no_problems(staff)


def test_the_chat_panel_completes_a_binding_with_its_buttons(app, page):
    wife = demo(3)
    login_person(page, 2)
    page.click("#tabs [data-go=chat]")
    page.click(".options button[data-value=family_binding]")
    page.click(".options button[data-value=spouse]:not([disabled])")
    for text in (wife["name"], wife["id_number"]):
        page.fill("#chat-input", text)
        page.press("#chat-input", "Enter")
        page.wait_for_selector(".options button:not([disabled])")  # the bot has answered
    page.click(".options button[data-value=skip]:not([disabled])")
    page.click(".options button[data-value=unlimited]:not([disabled])")
    page.wait_for_selector(".options button[data-value=confirm]:not([disabled])")
    fits_the_phone(page)
    shot(page, "07-sim-chat-summary", full_page=False)  # what the person sees: the end of the conversation
    page.click(".options button[data-value=confirm]:not([disabled])")
    page.wait_for_selector("text=受理编号")
    assert wife["id_number"] not in page.inner_text("#chat-log")
    work(app)
    page.fill("#chat-input", "审核到哪了")
    page.press("#chat-input", "Enter")
    page.wait_for_selector(".msg.bot >> text=审核通过")
    fits_the_phone(page)
    shot(page, "08-sim-chat-approved", full_page=False)
    no_problems(page)


def test_a_clerk_files_a_window_application_and_prints_the_receipt(app, page):
    huang, sister = demo(8), demo(9)
    page.set_viewport_size({"width": 1280, "height": 900})
    login_staff(page, "clerk1")
    page.click("#tabs [data-tab=window]")
    page.fill("#authorizer-name", huang["name"])
    page.fill("#authorizer-id", huang["id_number"])
    page.fill("#beneficiary-name", sister["name"])
    page.fill("#beneficiary-id", sister["id_number"])
    page.select_option("#relation", "sibling")
    page.check("[data-seen=id_card]")
    page.check("[data-seen=insurance_card]")
    page.fill("#monthly-limit", "500")
    page.click("#window-submit")
    receipt_no = page.inner_text("#window-receipt-no")
    shot(page, "09-staff-window-filed")
    for button, width_mm in (("#receipt-a4", 210), ("#receipt-80mm", 80)):
        with page.expect_download() as download:
            page.click(button)
        pdf = PdfReader(download.value.path())
        text = "".join(p.extract_text() for p in pdf.pages)
        assert receipt_no in text and "回执单" in text
        assert not FULL_ID.search(text), "an unmasked ID number on the receipt"
        assert huang["id_number"][:6] + "********" + huang["id_number"][-4:] in text
        assert round(float(pdf.pages[0].mediabox.width) / 72 * 25.4) == width_mm

    page.click("#tabs [data-tab=usage]")
    page.fill("#usage-id", huang["id_number"])
    page.click("#usage-show")
    page.wait_for_selector("text=该期间没有家庭共济使用记录")
    with page.expect_download() as download:
        page.click("#usage-print")
    assert open(download.value.path(), "rb").read(5) == b"%PDF-"

    admin = page.new_tab({"width": 1280, "height": 900})
    login_staff(admin, "admin1")
    admin.click("#tabs [data-tab=audit]")
    admin.wait_for_selector("tr[data-action=window_application]")
    for action in ("staff_login", "window_application", "receipt_printed", "usage_statement_printed"):
        assert admin.query_selector(f"tr[data-action={action}]"), action
    assert not FULL_ID.search(admin.inner_text("#view"))
    shot(admin, "10-staff-audit")
    no_problems(page)
    no_problems(admin)


def test_a_reviewer_sets_and_lifts_a_settlement_suspension_in_the_console(app, page):
    li = demo(2)
    page.set_viewport_size({"width": 1280, "height": 900})
    login_staff(page, "reviewer1")
    page.click("#tabs [data-tab=suspension]")
    page.fill("#suspension-id", li["id_number"])
    page.fill("#suspension-reason", "多次冒用他人医保卡，经核实")
    page.click("button:has-text('暂停联网结算')")
    page.wait_for_selector("text=联网结算已暂停")
    page.fill("#suspension-reason", "已接受教育并承诺不再冒用")
    page.click("#suspension-lift")
    page.wait_for_selector("text=联网结算已恢复")
    assert li["id_number"] not in page.inner_text("#view")
    shot(page, "14-staff-suspension-lifted")
    no_problems(page)


def test_the_voucher_is_a_qr_code_a_scanner_reads(app, page):
    import zxingcpp

    from api.auth import read_voucher
    login_person(page, 2)
    page.click("#tabs [data-go=voucher]")
    qr = page.wait_for_selector("#voucher-qr svg")
    code = page.get_attribute("#voucher-qr", "data-code")
    shot(page, "11-sim-voucher")
    image = Image.open(io.BytesIO(qr.screenshot()))
    (found,) = zxingcpp.read_barcodes(image)
    assert found.format == zxingcpp.BarcodeFormat.QRCode and found.text == code
    with app.app_context():
        assert read_voucher(code) is not None  # a real, signed voucher of this person
    no_problems(page)


def test_the_care_mode_makes_the_text_larger(page):
    login_person(page, 5)  # 陈桂兰, born 1945
    before = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    page.click("#care")
    after = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    assert after >= before * 1.25
    fits_the_phone(page)
    shot(page, "12-sim-care-mode")
    no_problems(page)


def test_the_api_docs_render_their_operations_offline(page):
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(page.base + "/api/docs")
    page.wait_for_selector(".opblock")
    assert page.locator(".opblock").count() >= 25
    assert page.locator(".opblock-summary-path:has-text('/api/v1/staff/applications')").count() >= 1
    shot(page, "13-api-docs", full_page=False)
    no_problems(page)

