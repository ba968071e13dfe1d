"""Database drafters the paper compares against: PLD, REST, Lookahead."""
