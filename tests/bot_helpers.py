"""Helpers for bot transcripts over HTTP: a Chat that posts texts and options and keeps the last answer."""
from __future__ import annotations

from tests.lifecycle_helpers import person_headers

URL = "/api/v1/bot/messages"


class Chat:
    def __init__(self, client, person, channel: str = "wechat"):
        self.client, self.headers = client, person_headers(person, channel)
        self.answer: dict = {}
        self.transcript: list[str] = []

    def _post(self, body: dict) -> dict:
        r = self.client.post(URL, json=body, headers=self.headers)
        assert r.status_code == 200, r.get_data(as_text=True)
        self.answer = r.json
        said = body.get("text", body.get("option"))
        self.transcript.append(f"> {said}\n" + "\n".join(rep["text"] for rep in r.json["replies"]))
        assert r.json["replies"] and all(rep["text"].strip() for rep in r.json["replies"])
        return r.json

    def say(self, text: str) -> dict:
        return self._post({"text": text})

    def tap(self, value) -> dict:
        return self._post({"option": value})

    @property
    def text(self) -> str:
        return "\n".join(rep["text"] for rep in self.answer["replies"])

    @property
    def options(self) -> dict[str, str]:
        """label → value of the options of the last answer."""
        return {o["label"]: o["value"] for rep in self.answer["replies"] for o in rep["options"]}

    @property
    def step(self) -> tuple[str | None, str | None]:
        return self.answer["dialog"]["intent"], self.answer["dialog"]["step"]
