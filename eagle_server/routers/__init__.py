"""One router per REST resource, all mounted under ``/v1`` by :func:`eagle_server.app.create_app`."""
