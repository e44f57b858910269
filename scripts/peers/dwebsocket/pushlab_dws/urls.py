"""Routes: the tutorial's echo, the WebSocket feed, publishing and a health check."""

from django.urls import re_path

from . import views

urlpatterns = [
    re_path(r"^echo$", views.echo),
    re_path(r"^ws/(?P<topic>[^/]+)$", views.feed_socket),
    re_path(r"^publish/(?P<topic>[^/]+)$", views.publish),
    re_path(r"^healthz$", views.healthz),
]
