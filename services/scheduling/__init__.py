"""PainCare scheduling: providers, rooms, availability, appointments, itineraries."""
