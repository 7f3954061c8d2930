"""The bot's zh-CN catalogue: every prompt, re-ask and answer it says, keyed by a stable code.

Refusals are never written here: they are the policy engine's codes, said with `api.messages`. Texts are short
lines for a phone screen; placeholders are filled by `say(code, **values)`.
"""

PROMPTS: dict[str, str] = {
    # menu and small talk
    "MENU": "{greeting}请问要办理什么业务？\n请点选，或直接回复数字。",
    "GREETING": "您好，{name}！",
    "WELCOME": "欢迎关注职工医保个人账户家庭共济服务。\n在这里可以办理亲情账号绑定、解绑，查询办理进度。",
    "NOT_UNDERSTOOD": "抱歉，没有听懂您的意思。",
    "NOTHING_TO_CANCEL": "您现在没有正在办理的业务。",
    "IDLE_HELP": "您可以直接说想办的事，比如“绑定家人”“查进度”“解绑”，\n也可以回复菜单里的数字。",
    "HUMAN": "人工服务：请拨打医保服务热线 12393（部分地区为 12333），\n或到当地医保服务大厅窗口办理。\n工作时间：工作日 9:00–17:00。",
    "NON_TEXT": "暂时只能看懂文字消息，请输入文字，或回复数字选择。",
    "NOT_BOUND": "您的微信还没有绑定医保身份。\n请先打开微信小程序“{app}”，用本人姓名和身份证号完成实名登录，\n然后回到这里发消息即可办理。",
    # expiry and resume
    "RESUME_OFFER": "您上次办理的“{title}”因超过 30 分钟没有操作，已暂停。\n草稿保留 24 小时。要接着办吗？",
    "RESUMED": "好的，接着上次的办理。",
    "DRAFT_GONE": "上次的草稿已超过 24 小时，已失效，请重新办理。",
    "RESTARTED": "好的，已清除上次的草稿。",
    # repair
    "CANCELLED": "好的，已取消本次办理，填写的内容不会提交。",
    "BACK": "好的，回到上一步。",
    "FIRST_STEP": "这已经是第一步了。",
    "STRIKES": "这一步已经三次没有填好。\n您可以：重试，转人工服务，或取消办理。",
    "IN_FLOW_MENU": "您正在办理“{title}”。\n如需办理别的业务，请先回复“取消”。",
    "REASK_PREFIX": "请重新输入：",
    # binding wizard
    "NOT_ELIGIBLE": "您暂时不能为家人办理家庭共济：\n{reason}",
    "ASK_RELATION": "第 1 步：要绑定的家人是您的什么人？\n（本地可办：{relations}）",
    "REASK_RELATION": "请点选或回复关系，比如“父母”“配偶”“子女”。",
    "HELP_RELATION": "家庭共济只能绑定近亲属。\n“父母”指您的父亲或母亲，“子女”指您的儿子或女儿，“配偶”指您的丈夫或妻子。",
    "IN_LAW": "岳父母、公婆、儿媳、女婿等姻亲不属于近亲属。",
    "RELATION_WORD_UNKNOWN": "没有认出这个关系。",
    "ASK_NAME": "第 2 步：请输入这位家人的姓名。\n（与身份证上一致）",
    "REASK_NAME": "请输入家人的姓名，比如“王秀英”。",
    "HELP_NAME": "请填写家人身份证上的姓名，只填姓名，不要带称呼。\n少数民族姓名中间的点可以用“·”。",
    "NAME_INVALID": "姓名应为 2 到 30 个字，只能有汉字、字母和“·”，不能有数字。",
    "ASK_ID_NUMBER": "第 3 步：请输入{name}的 18 位身份证号码。",
    "REASK_ID_NUMBER": "请输入 18 位身份证号码，最后一位可以是 X。",
    "HELP_ID_NUMBER": "身份证号码共 18 位，印在身份证正面下方。\n最后一位是校验码，可能是字母 X。",
    "CHECKING_OK": "已核对：{name}（{id_number}）符合办理条件。",
    "REFUSED": "无法办理：{reason}",
    "REFUSED_FIX": "请修改后再试。",
    "ASK_PROOF_UPLOAD": "第 4 步：亲属关系证明。\n请上传户口簿、结婚证或出生医学证明，上传后把材料编号发给我。",
    "ASK_PROOF_MINI": "第 4 步：亲属关系证明。\n请在小程序“{app}”的“上传材料”页面上传户口簿、结婚证或出生医学证明：\n{page}\n上传好后回复“已上传”。",
    "PROOF_SKIP_HINT": "\n也可以回复“跳过”，由系统核对户籍和婚姻登记信息。",
    "PROOF_RECEIVED": "已收到材料：{kinds}（共 {count} 份）。\n可以继续上传，或回复“下一步”。",
    "PROOF_NONE_YET": "还没有收到您上传的材料。",
    "PROOF_NOT_A_MATERIAL": "这不是一份材料。",
    "PROOF_SKIP_NOT_ALLOWED": "本地区需要上传关系证明材料，不能跳过。",
    "REASK_PROOF": "请上传材料，或回复“下一步”“跳过”。",
    "HELP_PROOF": "关系证明用来证明您和家人的亲属关系：\n户口簿（同一户）、结婚证（配偶）、出生医学证明（子女）都可以。",
    "ASK_LIMIT": "第 5 步：要给这位家人设每月使用上限吗？\n请输入金额（元），比如“200”；不想设就回复“不限”。",
    "REASK_LIMIT": "请输入每月上限金额，比如“200”或“200元”，或回复“不限”。",
    "HELP_LIMIT": "每月上限是这位家人每月最多能用您账户的钱数。\n以后也可以在“我的共济关系”里修改。",
    "LIMIT_INVALID": "金额格式不对。",
    "LIMIT_NOT_POSITIVE": "金额要大于 0 元。",
    "LIMIT_TOO_LARGE": "金额太大了。",
    "SUMMARY": "请核对以下信息：\n关系：{relation}\n姓名：{name}\n身份证：{id_number}\n关系证明：{proof}\n每月上限：{limit}\n没问题请点“确认提交”。",
    "HELP_SUMMARY": "核对无误请点“确认提交”。\n哪一项不对，就点对应的“修改…”，只改那一项。",
    "REASK_SUMMARY": "请点“确认提交”，或选择要修改的项目。",
    "PROOF_REGISTRY": "由系统核对户籍/婚姻登记信息",
    "PROOF_UPLOADED": "已上传 {count} 份",
    "NO_LIMIT": "不限",
    "YUAN": "{amount} 元",
    "SUBMITTED": "申请已提交！\n受理编号：{receipt_no}\n审核结果将通过消息通知您。",
    # unbinding
    "ASK_UNBIND_WHICH": "您有以下有效的共济关系，要解除哪一个？\n{lines}",
    "UNBIND_GRANTED": "您授权给 {relation} {name}（{id_number}）",
    "UNBIND_RECEIVED": "{relation} {name}（{id_number}）授权给您",
    "REASK_UNBIND_WHICH": "请点选要解除的关系，或回复它的序号。",
    "HELP_UNBIND_WHICH": "解除后，对方不能再用这个账户支付；以前的使用记录会保留。",
    "ASK_UNBIND_CONFIRM": "确认解除与【{relation} {name}】的家庭共济关系吗？\n解除后立即生效。",
    "REASK_UNBIND_CONFIRM": "请点“确认解除”，或回复“取消”。",
    "HELP_UNBIND_CONFIRM": "确认后立即解除，记录会保留。以后需要可以重新申请绑定。",
    "UNBOUND": "已解除与【{relation} {name}】的家庭共济关系。双方都会收到通知。",
    # answers
    "STATUS_NONE": "您还没有家庭共济申请。",
    "STATUS_HEAD": "您最近的申请：",
    "STATUS_LINE": "{n}. {who}{relation} {name}：{status}\n   受理编号 {receipt_no}，{date}提交{reason}",
    "STATUS_FOR": "为",
    "STATUS_FROM": "来自",
    "USAGE_NONE": "还没有家庭共济的使用记录。\n家人用您的账户（或您用家人的账户）看病买药后，记录会显示在这里。",
    "USAGE_HEAD": "最近的家庭共济使用记录：",
    "USAGE_LINE_FOR": "{n}. {date} 为{relation} {name}\n   在{place}支付 {amount} 元{refunded}",
    "USAGE_LINE_FROM": "{n}. {date} 用{relation} {name}的账户\n   在{place}支付 {amount} 元{refunded}",
    "USAGE_REFUNDED": "（已退费）",
    "USAGE_MORE": "更多记录请在小程序“共济记录查询”中查看。",
    "USAGE_BINDINGS": "您现在有 {count} 个有效的共济关系。",
    "FAMILY_ACCOUNT": "“亲情账户”只是帮家人亮他自己的医保码、查他自己的费用，花的是家人自己的钱。\n“家庭共济”是把您职工医保个人账户的钱授权给家人看病买药用。\n需要办理家庭共济吗？",
    "CONDITIONS": "{region}家庭共济办理条件：\n1. 授权人：职工医保、正常参保，个人账户有可共济余额。{shareable}{reserve}\n2. 家人：已参加基本医保（职工或居民），参保正常{area}。\n3. 关系：{relations}。{caps}\n{mine}",
    "SHAREABLE_PRIOR": "\n   只有历年账户（以前年度的结余）可以共济，当年划入的钱不能用。",
    "RESERVE": "\n   账户里须留足 {reserve} 元，超出部分才能共济。",
    "AREA_PROVINCE": "，参保地在本省",
    "AREA_POOLING": "，参保地在本统筹区（同一个市）",
    "CAP_BENEFICIARIES": "\n   每人最多绑定 {count} 位家人。",
    "CAP_AUTHORIZERS": "\n   每位家人只能接受一位授权人。",
    "MINE_OK": "您目前符合授权人条件，可以办理。",
    "MINE_NOT": "您目前暂不能办理：{reason}",
    "MATERIALS": "所需材料：\n1. 身份证、医保卡：网上办理时，实名登录已核验，不用另交。\n2. 关系证明：{proof}",
    "MATERIALS_REGISTRY": "系统先核对户籍和婚姻登记信息，核对上了就不用上传；",
    "MATERIALS_UPLOAD": "核对不上时，上传户口簿、结婚证或出生医学证明；",
    "MATERIALS_COMMITMENT": "也可以签署承诺书；",
    "MATERIALS_WINDOW": "\n到窗口办理请带双方的{documents}。",
    "SCOPE": "使用范围：\n共济的钱只能付家人在定点医院、定点药店看病买药的个人负担部分，\n不能买保健品、化妆品、生活用品。\n使用地区：{scope}。{cross}",
    "SCOPE_CROSS_NO": "\n跨省异地就医暂时不能用共济的钱。",
    "SCOPE_CROSS_YES": "\n跨省异地就医也可以使用。",
    "IMPERSONATION": "冒名就医风险：\n钱可以共济，码（卡）不能共用。\n家人看病买药，要出示他本人的医保卡或医保电子凭证。\n用别人的卡或码属于冒名就医，会被暂停医保联网结算 3 到 12 个月，\n骗取医保基金的还要退回并处 2 到 5 倍罚款，严重的追究刑事责任。",
    "REGION_UNKNOWN": "暂时查不到您所在地区的家庭共济政策。",
    # R13: the beneficiary's own consent (the service decides; these only say it)
    "CONSENT_ASK": "【{relation} {name}】申请将其职工医保个人账户与您家庭共济（受理编号 {receipt_no}）。\n"
                   "按本地规定需要您本人确认，请在 {until} 前回复。\n您同意吗？{more}",
    "CONSENT_MORE": "\n（另有 {count} 项待您确认，确认这一项后再显示。）",
    "CONSENT_NONE": "您没有待确认的家庭共济申请。",
    "CONSENT_AGREED": "好的，您已同意。申请已进入审核，结果会另行通知您和对方。",
    "CONSENT_DECLINED": "好的，您已拒绝，这项申请已结束。对方会收到通知。",
    "CONSENT_NOT_TAKEN": "没能办理：{reason}",
    "CONSENT_WAITING": "您有 {count} 项家庭共济申请待您本人确认，请点选“待我确认”。\n",
}

OPTION_LABELS: dict[str, str] = {
    "confirm": "确认提交", "cancel": "取消", "back": "上一步", "help": "帮助", "human": "人工服务",
    "retry": "重试", "resume": "继续上次办理", "restart": "重新开始", "skip": "跳过", "next": "下一步",
    "uploaded": "已上传", "unlimited": "不限", "confirm_unbind": "确认解除", "menu": "菜单",
    "edit:relation": "修改关系", "edit:name": "修改姓名", "edit:id_number": "修改身份证号", "edit:proof": "修改材料",
    "edit:limit": "修改限额", "consent": "待我确认",
}


def say(code: str, **values) -> str:
    return PROMPTS[code].format(**values)


def label(value: str) -> str:
    return OPTION_LABELS[value]
