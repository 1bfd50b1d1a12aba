"""PainCare care notes: shared notes, outcome measures, signing and care-team access."""
