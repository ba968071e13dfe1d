"""Published drafters beside HD as draft sources: prompt lookup (PLD) and REST; Lookahead is
a config (conf/drafter/lookahead.yaml) of the shared Jacobi window and n-gram pool."""
