"""schemathesis hooks of the contract check (e2e/contract.sh).

Placing an order refers to products that must exist, and lines for the same product are added up
(at most 1000 units per product): relations between values that no JSON Schema can state. So
that generated orders exercise the order itself rather than fail on made-up products, each line
of a `POST /api/v1/orders` gets one of the products the script created (CONTRACT_PRODUCT_IDS),
a different one per line. Only well-formed ids are replaced: a line whose `product_id` is not a
UUID was generated to be refused, and stays as it is.

An order's products must all be priced in one currency, another relation between values (in the
stateful phase, products a generated `POST /api/v1/products` created reach a generated order
through the document's links). So a product created with a currency the server knows is created
in EUR, the currency of the script's products; an unknown currency was generated to be refused,
and stays as it is.

An `Idempotency-Key` names one request: the server rightly refuses the same key with another body
(422 IDEMPOTENCY_KEY_REUSED), and generated cases share the few keys the generator makes up. So a
well-formed key becomes a fresh one per call, as a client makes a new key per new request; a
malformed one was generated to be refused, and stays as it is.
"""

import os
import uuid

import schemathesis

PRODUCTS = [p for p in os.environ.get("CONTRACT_PRODUCT_IDS", "").split(",") if p]
CURRENCIES = {c for c in os.environ.get("CONTRACT_CURRENCIES", "").split(",") if c}


def _is_uuid(value):
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def _is_key(value):
    return isinstance(value, str) and 1 <= len(value) <= 255 and all(
        "!" <= c <= "~" for c in value)


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key" and _is_key(headers[name]):
            headers[name] = str(uuid.uuid4())
    if case.method.upper() == "POST" and case.path == "/api/v1/products":
        price = case.body.get("price") if isinstance(case.body, dict) else None
        currency = price.get("currency") if isinstance(price, dict) else None
        if isinstance(currency, str) and currency in CURRENCIES:
            price["currency"] = "EUR"
        return
    if not PRODUCTS or case.method.upper() != "POST" or case.path != "/api/v1/orders":
        return
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        return
    for index, line in enumerate(body["items"]):
        if isinstance(line, dict) and _is_uuid(line.get("product_id")):
            line["product_id"] = PRODUCTS[index % len(PRODUCTS)]
