"""Production safety: CHANNEL_ADAPTERS is chosen explicitly, and APP_ENV=production refuses demo settings."""
import pytest

from api import create_app, settings
from api.settings import UnsafeSettings

GOOD_PRODUCTION = {
    "APP_ENV": "production", "CHANNEL_ADAPTERS": "real", "SIMULATED_CHANNEL_FAULTS": False,
    "SECRET_KEY": "k3J9x-QpL0vR7sT2wY5zA8bC1dE4fG6hI9jK", "WECHAT_TOKEN": "official-account-token-42",
    "WECHAT_APPID": "wx0123456789abcdef", "WECHAT_APP_SECRET": "app-secret", "WECHAT_TEMPLATE_ID": "tmpl-1",
}


def refusal(**changes) -> str:
    with pytest.raises(UnsafeSettings) as refused:
        settings.check_settings({**GOOD_PRODUCTION, **changes})
    return str(refused.value)


def test_a_production_app_with_real_adapters_and_its_own_secrets_starts():
    settings.check_settings(GOOD_PRODUCTION)
    app = create_app({"TESTING": True, **GOOD_PRODUCTION})
    assert app.config["APP_ENV"] == "production" and app.config["CHANNEL_ADAPTERS"] == "real"


def test_the_demo_defaults_start_anywhere_but_in_production():
    app = create_app({"TESTING": True})
    assert (app.config["APP_ENV"], app.config["CHANNEL_ADAPTERS"]) == ("development", "simulated")
    with pytest.raises(UnsafeSettings) as refused:
        create_app({"TESTING": True, "APP_ENV": "production"})  # everything else as `make run` has it
    text = str(refused.value)
    for setting in ("CHANNEL_ADAPTERS=simulated", "WECHAT_TOKEN", "SECRET_KEY", "SIMULATED_CHANNEL_FAULTS"):
        assert setting in text


def test_production_refuses_simulated_adapters():
    assert "CHANNEL_ADAPTERS=simulated is refused with APP_ENV=production" in refusal(CHANNEL_ADAPTERS="simulated")


def test_production_refuses_the_development_wechat_token():
    assert refusal(WECHAT_TOKEN="gongji-dev-token").startswith("refusing to start: WECHAT_TOKEN is the development")
    assert "WECHAT_TOKEN" in refusal(WECHAT_TOKEN="")


@pytest.mark.parametrize("key", ["test-secret-key", "dev", "short-but-random-7f3a"])
def test_production_refuses_a_known_or_short_secret_key(key):
    assert "SECRET_KEY is a known or short value" in refusal(SECRET_KEY=key)


def test_production_refuses_a_secret_key_generated_into_the_instance_folder(monkeypatch):
    monkeypatch.delenv("SECRET_KEY")
    generated = settings.secret_key()  # what create_app falls back to without SECRET_KEY
    assert "SECRET_KEY is generated into instance/secret_key" in refusal(SECRET_KEY=generated)
    with pytest.raises(UnsafeSettings, match="SECRET_KEY is generated"):
        create_app({"TESTING": True, **{k: v for k, v in GOOD_PRODUCTION.items() if k != "SECRET_KEY"}})


def test_production_refuses_simulated_channel_faults():
    assert "SIMULATED_CHANNEL_FAULTS must be off" in refusal(SIMULATED_CHANNEL_FAULTS=True)


def test_channel_adapters_must_be_named_and_real_ones_need_their_credentials_everywhere():
    for env in ("development", "production"):
        assert "CHANNEL_ADAPTERS must be one of simulated|real, not 'wechat'" in \
            refusal(APP_ENV=env, CHANNEL_ADAPTERS="wechat")
        text = refusal(APP_ENV=env, WECHAT_APPID=None, WECHAT_TEMPLATE_ID="")
        assert "WECHAT_APPID must be set" in text and "WECHAT_TEMPLATE_ID must be set" in text
        assert "WECHAT_APP_SECRET" not in text


def test_channel_adapters_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("CHANNEL_ADAPTERS", "real")
    with pytest.raises(UnsafeSettings, match="WECHAT_APPID must be set when CHANNEL_ADAPTERS=real"):
        create_app({"TESTING": True})
    monkeypatch.setenv("APP_ENV", "production")
    with pytest.raises(UnsafeSettings, match="SECRET_KEY"):
        create_app({"TESTING": True, "WECHAT_APPID": "a", "WECHAT_APP_SECRET": "b", "WECHAT_TEMPLATE_ID": "c"})
