"""PainCare notifier: Confirmations, reminders and care-team alerts."""
