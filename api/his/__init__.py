"""The HIS gateway: the national medical-insurance platform's interface (`…/fsi/api/rsfComIfsService/callService`)
served over our settlement service, so that an unchanged hospital system settles with 家庭共济.

envelope: the request and answer envelopes; amounts: 元 ↔ 分; signing: the `_api_*` header signature and the
institutions' signing keys; persons (1101), visits (2201–2205), settlement (2206–2208, 2601): the transactions;
gateway: authentication, msgid idempotency and dispatch.
"""
