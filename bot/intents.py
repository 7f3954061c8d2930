"""The intent table, in one place: what each intent is called, its synonyms, and how free text reaches it.

Order is priority: the first intent with a synonym inside the text wins, so "解除家庭共济" is an unbinding and
"绑定要什么材料" a question about materials, not a binding. Global commands (取消/上一步/帮助 …) match only the
whole message, so that "取消绑定" is not a 取消.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class Intent:
    id: str
    title: str
    synonyms: tuple[str, ...]
    question: bool = False  # a question: answered mid-wizard, then the step is asked again
    whole: tuple[str, ...] = ()  # words that name the intent only as the whole message (同意 inside a question not)


INTENTS: tuple[Intent, ...] = (
    Intent("human", "人工服务", ("人工服务", "转人工", "人工", "客服", "打电话")),
    # R13: "同意" / "不同意" typed without the options shown: the pending request is shown again with them
    Intent("consent", "待我确认", ("待我确认", "确认共济", "共济确认"),
           whole=("同意", "不同意", "我同意", "我不同意", "待确认")),
    Intent("family_unbinding", "亲情账号解绑", ("亲情账号解绑", "解绑", "解除", "退出共济", "取消共济", "取消绑定",
                                             "不想给他用", "不给他用了")),
    Intent("application_status", "办理进度查询", ("办理进度", "进度", "审核到哪", "审核结果", "审核通过了吗",
                                               "办好了吗", "办得怎么样", "申请状态", "批下来"), question=True),
    Intent("usage_query", "共济记录查询", ("共济记录", "使用记录", "消费记录", "记录", "用了多少", "花了多少",
                                         "花了多少钱", "明细"), question=True),
    Intent("faq_family_account", "亲情账户和家庭共济的区别", ("亲情账户",), question=True),
    Intent("faq_impersonation", "冒名就医风险", ("冒名", "借卡", "借给", "别人的卡", "用我的卡", "用我的码",
                                              "代刷", "刷我的卡", "刷我的码"), question=True),
    Intent("faq_scope", "使用范围与异地就医", ("使用范围", "异地", "外地", "外省", "跨省", "能买什么", "能用在哪",
                                            "在哪能用", "哪里能用", "药店", "保健品"), question=True),
    Intent("faq_materials", "所需材料", ("所需材料", "材料", "要带什么", "带什么", "需要什么", "证明", "户口本",
                                      "户口簿"), question=True),
    Intent("faq_conditions", "办理条件", ("办理条件", "条件", "谁能办", "能不能办", "可以办吗", "资格", "要求",
                                       "哪些亲属", "什么亲属", "近亲属"), question=True),
    Intent("family_binding", "亲情账号绑定", ("亲情账号绑定", "亲情账号", "绑定", "家庭共济", "共济", "给爸妈用",
                                           "给父母用", "给家人用", "给孩子用", "给老伴用", "添加家人", "加家人",
                                           "开通")),
    Intent("menu", "菜单", ("业务办理", "菜单", "你好", "您好", "在吗", "hello", "hi", "开始", "办业务")),
)
BY_ID = {intent.id: intent for intent in INTENTS}

# The 业务办理 menu of the bot, numbered in this order: GET /services' four, then the questions.
MENU = ("family_binding", "family_unbinding", "application_status", "usage_query",
        "faq_conditions", "faq_materials", "faq_scope", "faq_impersonation", "human")

# Global commands: the whole message (or the option value) is one of these.
COMMANDS: dict[str, tuple[str, ...]] = {
    "cancel": ("取消", "取消办理", "不办了", "算了", "退出", "结束", "cancel"),
    "back": ("上一步", "返回", "返回上一步", "后退", "back"),
    "help": ("帮助", "怎么填", "不会填", "不会", "不懂", "不知道", "什么意思", "说明", "help", "?"),
    "human": ("人工服务", "转人工", "人工", "客服", "human"),
    "menu": ("菜单", "主菜单", "业务办理", "menu"),
}
_COMMAND_OF = {word: command for command, words in COMMANDS.items() for word in words}

_PUNCTUATION = re.compile(r"[\s。，,!！~～…、:：;；\"'“”‘’()（）【】\[\]]+|\.+$")  # a "." inside stays (150.5)
_QUESTION = re.compile(r"[?？]|吗$|呢$|吧$|什么|怎么|怎样|如何|咋|哪些|哪里|哪儿|多少|能不能|可不可以|是不是|为啥|为什么")


def normalize(text: str | None) -> str:
    """Full-width forms folded (ＡＢ１２ → AB12), spaces and punctuation dropped, Latin lower-cased."""
    folded = unicodedata.normalize("NFKC", text or "")
    return _PUNCTUATION.sub("", folded).lower()


def command(word: str) -> str | None:
    """The global command the whole (normalized) message or option value is, if any."""
    return _COMMAND_OF.get(word) or (word if word in COMMANDS else None)


def match(text: str) -> Intent | None:
    """The first intent of the table one of whose synonyms is in the (normalized) text."""
    if not text:
        return None
    if text in BY_ID:
        return BY_ID[text]
    for intent in INTENTS:
        if text == intent.title or text in intent.whole or any(s in text for s in intent.synonyms):
            return intent
    return None


def looks_like_question(raw: str) -> bool:
    return bool(_QUESTION.search(unicodedata.normalize("NFKC", raw or "").strip()))


def question(raw: str, text: str) -> Intent | None:
    """A question asked in the middle of a step: a question intent named exactly ("所需材料"), or one found in a
    message that reads as a question ("要带什么材料？"). A bare word inside an answer (a name) is not one."""
    intent = match(text)
    if intent is None or not intent.question:
        return None
    if text == intent.title or text in intent.synonyms or looks_like_question(raw):
        return intent
    return None
