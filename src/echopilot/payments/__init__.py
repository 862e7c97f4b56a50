"""Payments: Stripe payment links for billed jobs, verified webhooks, reconciliation, money
recorded by hand, and the ledger that finance reads paid revenue and money owed from."""
