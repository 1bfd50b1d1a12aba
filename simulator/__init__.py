"""A clinic simulator: patients, referrers, triage leads, schedulers and specialists
driving PainCare through its public APIs, for `make up`'s demo data, the load proof and
the fault proof (whose reconciliation accounts for everything it did)."""
