"""Login channel 微信小程序 (simulated; a real adapter calls WeChat `sns/jscode2session` for the openid)."""
from api.channels import SimulatedAdapter


class WeChatMiniProgram(SimulatedAdapter):
    name = "wechat"
    title = "微信小程序"


adapter = WeChatMiniProgram()
