"""Scheduling's itineraries wing: multi-specialty itineraries (search, hold, confirm,
move, cancel) over the diary wing."""
