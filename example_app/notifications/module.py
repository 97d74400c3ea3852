from __future__ import annotations

from example_app.notifications.controller import NotificationsController
from example_app.notifications.feed import NotificationFeed
from framework import module


@module(controllers=[NotificationsController], providers=[NotificationFeed])
class NotificationsModule:
    pass
