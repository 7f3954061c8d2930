"""Login channel 网上服务大厅 (simulated; a real adapter verifies the code at the bureau's single sign-on)."""
from api.channels import SimulatedAdapter


class WebPortal(SimulatedAdapter):
    name = "web"
    title = "网上服务大厅"


adapter = WebPortal()
