"""schemathesis hooks of the contract check (e2e/contract.sh).

Placing an order refers to products that must exist, and lines for the same product are added up
(at most 1000 units per product): relations between values that no JSON Schema can state. So
that generated orders exercise the order itself rather than fail on made-up products, each line
of a `POST /api/v<n>/orders` gets one of the products the script created (CONTRACT_PRODUCT_IDS),
a different one per line. Only well-formed ids are replaced: a line whose `product_id` is not a
UUID was generated to be refused, and stays as it is.

An order's products must all be priced in one currency, another relation between values (in the
stateful phase, products a generated `POST /api/v1/products` created reach a generated order
through the document's links), in every version. So a product created or changed with a currency
the server knows is priced in EUR, the currency of the script's products; an unknown currency was generated to be refused,
and stays as it is. In v2 the amount is a decimal string in the currency's exponent, so a valid
amount of another currency ("1.999" KWD) may be no EUR amount: it is then cut to EUR's pattern
(CONTRACT_EUR_AMOUNT, read from the v2 document), or replaced by "19.99" when cutting is not
enough; a malformed amount was generated to be refused, and stays as it is.

An `Idempotency-Key` names one request: the server rightly refuses the same key with another body
(422 IDEMPOTENCY_KEY_REUSED), and generated cases share the few keys the generator makes up. So a
well-formed key becomes a fresh one per call, as a client makes a new key per new request; a
malformed one was generated to be refused, and stays as it is.

A webhook endpoint's host must resolve, to public addresses only (ADR 0034): a fact of the
network, not of the document, and this machine resolves no public name. So a well-formed `url` of
`POST`/`PATCH /api/v<n>/webhook-endpoints` becomes a public IP literal (WEBHOOK_URL), which the
server accepts without a lookup; a malformed one was generated to be refused, and stays as it is.
"""

import os
import re
import uuid

import schemathesis

PRODUCTS = [p for p in os.environ.get("CONTRACT_PRODUCT_IDS", "").split(",") if p]
CURRENCIES = {c for c in os.environ.get("CONTRACT_CURRENCIES", "").split(",") if c}
EUR_AMOUNT = os.environ.get("CONTRACT_EUR_AMOUNT")
AMOUNT_SHAPE = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")
# The document's pattern of a webhook URL (crates/api/src/routes/webhooks.rs, URL_PATTERN).
WEBHOOK_URL_SHAPE = re.compile(
    r"[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#@:\x00-\x1f\x7f-\x9f\ufeff][^\s#@\x00-\x1f\x7f-\x9f\ufeff]*")
WEBHOOK_URL = "http://1.1.1.1/contract-hook"


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


def _is_api(path, below):
    """Whether `path` is `below` in some version of the API (`/api/v1/orders`, `/api/v2/orders`)."""
    return re.fullmatch(r"/api/v[0-9]+" + re.escape(below), path) is not None


def _in_eur(amount):
    """A v2 amount (a string) another currency accepts, made one EUR accepts; anything else as is."""
    if not isinstance(amount, str) or not EUR_AMOUNT or not AMOUNT_SHAPE.fullmatch(amount):
        return amount
    if re.fullmatch(EUR_AMOUNT, amount):
        return amount
    units, _, decimals = amount.partition(".")
    cut = units + ("." + decimals[:2] if decimals else "")
    return cut if re.fullmatch(EUR_AMOUNT, cut) else "19.99"


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key" and _is_key(headers[name]):
            headers[name] = str(uuid.uuid4())
    hooks = (case.method.upper() == "POST" and _is_api(case.path, "/webhook-endpoints")) or (
        case.method.upper() == "PATCH"
        and re.fullmatch(r"/api/v[0-9]+/webhook-endpoints/[^/]+", case.path))
    if hooks and isinstance(case.body, dict):
        url = case.body.get("url")
        if isinstance(url, str) and len(url) <= 2048 and WEBHOOK_URL_SHAPE.fullmatch(url):
            case.body["url"] = WEBHOOK_URL
        return
    creates = case.method.upper() == "POST" and _is_api(case.path, "/products")
    # A change of price reaches the script's products too (the stateful phase follows links
    # from lists to PATCH), and in another currency it would make every later order mixed.
    changes = case.method.upper() == "PATCH" and re.fullmatch(r"/api/v[0-9]+/products/[^/]+", case.path)
    if creates or changes:
        price = case.body.get("price") if isinstance(case.body, dict) else None
        currency = price.get("currency") if isinstance(price, dict) else None
        if isinstance(currency, str) and currency in CURRENCIES:
            price["currency"] = "EUR"
            price["amount"] = _in_eur(price.get("amount"))
        return
    if not PRODUCTS or case.method.upper() != "POST" or not _is_api(case.path, "/orders"):
        return
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        return
    for index, line in enumerate(body["items"]):
        if isinstance(line, dict) and _is_uuid(line.get("product_id")):
            line["product_id"] = PRODUCTS[index % len(PRODUCTS)]
