"""The itinerary use cases, one module per step; each takes the `Planner` first."""
