"""The Insiders program: candidate definitions, out-of-time measurement, and the point-in-time choice."""
