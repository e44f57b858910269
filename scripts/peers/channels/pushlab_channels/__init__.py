"""pushlab's wire served by Django Channels on daphne (a peer server for the lab)."""
