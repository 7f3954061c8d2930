"""Login channel 随申办 (simulated; a real adapter exchanges the code at 一网通办 unified identity)."""
from api.channels import SimulatedAdapter


class Suishenban(SimulatedAdapter):
    name = "suishenban"
    title = "随申办"


adapter = Suishenban()
