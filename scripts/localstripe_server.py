#!/usr/bin/env python3
"""Run localstripe (a stateful fake Stripe API) on 127.0.0.1:PORT only, as Stripe's test mode.

Usage: python scripts/localstripe_server.py PORT [--webhook-delay S] [--async-delay S] [--api-version V]
                                             [--enforce-refund-limits]

Differences from the stock `localstripe --port N` command, both on purpose:
- it binds 127.0.0.1 only (the stock command binds every interface, IPv4 and IPv6);
- it keeps its state in memory only. Stock localstripe pickles the whole store to a fixed file
  in the system temp folder after every write and reloads it at start, so two stacks (say
  `make dev` and `make test`) would share and overwrite each other's data, and each write costs
  a full dump. Here every start is a clean slate; `DELETE /_config/data` wipes it while running.
- PaymentIntents accept `description` and Refunds accept `reason` (real Stripe does; localstripe
  1.15.10 refuses both as "Unexpected …"), so paybridge sends the same requests locally as in
  production; the event list accepts (and ignores) `delivery_success`.
- Stripe's test mode (package `stripe_test_mode` beside this file): its test payment methods,
  declines as 402 card errors, re-confirmation, refunds and disputes with their events, objects
  in the shape of the current API version, and test-only control endpoints under `/_paybridge/`.
  docs/local-stack.md ("localstripe as paybridge runs it") lists what still differs from Stripe.
"""

from __future__ import annotations

import argparse
import logging
import sys

HOST = "127.0.0.1"


def accept_payment_intent_description(resources) -> None:
    """Let PaymentIntents take `description` and Refunds `reason`, as the real API does."""
    original_init = resources.PaymentIntent.__init__

    def init(self, description=None, **kwargs):
        original_init(self, **kwargs)
        self.description = description

    resources.PaymentIntent.__init__ = init

    original_refund_init = resources.Refund.__init__

    def refund_init(self, reason=None, **kwargs):
        original_refund_init(self, **kwargs)
        self.reason = reason

    resources.Refund.__init__ = refund_init

    # The reconciler lists events Stripe failed to deliver (`delivery_success=false`);
    # localstripe does not track deliveries, so it lists them all (paybridge deduplicates).
    original_list = resources.Event._api_list_all.__func__

    def list_events(cls, url, delivery_success=None, **kwargs):
        return original_list(cls, url, **kwargs)

    resources.Event._api_list_all = classmethod(list_events)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="localstripe_server.py", description="localstripe as Stripe's test mode, on 127.0.0.1")
    parser.add_argument("port", type=int)
    parser.add_argument("--webhook-delay", type=float, help="seconds from an event to its delivery (default 1)")
    parser.add_argument("--async-delay", type=float, help="seconds until a dispute opens or a refund fails (default 0.3)")
    parser.add_argument("--api-version", help="the API version of events (default: the current one)")
    parser.add_argument("--enforce-refund-limits", action="store_true",
                        help="refuse refunds beyond what is left, as Stripe does (off: tests/tests/refunds.rs needs it off)")
    args = parser.parse_args(argv)

    from aiohttp import web
    from localstripe import resources

    # No persistence between runs or between concurrent stacks (see module docstring).
    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None

    accept_payment_intent_description(resources)

    import stripe_test_mode

    # Before localstripe's server module is imported: it builds its routes from the patched classes.
    stripe_test_mode.install(args.api_version, args.webhook_delay, args.async_delay, args.enforce_refund_limits)
    from localstripe import server

    stripe_test_mode.install_server(server.app)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    access_log = logging.getLogger("aiohttp.access")

    print(f"localstripe on http://{HOST}:{args.port}", flush=True)
    # run_app handles SIGINT/SIGTERM itself and shuts the app down cleanly.
    web.run_app(server.app, host=HOST, port=args.port, access_log=access_log, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
