"""PainCare care notes: Shared care notes, outcome measures, signing, addenda and care-team access."""
