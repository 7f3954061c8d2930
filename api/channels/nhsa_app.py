"""Login channel 国家医保服务平台 APP (simulated; a real adapter asks the national 医保电子凭证 service)."""
from api.channels import SimulatedAdapter


class NhsaApp(SimulatedAdapter):
    name = "nhsa_app"
    title = "国家医保服务平台APP"


adapter = NhsaApp()
