"""The patient registry: one PainCare patient per person, with the identifiers others
know them by, their demographics and contacts in one place, and the possible-same
tasks a scheduler settles by linking or keeping apart."""
