"""PainCare ops dashboard: the platform's health and the clinic's figures, for admins."""
