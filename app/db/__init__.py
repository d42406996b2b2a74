"""Engine, sessions and the unit of work. Repositories flush; entry points commit."""
