"""Property: whatever a person sends, in whatever order (texts, numbers, options real or made up), the bot never
raises, never answers with an empty reply, and always leaves a stored dialog that loads."""
import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.extensions import redis_client
from bot.dialog import Dialog
from tests import factories
from tests.bot_helpers import URL
from tests.lifecycle_helpers import person_headers

WORDS = ["你好", "1", "2", "3", "9", "妈妈", "配偶", "岳母", "李秀英", "取消", "上一步", "帮助", "跳过", "下一步",
         "已上传", "200元", "不限", "确认提交", "修改关系", "修改身份证号", "重试", "人工服务", "继续上次办理", "重新开始",
         "所需材料？", "解绑", "进度", "记录", "亲情账户", "菜单", "", "   ", "１２", "0", "-1", "150.5"]
OPTIONS = ["family_binding", "family_unbinding", "application_status", "usage_query", "faq_conditions", "human",
           "parent", "spouse", "in_law", "skip", "next", "uploaded", "unlimited", "confirm", "cancel", "back", "help",
           "retry", "resume", "restart", "edit:relation", "edit:name", "edit:id_number", "edit:proof", "edit:limit",
           "edit:nothing", "confirm_unbind", "menu", "0" * 32, "1", "7"]

message = st.one_of(
    st.builds(lambda t: {"text": t}, st.sampled_from(WORDS)),
    st.builds(lambda t: {"text": t}, st.text(max_size=40)),
    st.builds(lambda o: {"option": o}, st.sampled_from(OPTIONS)),
    st.builds(lambda o: {"option": o}, st.text(min_size=0, max_size=20)),
    st.just({"text": "__MUM_ID__"}),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(message, min_size=1, max_size=14))
def test_any_sequence_is_answered_and_leaves_a_loadable_state(client, sequence):
    from api.extensions import db
    from api.models import Person
    if db.session.query(Person).count() == 0:
        factories.load_policies()
        me = factories.person("王建国", region_code="440106", birth=dt.date(1970, 3, 1))
        mum = factories.person("李秀英", insurance_type="resident", balance_fen=None, male=False,
                               region_code="440106", birth=dt.date(1945, 5, 5))
        factories.kinship(me, mum, "parent")
    me, mum = db.session.query(Person).order_by(Person.id).all()[:2]
    headers = person_headers(me)
    for key in redis_client().keys(f"bot:*:{me.id}:*"):
        redis_client().delete(key)
    for body in sequence:
        if body.get("text") == "__MUM_ID__":
            body = {"text": mum.id_number}
        r = client.post(URL, json=body, headers=headers)
        assert r.status_code == 200, (body, r.get_data(as_text=True))
        assert r.json["replies"] and all(reply["text"].strip() for reply in r.json["replies"])
        assert mum.id_number not in r.get_data(as_text=True)
        [key] = redis_client().keys(f"bot:*:{me.id}:dialog")
        stored = Dialog.loads(redis_client().get(key))
        assert (stored.intent, stored.step) == (r.json["dialog"]["intent"], r.json["dialog"]["step"])
