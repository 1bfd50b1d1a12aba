"""PainCare's common package: the one way each service does events, Kafka, the outbox,
config, auth, errors and logging."""
