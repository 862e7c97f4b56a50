"""Executive mode: the daily CEO brief, grounded in numbers computed from the database."""
