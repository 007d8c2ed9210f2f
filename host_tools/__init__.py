"""Host-side tools for xmpp_lite (CPython only; device code never imports this package)."""
