"""Notifications: the web UI inbox (live), webhooks, e-mail over SMTP and chat via Apprise.

Public interface (what the REST API and the other modules call):

- :class:`Note` — one notification (kind, title, body, project, trigger, data, link).
- :class:`NotificationCenter` — ``publish(note, user=None)`` stores the note and fans it
  out to the matching subscriptions in a background thread pool (three attempts each);
  ``subscribe``/``unsubscribe``/``subscriptions``; ``inbox``/``unread_count``/
  ``mark_read``; ``test`` (one synchronous delivery); ``flush`` (wait for deliveries).
- :class:`Notifier` — the channel interface; built-ins ``ui``, ``webhook``, ``email``,
  ``apprise``, plug-ins in the entry-point group ``twinengine.notifiers``
  (:func:`available_notifiers`, :func:`make_notifier`).
- :func:`verify_signature` — a webhook receiver's check of ``X-Twin-Signature``.

Names are imported on first use, so importing the package costs nothing.
"""

from __future__ import annotations

from twinengine.core.lazy import lazy_exports

_EXPORTS = {
    "KINDS": "twinengine.notify.note",
    "Note": "twinengine.notify.note",
    "BUILTIN_NOTIFIERS": "twinengine.notify.base",
    "DeliveryError": "twinengine.notify.base",
    "Notifier": "twinengine.notify.base",
    "available_notifiers": "twinengine.notify.base",
    "make_notifier": "twinengine.notify.base",
    "NotificationCenter": "twinengine.notify.center",
    "SubscriptionStore": "twinengine.notify.subscriptions",
    "sign": "twinengine.notify.webhook",
    "verify_signature": "twinengine.notify.webhook",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
