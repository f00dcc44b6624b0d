"""Per-user connections to third-party services: the gateway as an OAuth 2.1 client.

An upstream with `connection:` (settings.py) needs each caller's own account at a
third-party authorization server. A caller without one gets a URL to connect (a
URL-mode elicitation, inject.py); the console's connect pages (web.py) sign the
user in at the profile's identity provider, check it is the same caller, and run
authorization code + PKCE at the third party (oauth.py) with a sealed state. The
refresh token is stored encrypted with AES-GCM under a rotatable key ring
(crypto.py) in PostgreSQL or memory (store.py); service.py refreshes access
tokens and caches them per caller, and inject.py adds the caller's token to that
caller's upstream calls only.

Kept import-light: config.py imports settings.py from here.
"""
