"""The console: server-rendered pages for operators and tenants under /console.

Mount it with `api.include_router(console.router)`. web.py holds what pages
share (router, session context, CSRF, errors); login.py, pages.py and keys.py
the pages; access.py decides who may see what.
"""

from mcp_gateway.connections import web as connections_web
from mcp_gateway.console import keys, login, pages
from mcp_gateway.console.web import router

__all__ = ["connections_web", "keys", "login", "pages", "router"]
