"""Login channel 支付宝小程序 (simulated; a real adapter calls `alipay.system.oauth.token` for the user id)."""
from api.channels import SimulatedAdapter


class AlipayMiniProgram(SimulatedAdapter):
    name = "alipay"
    title = "支付宝小程序"


adapter = AlipayMiniProgram()
