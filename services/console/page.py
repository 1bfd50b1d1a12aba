"""The console's pages: one HTML file, its modules and styles (served by
shared.web.serve_page). They carry no patient data and are public; everything they show
comes from the services through the proxy, under the signed-in person's token."""

from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
