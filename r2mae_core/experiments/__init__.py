"""One module per notebook section: ``Config`` (validated), ``run(config)`` → tidy results (cached where
expensive), ``claims(results, profile)`` → the claims ledger rows with their verdict rules."""
