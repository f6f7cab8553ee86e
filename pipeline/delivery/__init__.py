"""Delivery: a send planned and begun, its ledger of deliveries, the sending loop, MIME, transports, bounces."""
