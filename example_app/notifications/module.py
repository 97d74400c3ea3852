from __future__ import annotations

from framework import module

from example_app.notifications.controller import NotificationsController
from example_app.notifications.feed import NotificationFeed


@module(controllers=[NotificationsController], providers=[NotificationFeed])
class NotificationsModule:
    pass
