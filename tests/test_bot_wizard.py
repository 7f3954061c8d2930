"""The 亲情账号绑定 wizard through POST /bot/messages with the real Redis: the happy path to a submitted application,
the engine's refusals before the summary, and every repair path (取消, 上一步, 修改…, 帮助, invalid answers, three
strikes, a question mid-wizard, a slot kept until a new value validates)."""
import datetime as dt
import io

import pytest

from api.messages import message
from api.models import Application, Binding, Notification
from api.extensions import db
from tests import factories
from tests.bot_helpers import Chat
from tests.lifecycle_helpers import person_headers, run_worker

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def family(clean_app):
    """王建国 (广东 employee, 1970) and his mother 李秀英 (resident, 1945), whom the registry knows as his parent."""
    factories.load_policies()
    me = factories.person("王建国", region_code="440106", birth=dt.date(1970, 3, 1))
    mum = factories.person("李秀英", insurance_type="resident", balance_fen=None, male=False, region_code="440106",
                           birth=dt.date(1945, 5, 5))
    factories.kinship(me, mum, "parent")
    return me, mum


def to_summary(chat: Chat, mum) -> None:
    chat.say("你好")
    chat.tap("family_binding")
    chat.say("妈妈")
    chat.say("李秀英")
    chat.say(mum.id_number)
    chat.tap("skip")
    chat.say("200元")
    assert chat.step == ("family_binding", "summary")


def test_happy_path_ends_in_a_submitted_application_and_its_review(client, family):
    me, mum = family
    chat = Chat(client, me)
    chat.say("你好")
    assert "王**" in chat.text and chat.answer["dialog"] == {**chat.answer["dialog"], "intent": None, "step": None}
    assert list(chat.options.values())[:4] == ["family_binding", "family_unbinding", "application_status",
                                                "usage_query"]
    assert {"办理条件", "所需材料", "使用范围与异地就医", "冒名就医风险", "人工服务"} <= set(chat.options)
    chat.say("1")  # the number of the menu
    assert chat.step == ("family_binding", "relation")
    assert chat.options["父母"] == "parent" and "岳父母" not in chat.options
    chat.say("我妈妈")
    assert chat.step == ("family_binding", "name")
    chat.say("李秀英")
    chat.say(mum.id_number)
    assert chat.step == ("family_binding", "proof")
    assert "符合办理条件" in chat.text and mum.id_number not in chat.text
    assert mum.id_number[:6] + "********" + mum.id_number[-4:] in chat.text
    chat.say("跳过")
    assert chat.step == ("family_binding", "limit")
    chat.say("２００元")  # full-width digits
    assert chat.step == ("family_binding", "summary")
    for line in ("关系：父母", "姓名：李秀英", "每月上限：200 元", "由系统核对"):
        assert line in chat.text
    assert mum.id_number not in chat.text
    assert {"确认提交", "修改关系", "修改姓名", "修改身份证号", "修改限额", "取消"} <= set(chat.options)
    chat.tap("confirm")
    assert chat.step == (None, None)
    app = db.session.query(Application).one()
    assert app.receipt_no in chat.text and "审核结果将通过消息通知您" in chat.text
    assert (app.authorizer_id, app.beneficiary_id, app.relation, app.monthly_limit_fen, app.channel) == \
        (me.id, mum.id, "parent", 20000, "wechat")
    run_worker()  # the same review as an application from the form: the registry confirms, it is approved
    db.session.refresh(app)
    assert app.status == "approved"
    assert db.session.query(Binding).filter_by(authorizer_id=me.id, status="active").count() == 1
    chat.say("审核到哪了")
    assert "审核通过" in chat.text and app.receipt_no in chat.text


def test_proof_uploaded_through_post_materials_goes_with_the_application(client, family):
    me, _ = family
    sister = factories.person("王秀兰", insurance_type="resident", balance_fen=None, male=False,
                              region_code="440106", birth=dt.date(1972, 1, 1))  # not in the kinship registry
    chat = Chat(client, me)
    chat.tap("family_binding")
    chat.say("姐姐")
    chat.say("王秀兰")
    chat.say(sister.id_number)
    assert chat.step == ("family_binding", "proof")
    chat.tap("next")
    assert message("MATERIAL_NOT_FOUND") not in chat.text and "还没有收到" in chat.text  # nothing uploaded yet
    chat.tap("0" * 32)  # not his material
    assert message("MATERIAL_NOT_FOUND") in chat.text
    upload = client.post("/api/v1/materials", headers=person_headers(me), content_type="multipart/form-data",
                         data={"kind": "household_register", "file": (io.BytesIO(PNG), "hk.png")})
    assert upload.status_code == 201, upload.json
    chat.tap(upload.json["id"])
    assert "户口簿" in chat.text and "共 1 份" in chat.text
    chat.tap("next")
    chat.tap("unlimited")
    assert "已上传 1 份" in chat.text and "每月上限：不限" in chat.text
    chat.say("确认提交")
    app = db.session.query(Application).one()
    assert [m.id for m in app.materials] == [upload.json["id"]] and app.monthly_limit_fen is None
    run_worker()
    db.session.refresh(app)
    assert app.status == "manual_review"  # the proof goes to a reviewer


def test_not_eligible_is_told_why_by_the_engine(client, family):
    resident = factories.person("赵大妈", insurance_type="resident", balance_fen=None, male=False)
    chat = Chat(client, resident)
    chat.say("我想给爸妈用")
    assert message("AUTHORIZER_NOT_EMPLOYEE") in chat.text and chat.step == (None, None)
    # 山西: 1,000 元 must stay; 800 元 leaves nothing to share
    shanxi = factories.person("郭师傅", region_code="140105", balance_fen=80000)
    chat = Chat(client, shanxi)
    chat.say("绑定家人")
    assert message("AUTHORIZER_BALANCE_ZERO") in chat.text and chat.step == (None, None)


def test_refusals_come_before_the_summary_with_the_engines_words(client, family):
    me, mum = family
    hunan = factories.person("刘爷爷", insurance_type="resident", balance_fen=None, region_code="430102",
                             birth=dt.date(1940, 1, 1))
    chat = Chat(client, me)
    chat.tap("family_binding")
    chat.say("岳母")  # an in-law is never a 近亲属
    assert message("RELATION_UNKNOWN") in chat.text and "姻亲" in chat.text and chat.step[1] == "relation"
    chat.say("爷爷")
    chat.say("刘爷爷")
    chat.say(me.id_number)
    assert message("SELF_BINDING") in chat.text and chat.step[1] == "id_number"
    young = factories.id_number("440106", dt.date(1995, 1, 1), male=True)
    chat.say(young)  # a grandfather born after his grandson
    assert message("RELATION_AGE_IMPLAUSIBLE") in chat.text and chat.step[1] == "id_number"
    chat.say(hunan.id_number)  # insured in 湖南: 广东 admits beneficiaries of its own province only
    assert message("BENEFICIARY_OUT_OF_AREA") in chat.text and chat.step[1] == "id_number"
    assert "请核对" not in chat.text.split(message("BENEFICIARY_OUT_OF_AREA"))[0]

    # a region that admits 配偶/父母/子女 only (上海 did until 2025; no province since 2024-12, N4)
    factories.set_policy("31", relations=factories.RELATIONS_2021)
    shanghai = factories.person("陈伟", region_code="310104", balance_fen=200000, prior_year_fen=50000)
    chat = Chat(client, shanghai)
    chat.tap("family_binding")
    assert "兄弟姐妹" not in chat.options
    chat.say("哥哥")
    assert message("RELATION_NOT_ALLOWED") in chat.text and chat.step[1] == "relation"


def test_a_duplicate_and_a_wrong_name_are_refused_at_the_check(client, family):
    me, mum = family
    chat = Chat(client, me)
    to_summary(chat, mum)
    chat.tap("confirm")
    chat.tap("family_binding")
    chat.say("妈妈")
    chat.say("李秀")
    chat.say(mum.id_number)
    assert message("BENEFICIARY_NAME_MISMATCH") in chat.text and chat.step[1] == "name"
    chat.say("李秀英")
    assert message("DUPLICATE_APPLICATION") in chat.text and chat.step[1] == "id_number"
    assert db.session.query(Application).count() == 1


def test_cancel_ends_the_wizard_and_drops_the_draft(client, family):
    me, mum = family
    chat = Chat(client, me)
    chat.tap("family_binding")
    chat.say("妈妈")
    chat.say("取消")
    assert "已取消" in chat.text and chat.step == (None, None)
    assert "family_binding" in chat.options.values()  # the menu again
    from api.extensions import redis_client
    assert not [k for k in redis_client().keys("bot:*:draft")]
    assert db.session.query(Application).count() == 0
    chat.say("取消")
    assert "没有正在办理" in chat.text


def test_back_goes_one_step_back_and_keeps_the_answers(client, family):
    me, mum = family
    chat = Chat(client, me)
    chat.tap("family_binding")
    chat.tap("back")
    assert "第一步" in chat.text and chat.step[1] == "relation"
    chat.say("妈妈")
    chat.say("李秀英")
    assert chat.step[1] == "id_number"
    chat.say("上一步")
    assert chat.step[1] == "name" and "回到上一步" in chat.text
    chat.say("上一步")
    assert chat.step[1] == "relation"
    chat.say("父母")
    assert chat.step[1] == "name"
    chat.say("李秀英")
    chat.say(mum.id_number)
    chat.tap("skip")
    chat.tap("unlimited")
    chat.say("上一步")  # from the summary back to the limit
    assert chat.step[1] == "limit"
    chat.say("300")
    assert chat.step[1] == "summary" and "每月上限：300 元" in chat.text


def test_corrections_from_the_summary_reask_only_that_slot_and_recheck(client, family):
    me, mum = family
    chat = Chat(client, me)
    to_summary(chat, mum)
    # 修改限额: only the limit, straight back to the summary
    chat.tap("edit:limit")
    assert chat.step[1] == "limit"
    chat.say("不限")
    assert chat.step[1] == "summary" and "每月上限：不限" in chat.text
    # 修改关系 to 子女: the ID's birth date (1945) no longer fits, so the ID is asked again with the reason
    chat.say("修改关系")
    chat.say("女儿")
    assert message("RELATION_AGE_IMPLAUSIBLE") in chat.text and chat.step[1] == "id_number"
    chat.say("上一步")
    assert chat.step[1] == "relation"
    chat.say("母亲")
    assert chat.step[1] == "summary" and "关系：父母" in chat.text
    # 修改姓名 to a name the registry does not hold for the number: the check sends him back to the name
    chat.tap("edit:name")
    chat.say("李秀")
    assert message("BENEFICIARY_NAME_MISMATCH") in chat.text and chat.step[1] == "name"
    chat.say("李秀英")
    assert chat.step[1] == "summary"
    # 修改身份证号: a wrong checksum is refused and the old number stays until a valid one is given
    chat.tap("edit:id_number")
    bad = mum.id_number[:-1] + ("0" if mum.id_number[-1] != "0" else "1")
    chat.say(bad)
    assert message("INVALID_ID_NUMBER") in chat.text and chat.step[1] == "id_number"
    chat.tap("back")
    assert chat.step[1] == "summary" and f"身份证：{mum.id_number[:6]}********{mum.id_number[-4:]}" in chat.text
    chat.tap("confirm")
    app = db.session.query(Application).one()
    assert (app.relation, app.monthly_limit_fen) == ("parent", None)


def test_help_explains_and_reasks_without_spending_an_attempt(client, family):
    me, mum = family
    chat = Chat(client, me)
    chat.tap("family_binding")
    chat.say("妈妈")
    chat.say("李秀英")
    chat.say("12345")
    assert message("INVALID_ID_NUMBER") in chat.text and "请输入 18 位身份证号码" in chat.text
    chat.say("abc")
    chat.say("帮助")
    assert "印在身份证正面" in chat.text and "请输入李秀英的 18 位身份证号码" in chat.text
    assert "三次" not in chat.text and chat.step[1] == "id_number"
    chat.say(mum.id_number)
    assert chat.step[1] == "proof"


def test_three_invalid_answers_offer_retry_human_or_cancel(client, family):
    me, mum = family
    chat = Chat(client, me)
    chat.tap("family_binding")
    chat.say("妈妈")
    chat.say("李秀英")
    chat.tap("skip_me")  # an option the step does not offer: invalid too
    chat.say("123")
    assert "三次" not in chat.text
    chat.say("456")
    assert "三次" in chat.text and set(chat.options) == {"重试", "人工服务", "取消"}
    chat.say("1")  # 重试
    assert chat.step[1] == "id_number" and "三次" not in chat.text
    for junk in ("a", "b", "c"):
        chat.say(junk)
    assert "三次" in chat.text
    chat.tap("human")
    assert "12393" in chat.text and chat.step[1] == "id_number"
    for junk in ("a", "b", "c"):
        chat.say(junk)
    chat.tap("cancel")
    assert chat.step == (None, None) and "已取消" in chat.text


def test_a_question_mid_wizard_is_answered_and_the_step_asked_again(client, family):
    me, mum = family
    chat = Chat(client, me)
    chat.tap("family_binding")
    chat.say("妈妈")
    chat.say("所需材料？")
    assert "关系证明" in chat.text and "请输入这位家人的姓名" in chat.text and chat.step[1] == "name"
    chat.say("所需材料")  # the title alone is a question too, not a name
    assert chat.step[1] == "name"
    chat.say("冒名就医会怎样")
    assert "码（卡）不能共用" in chat.text and chat.step[1] == "name"
    chat.say("李秀英")
    assert chat.step[1] == "id_number"


def test_limits_are_validated_and_the_slot_kept(client, family):
    me, mum = family
    chat = Chat(client, me)
    to_summary(chat, mum)
    chat.tap("edit:limit")
    for bad, reason in (("两百", "金额格式不对"), ("0", "大于 0"), ("-5", "金额格式不对")):
        chat.say(bad)
        assert reason in chat.text and chat.step[1] == "limit"
        chat.say("帮助")
    chat.say("上一步")
    assert "每月上限：200 元" in chat.text
    chat.tap("edit:limit")
    chat.say("150.5元")
    assert "每月上限：150.50 元" in chat.text
