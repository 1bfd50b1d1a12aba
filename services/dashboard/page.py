"""The dashboard page: one HTML file with its own script and styles (served by
shared.web.serve_page). The page carries no data and is public; it signs in with an
admin's token and asks the JSON API, which is not."""

from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
