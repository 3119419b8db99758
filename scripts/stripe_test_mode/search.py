"""`GET /v1/payment_intents/search`: the one form of Stripe's Search Query Language paybridge uses.

localstripe has no search. Stripe's (https://docs.stripe.com/search) takes a `query` such as
`metadata['paybridge_charge_id']:'ch_…'` and answers a `search_result` object: `data`, `has_more`,
`next_page`, `url`. paybridge's reconciler uses it to find the PaymentIntent of a charge whose
create answer was lost once Stripe has forgotten the idempotency key (after 24 hours). This
endpoint answers that exact-match form over every PaymentIntent localstripe holds, oldest first;
any other query is refused with 400 as Stripe refuses a query it cannot parse. Stripe's own index
lags writes by up to a minute (more during outages); this one does not.
"""

from __future__ import annotations

import re

from localstripe import resources
from localstripe.resources import UserError, store, try_convert_to_int

URL = "/v1/payment_intents/search"
# metadata['key']:'value', with the value free of quotes and backslashes (what paybridge sends).
METADATA_QUERY = re.compile(r"^\s*metadata\['([A-Za-z0-9_\-]{1,40})'\]:'([^'\\]{1,500})'\s*$")


class SearchResult(resources.List):
    """A `search_result`: a list with `next_page` (always null: one page holds every match)."""

    object = "search_result"

    def __init__(self, found: list, limit=None):
        super().__init__(URL, limit=limit)
        self._list = found
        self.next_page = None


def search_payment_intents(query=None, limit=None, page=None, **kwargs):
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    if page is not None:
        raise UserError(400, "the local Stripe answers every match on the first page")
    limit = try_convert_to_int(limit if limit is not None else 10)
    if not isinstance(limit, int) or not 1 <= limit <= 100:
        raise UserError(400, "limit must be between 1 and 100")
    match = METADATA_QUERY.match(query or "")
    if match is None:
        raise UserError(400, "the local Stripe searches only metadata['key']:'value'")
    key, value = match.groups()
    found = [pi for k, pi in store.items()
             if k.startswith("payment_intent:") and (pi.metadata or {}).get(key) == value]
    found.sort(key=lambda pi: pi.created)
    return SearchResult(found, limit=limit)


def install() -> None:
    resources.extra_apis.append(("GET", URL, search_payment_intents))
