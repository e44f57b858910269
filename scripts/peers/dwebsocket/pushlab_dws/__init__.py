"""pushlab's WebSocket feed served by dwebsocket on Django 3.0 under gunicorn (a peer server)."""
