"""Mints a local bearer token for trying the APIs by hand.

  python scripts/mint_token.py admin
  python scripts/mint_token.py specialist --discipline physical_therapy --subject pt-1
  python scripts/mint_token.py specialist --discipline pain_medicine --also triage_lead
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.auth import DISCIPLINES, ROLES, mint_token
from shared.config import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("--subject", default=None)
    parser.add_argument("--name", default="")
    parser.add_argument("--discipline", choices=DISCIPLINES)
    parser.add_argument("--provider-id", default=None)
    parser.add_argument("--also", action="append", choices=ROLES, default=[],
                        help="a role beside the main one (e.g. --also triage_lead)")
    args = parser.parse_args()
    settings = Settings.for_service("token")
    print(mint_token(settings.jwt_secret, subject=args.subject or f"local-{args.role}",
                     role=args.role, name=args.name, discipline=args.discipline,
                     provider_id=args.provider_id, issuer=settings.jwt_issuer,
                     audience=settings.jwt_audience, also=tuple(args.also)))


if __name__ == "__main__":
    main()
