"""The console: server-rendered pages at /console (Jinja2, htmx for the live parts).

Pages call the same domain functions as the native API, with the same role checks: a route
requires its action (hangar.api.auth.require) whether or not the page showed the control.
No build step: templates and static assets ship inside the package.
"""
