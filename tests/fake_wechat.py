"""A local stand-in for api.weixin.qq.com (http.server in a thread): it answers as WeChat's documentation shows."""
from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

APPID, SECRET = "wx0123456789abcdef", "test-app-secret-0123456789abcdef"

# the documented error answers
INVALID_CODE = {"errcode": 40029, "errmsg": "invalid code, rid: 6579e2a1-0e5c"}
CODE_USED = {"errcode": 40163, "errmsg": "code been used, rid: 6579e2a1-0e5d"}
MINUTE_QUOTA = {"errcode": 45011, "errmsg": "api minute-quota reach limit  mustslower  retry next minute"}
SYSTEM_BUSY = {"errcode": -1, "errmsg": "system error"}
HIGH_RISK = {"errcode": 40226, "errmsg": "invalid user, high risk user"}
USER_REFUSED = {"errcode": 43101, "errmsg": "user refuse to accept the msg rid: 6579e2a1-0e5e"}
ARGUMENT_INVALID = {"errcode": 47003, "errmsg": "argument invalid! data.thing1.value invalid"}


class FakeWeChat:
    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, query)
        self.sent: list[dict] = []  # subscribe messages accepted
        self.code_answers: dict[str, dict] = {}  # js_code → a documented error answer
        self.send_answers: list[dict] = []  # answers to the next subscribe sends, in order
        self.valid_tokens: set[str] = set()
        self.tokens_issued = 0
        self.expires_in = 7200
        self.delay = 0.0  # seconds before any answer (the timeout test)
        self.token_delay = 0.0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake._answer(self, "GET")

            def do_POST(self):
                fake._answer(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def paths(self, path: str) -> int:
        return sum(1 for _, p, _ in self.requests if p == path)

    def expire_all_tokens(self):
        """WeChat's side of expiry (or of a refresh elsewhere): the tokens it issued are no longer accepted."""
        self.valid_tokens.clear()

    def _answer(self, handler, method: str):
        url = urllib.parse.urlsplit(handler.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length)) if length else None
        with self._lock:
            self.requests.append((method, url.path, query))
        time.sleep(self.delay)
        routes = {("GET", "/sns/jscode2session"): self._jscode2session, ("GET", "/cgi-bin/token"): self._token,
                  ("POST", "/cgi-bin/message/subscribe/send"): self._subscribe_send}
        route = routes.get((method, url.path))
        answer = route(query, body) if route else {"errcode": 40066, "errmsg": "invalid url"}
        data = json.dumps(answer).encode()
        try:
            handler.send_response(200)  # WeChat answers its errors with HTTP 200 too
            handler.send_header("Content-Type", "application/json; encoding=utf-8")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:  # the client gave up (timeout test)
            pass

    def _credentials_ok(self, query) -> bool:
        return query.get("appid") == APPID and query.get("secret") == SECRET

    def _jscode2session(self, query, _body):
        if not self._credentials_ok(query) or query.get("grant_type") != "authorization_code":
            return {"errcode": 40013, "errmsg": "invalid appid"}
        code = query.get("js_code", "")
        if code in self.code_answers:
            return self.code_answers[code]
        return {"openid": f"oWx-{code}", "session_key": "tiihtNczf5v6AKRyjwEUhQ==", "unionid": f"oUn-{code}"}

    def _token(self, query, _body):
        if not self._credentials_ok(query) or query.get("grant_type") != "client_credential":
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        time.sleep(self.token_delay)
        with self._lock:
            self.tokens_issued += 1
            token = f"ACCESS_TOKEN_{self.tokens_issued}"
            self.valid_tokens.add(token)
        return {"access_token": token, "expires_in": self.expires_in}

    def _subscribe_send(self, query, body):
        token = query.get("access_token")
        if token not in self.valid_tokens:
            issued = token and token.startswith("ACCESS_TOKEN_")
            return {"errcode": 42001, "errmsg": "access_token expired"} if issued else \
                {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
        with self._lock:
            if self.send_answers:
                return self.send_answers.pop(0)
            self.sent.append(body)
        return {"errcode": 0, "errmsg": "ok"}
