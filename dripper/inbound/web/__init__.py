"""Receiving over HTTP: the web server of `dripper run` and the one-click unsubscribe pages."""
