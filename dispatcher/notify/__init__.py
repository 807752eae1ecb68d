"""Push delivery of pages to team webhooks: signed, idempotent, retried with backoff, and failed
over to the next rung of the case's chain when a push cannot be delivered by its deadline.

* ``signing``: HMAC-SHA256 signature headers (Stripe-style ``t=...,v1=...``) and ``verify``
  for receivers.
* ``backoff``: pure retry policy: full-jitter exponential backoff, ``Retry-After`` parsing,
  response classification and the next-step decision.
* ``webhook``: the aiohttp sender; one POST with a timeout, a result object, never raises.
* ``delivery``: ``DeliveryWorker`` claims due ``deliveries`` rows with a lease, sends them
  concurrently, records every attempt and fails over undeliverable pushes.
"""

from dispatcher.notify.backoff import BackoffPolicy, Verdict, classify, parse_retry_after
from dispatcher.notify.delivery import DeliveryWorker, roster_secrets
from dispatcher.notify.signing import SignatureError, sign_headers, verify
from dispatcher.notify.webhook import SendResult, WebhookSender

__all__ = [
    "BackoffPolicy",
    "DeliveryWorker",
    "SendResult",
    "SignatureError",
    "Verdict",
    "WebhookSender",
    "classify",
    "parse_retry_after",
    "roster_secrets",
    "sign_headers",
    "verify",
]
