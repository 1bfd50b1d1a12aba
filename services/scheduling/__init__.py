"""PainCare scheduling: Providers, rooms, availability, appointments and multi-specialty itineraries."""
