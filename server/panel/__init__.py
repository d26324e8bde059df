"""The manager's panel (`/painel`): pages, live updates and actions, served by the sync server.

`installation.install_panel(app)` mounts it on the server's app: the Jinja2 environment
(autoescaped), the static files under `/painel/static/`, and the panel's routes. Login and
sessions live in `auth.py` (and its helpers); the pages in `routes.py`; the live stream in
`live.py`; the alert rules in `alerts.py`; what a card shows in `views.py`; the PANEL_*
settings in `settings.py` (kept import-light: the CLI loads the settings on every command).
"""
