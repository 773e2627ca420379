"""Shared test set-up. The ``azorus_connect`` pytest plugin (fixtures ``make_hub``, ``hub``,
``hub_client``, ``live_hub``) is registered by the package's entry point."""
