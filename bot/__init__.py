"""The chat bot (F6): the "业务办理 → 亲情账号绑定" wizard and question intents. Not built yet; see the issues."""
