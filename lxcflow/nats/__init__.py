"""A small trio client of NATS and JetStream: what the fleet needs, nothing more.

Layers: :mod:`protocol` (bytes, pure), :mod:`servers` and :mod:`creds` (what
the user gives, stdlib only), :mod:`connection` (one trio connection),
:mod:`jetstream` (JetStream's JSON API, consumers and key-value buckets).
"""
