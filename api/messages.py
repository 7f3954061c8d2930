"""The zh-CN message catalogue: every user-facing refusal and error, keyed by a stable code."""

MESSAGES: dict[str, str] = {
    # generic HTTP
    "INVALID_INPUT": "提交的信息格式不正确，请检查后重试",
    "MALFORMED_JSON": "请求内容不是有效的 JSON",
    "UNAUTHORIZED": "请先登录",
    "TOKEN_EXPIRED": "登录已过期，请重新登录",
    "FORBIDDEN": "您没有权限进行此操作",
    "NOT_FOUND": "未找到相关记录",
    "METHOD_NOT_ALLOWED": "不支持该请求方式",
    "CONFLICT": "当前状态不允许此操作",
    "PAYLOAD_TOO_LARGE": "提交的内容过大：上传的文件不能超过 5MB",
    "UNSUPPORTED_MEDIA_TYPE": "文件格式不支持，请上传 JPG、PNG 或 PDF 文件",
    "RATE_LIMITED": "操作过于频繁，请稍后再试",
    "INTERNAL_ERROR": "系统繁忙，请稍后再试",
    "SERVICE_UNAVAILABLE": "系统繁忙，请稍后再试",
    "IDEMPOTENCY_KEY_REUSED": "同一请求编号已用于不同的内容，请勿重复提交",
    # identity and login
    "INVALID_ID_NUMBER": "身份证号码不正确，请核对后重新输入",
    "INVALID_CREDENTIALS": "用户名或密码错误",
    "REALNAME_REQUIRED": "首次登录需要实名认证，请填写姓名和身份证号码",
    "REALNAME_MISMATCH": "姓名与身份证号码不匹配，或未查询到您的参保信息",
    "PERSON_NOT_FOUND": "未查询到该人员的参保信息",
    "CARD_MISMATCH": "身份证号码与医保卡号不匹配",
    "CHANNEL_CODE_INVALID": "登录凭证无效或已过期，请重新进入小程序后再试",
    "FILE_EMPTY": "上传的文件是空的，请重新选择文件",
    "NO_ACTIVE_BINDING": "您目前没有有效的共济关系，无需解绑",
    "SERVICE_NOT_YET_AVAILABLE": "该服务即将开通，敬请期待",
    "TEXT_TOO_LONG": "消息太长了，请不要超过 500 个字",
    "BOT_MESSAGE_EMPTY": "请发送文字（text）或所选的选项（option）其中之一",
    "BOT_BUSY": "正在处理您的上一条消息，请稍候再发",
    "BAD_SIGNATURE": "签名校验失败",
    # R1 authorizer
    "AUTHORIZER_NOT_EMPLOYEE": "授权人须为职工医保参保人",
    "AUTHORIZER_NOT_NORMAL": "授权人参保状态不正常，暂不能办理家庭共济",
    "AUTHORIZER_BALANCE_ZERO": "授权人个人账户可共济余额为零，暂不能办理家庭共济",
    "AUTHORIZER_NO_ACCOUNT": "授权人个人账户不可用",
    # R2 beneficiary
    "BENEFICIARY_NOT_INSURED": "共济人员须已参加基本医疗保险（职工医保或居民医保）",
    "BENEFICIARY_NOT_NORMAL": "共济人员参保状态不正常",
    "BENEFICIARY_NAME_MISMATCH": "共济人员姓名与身份证号码不匹配",
    "SELF_BINDING": "不能为本人办理家庭共济",
    "BENEFICIARY_OUT_OF_AREA": "共济人员的参保地不在本地区政策允许的范围内",
    # R3 relation
    "RELATION_UNKNOWN": "请选择正确的亲属关系",
    "RELATION_NOT_ALLOWED": "该亲属关系不在本地区家庭共济范围内",
    "RELATION_AGE_IMPLAUSIBLE": "身份证号码中的出生日期与所选亲属关系对不上（比如父母应比您年长、配偶应已成年），"
                                "请核对身份证号码或亲属关系",
    "SPOUSE_LIMIT": "每人只能与一位配偶办理家庭共济：您或对方已与另一位配偶建立（或正在申请）共济关系",
    "PARENT_LIMIT": "父亲、母亲各只能有一位：子女一方已与另一位父亲或母亲建立（或正在申请）共济关系",
    "IDENTITY_DOCUMENTS_NOT_SEEN": "窗口办理须核验双方身份证和医保卡，请确认已查验所需证件",
    "BENEFICIARY_LIMIT": "共济人数已达本地区上限",
    "AUTHORIZER_LIMIT": "本地区规定每位共济人员只能接受一位授权人的共济",
    "DUPLICATE_BINDING": "已存在有效的共济关系，无需重复办理",
    "DUPLICATE_APPLICATION": "已有一份正在办理中的申请，请勿重复提交",
    # R4 proof
    "KINSHIP_NOT_CONFIRMED": "未能在户籍或婚姻登记信息中核实亲属关系，也没有本地区认可的关系证明材料",
    "PROOF_UNDER_REVIEW": "户籍或婚姻登记信息中未能核实亲属关系，已转人工审核您上传的关系证明材料",
    "MANUAL_REVIEW_REQUIRED": "本地区的家庭共济申请须经人工审核",
    "AUTO_REVIEW_FAILED": "系统自动审核未能完成，已转人工审核",
    "REJECTED_BY_REVIEWER": "经人工审核，申请未通过",
    "MATERIAL_NOT_FOUND": "上传的材料不存在或已失效",
    # R7–R10 settlement
    "OUT_OF_SCOPE": "共济资金不能在该地区使用",
    "REGION_NOT_COVERED": "您所在地区尚未开通职工医保个人账户家庭共济业务",
    "NON_MEDICAL_ITEM": "共济资金不能用于非医疗支出（如保健品、化妆品、生活用品等）",
    "NOT_DESIGNATED": "该机构不是定点医药机构，不能使用医保个人账户结算",
    "IMPERSONATION": "就医购药须使用患者本人的医保卡或医保电子凭证，他人凭证不能使用",
    "SETTLEMENT_SUSPENDED": "您的医保联网结算已被暂停，请到医保经办机构办理",
    "PATIENT_NOT_NORMAL": "患者参保状态不正常，不能联网结算",
    "INSUFFICIENT_BALANCE": "账户余额不足",
    "BINDING_EXPIRED": "共济授权已过有效期",
    "VALID_UNTIL_IN_PAST": "授权有效期不能早于今天",
    # life cycle
    "APPLICATION_DECIDED": "申请已有审核结果，不能再撤回",
    "APPLICATION_WITHDRAWN": "该申请已撤回，无需重复操作",
    "APPLICATION_EXPIRED": "该申请已过期失效，无需撤回",
    "APPLICATION_NOT_PENDING": "该申请不在待人工审核状态",
    "REJECTION_REASON_REQUIRED": "驳回时请填写原因",
    "BINDING_NOT_ACTIVE": "该共济关系已解除",
    "REVIEW_EXPIRED": "人工审核超过规定期限未完成，申请已过期，请重新申请",
    "WITHDRAWN_BY_APPLICANT": "申请人已撤回申请",
}


def message(code: str) -> str:
    return MESSAGES.get(code, MESSAGES["INVALID_INPUT"])
