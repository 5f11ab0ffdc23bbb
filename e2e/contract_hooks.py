"""schemathesis hooks of the contract check (e2e/contract.sh).

Placing an order refers to products that must exist, and lines for the same product are added up
(at most 1000 units per product): relations between values that no JSON Schema can state. So
that generated orders exercise the order itself rather than fail on made-up products, each line
of a `POST /api/v1/orders` gets one of the products the script created (CONTRACT_PRODUCT_IDS),
a different one per line. Only well-formed ids are replaced: a line whose `product_id` is not a
UUID was generated to be refused, and stays as it is.
"""

import os
import uuid

import schemathesis

PRODUCTS = [p for p in os.environ.get("CONTRACT_PRODUCT_IDS", "").split(",") if p]


def _is_uuid(value):
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if not PRODUCTS or case.method.upper() != "POST" or case.path != "/api/v1/orders":
        return
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        return
    for index, line in enumerate(body["items"]):
        if isinstance(line, dict) and _is_uuid(line.get("product_id")):
            line["product_id"] = PRODUCTS[index % len(PRODUCTS)]
