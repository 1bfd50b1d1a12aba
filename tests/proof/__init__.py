"""The proof suites' shared reporting: what each suite tried and what held, gathered into
one summary table by `scripts/proof.py` (`make proof`)."""
