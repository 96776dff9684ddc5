"""Helpers the tests share: servers, clients, browsers, processes."""
