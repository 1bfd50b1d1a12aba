"""PainCare referrals: Referrals in, triage, care pathway and status workflow."""
